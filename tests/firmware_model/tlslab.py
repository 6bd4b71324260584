"""A lab TLS PKI made in the test's temp folder, and real TLS/HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LAB_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
LAB_END = dt.datetime(2034, 1, 1, tzinfo=dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sphere-fwmodel TLS lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


@dataclass(frozen=True)
class Authority:
    """A CA: its key and certificate (a root when self-signed)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def root(cls, common_name: str, not_before: dt.datetime = LAB_START,
             not_after: dt.datetime = LAB_END) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(common_name), _name(common_name), key, not_before, not_after)
        cert = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .add_extension(_usage(True), True).sign(key, hashes.SHA256()))
        return cls(key, cert)

    def intermediate(self, common_name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(common_name), self.certificate.subject, key,
                           self.certificate.not_valid_before_utc,
                           self.certificate.not_valid_after_utc)
        cert = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
                .add_extension(_usage(True), True).add_extension(self._aki(), False)
                .sign(self.key, hashes.SHA256()))
        return Authority(key, cert)

    def server(self, names: Sequence[str] = ("127.0.0.1", "localhost"),
               not_before: dt.datetime = LAB_START,
               not_after: dt.datetime = LAB_END) -> tuple[ec.EllipticCurvePrivateKey,
                                                           x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (_builder(_name(names[0]), self.certificate.subject, key, not_before, not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(_usage(False), True)
                .add_extension(x509.SubjectAlternativeName(sans), False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
                .add_extension(self._aki(), False)
                .sign(self.key, hashes.SHA256()))
        return key, cert

    def _aki(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             not_before: dt.datetime, not_after: dt.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))


def server_context(folder: Path, key: ec.EllipticCurvePrivateKey,
                   chain: Sequence[x509.Certificate]) -> ssl.SSLContext:
    """A server-side context presenting `chain` (leaf first), files written to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "chain.pem", folder / "server.key"
    cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that handshakes with each client and closes; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello from the lab server\n")
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@dataclass
class FeedFaults:
    """What a feed server does wrong: files cut in half, files it answers 404 for."""

    half: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    served: list[str] = field(default_factory=list)


@contextmanager
def feed_server(folder: Path, context: ssl.SSLContext | None = None,
                faults: FeedFaults | None = None) -> Iterator[str]:
    """Serve `folder` (and its subfolders) over HTTP (HTTPS with `context`) on 127.0.0.1;
    yields the base URL. `faults` name files by their base name."""
    faults = faults or FeedFaults()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            relative = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
            name = relative.rsplit("/", 1)[-1]
            faults.served.append(name)
            path = (folder / relative).resolve()
            inside = path.is_relative_to(folder.resolve())
            if name in faults.missing or not inside or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if name in faults.half else data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    scheme = "https" if context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
