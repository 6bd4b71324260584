"""A lab TLS PKI made in the test's temp folder, and real TLS/HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tools.pki import general_name, issue, new_key

LAB_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
LAB_END = dt.datetime(2034, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Authority:
    """A CA: its key and certificate (a root when self-signed)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def root(cls, common_name: str, not_before: dt.datetime = LAB_START,
             not_after: dt.datetime = LAB_END) -> Authority:
        key = new_key()
        return cls(key, issue(common_name, key, ca=True, not_before=not_before,
                              not_after=not_after))

    def intermediate(self, common_name: str) -> Authority:
        """A CA under this one (no CA below it), valid as long as this one."""
        key = new_key()
        cert = issue(common_name, key, (self.certificate, self.key), ca=True, path_length=0,
                     not_before=self.certificate.not_valid_before_utc,
                     not_after=self.certificate.not_valid_after_utc)
        return Authority(key, cert)

    def server(self, names: Sequence[str] = ("127.0.0.1", "localhost"),
               not_before: dt.datetime = LAB_START,
               not_after: dt.datetime = LAB_END) -> tuple[ec.EllipticCurvePrivateKey,
                                                           x509.Certificate]:
        """A server key and its certificate for `names` (host names or IP addresses)."""
        key = new_key()
        cert = issue(names[0], key, (self.certificate, self.key), not_before=not_before,
                     not_after=not_after, names=[general_name(name) for name in names],
                     extended_usages=[ExtendedKeyUsageOID.SERVER_AUTH])
        return key, cert


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
    """What a feed server does wrong: files cut in half, files it answers 404 for, seconds it
    waits before each answer (`delay`), seconds between the bytes of a body (`trickle`)."""

    half: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    served: list[str] = field(default_factory=list)
    delay: float = 0.0
    trickle: float = 0.0


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
            time.sleep(faults.delay)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            body = data[: len(data) // 2] if name in faults.half else data
            if not faults.trickle:
                self.wfile.write(body)
                return
            for byte in body:  # until the client hangs up
                time.sleep(faults.trickle)
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def handle(self) -> None:
            # a client that hung up (an interrupted update, a deadline) is not our error
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

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
