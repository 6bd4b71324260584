"""Certificates and keys for the app certificate store's tests, made here: DER certificates of
an exact size (padded with an extension the store does not read), client key pairs, PEM forms."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

NOT_BEFORE = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2034, 3, 1, 12, 30, tzinfo=dt.UTC)
#: An extension of this private OID pads a certificate to the size a test needs.
PADDING_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")


@functools.cache
def lab_key() -> ed25519.Ed25519PrivateKey:
    """The key that signs every certificate here: Ed25519 signs deterministically, so a
    certificate's size is a function of its content."""
    return ed25519.Ed25519PrivateKey.generate()


def certificate(common_name: str = "Lab Root", padding: int = 0,
                key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None,
                issuer: str | None = None) -> x509.Certificate:
    """A certificate for `key` (the lab key), self-issued unless `issuer` names another."""
    key = key or lab_key()
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "US"),
                         x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Lab"),
                         x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    issued_by = subject if issuer is None else x509.Name(
        [x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issued_by)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER))
    if padding:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PADDING_OID, bytes(padding)), critical=False)
    return builder.sign(lab_key(), None)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@functools.cache
def der_of_size(size: int, common_name: str = "Padded") -> bytes:
    """A DER certificate of exactly `size` bytes (at least about 250). Where a DER length
    grows a byte (127, 255 bytes) a size may be skipped: then the name grows by a letter."""
    for name in (common_name, common_name + "x", common_name + "xy"):
        padding = max(0, size - len(der(certificate(name))))
        while padding >= 0:
            blob = der(certificate(name, padding))
            if len(blob) <= size:
                break
            padding -= 1
        if len(blob) == size:
            return blob
    raise AssertionError(f"no certificate of exactly {size} bytes")


@dataclass(frozen=True)
class Client:
    """A client certificate and its private key."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, common_name: str = "client") -> Client:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, certificate(common_name, key=key, issuer="Lab Root"))

    def key_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password
            else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8, encryption)

    def key_der(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.DER,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
