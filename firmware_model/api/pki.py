"""The device REST API's TLS identity: a lab CA of its own, made at start, and the server
certificate it issues for `*.devices.sphere.azure.local`.

Microsoft's client verifies the server against one CA file (`utils._CERT_PATH`) and checks the
host name against the literal `*.devices.sphere.azure.local` (requests-toolbelt's
HostHeaderSSLAdapter turns the Host header into the name to assert). A real device's
certificate chains to the CA Microsoft ships with the client, whose key nobody outside
Microsoft holds; so the model makes a CA of its own each time it starts serving:

- the CA (ECDSA P-256, valid from a day before it is made for a year) and the server
  certificate it issues (the wildcard name, and the loopback address served on, so that
  `curl --cacert` reaches `https://127.0.0.1:PORT/` too) live in memory;
- the CA *certificate* is written to a private temporary folder (0700) whose path the server
  announces (`ca=PATH`) and which it removes when it stops; the CA's private key is never
  written anywhere, and the server key only for the instant `ssl` needs to load it, in that
  same folder (0600);
- a client trusts this run's CA only: a new run, a new CA (nothing to keep, nothing to leak).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The name Microsoft's client asserts for every device.
DEVICE_HOST = "*.devices.sphere.azure.local"
CA_FILE = "device-api-ca.pem"
_ORGANIZATION = "sphere-fwmodel lab"
_VALIDITY = dt.timedelta(days=365)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey,
                 issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey], *, ca: bool,
                 names: list[x509.GeneralName]) -> x509.Certificate:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    usage = x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                          decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer[0])
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + _VALIDITY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None),
                              critical=True)
               .add_extension(usage, critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer[1].public_key()), critical=False))
    if names:
        builder = (builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False))
    return builder.sign(issuer[1], hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class ServerIdentity:
    """This run's CA and server certificate (see module doc). `ca_path` is the CA certificate
    a client must trust; `close` removes the folder holding it."""

    def __init__(self, address: str) -> None:
        ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), \
            ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("sphere-fwmodel device REST API CA")
        self.ca = _certificate(ca_name, ca_key, (ca_name, ca_key), ca=True, names=[])
        self.server = _certificate(
            _name("sphere-fwmodel device"), server_key, (ca_name, ca_key), ca=False,
            names=[x509.DNSName(DEVICE_HOST), x509.IPAddress(ipaddress.ip_address(address))])
        self._folder = tempfile.TemporaryDirectory(prefix="fwmodel-api-")
        self.ca_path = Path(self._folder.name) / CA_FILE
        self.ca_path.write_bytes(_pem(self.ca))
        self.context = self._context(server_key)

    def _context(self, key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        secret = Path(self._folder.name) / "server.key"
        chain = Path(self._folder.name) / "server.pem"
        secret.touch(mode=0o600)
        try:
            secret.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
            chain.write_bytes(_pem(self.server))
            context.load_cert_chain(chain, secret)
        finally:
            secret.unlink(missing_ok=True)
            chain.unlink(missing_ok=True)
        return context

    def close(self) -> None:
        """Remove the CA certificate's folder."""
        self._folder.cleanup()
