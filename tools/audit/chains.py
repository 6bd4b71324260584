"""Where chains come from: live TLS (the full chain the server sends) or saved PEM files.

Live: a TLS handshake with verification off (the audit judges separately), SNI set to the
host name, `--resolve`-style overrides of the address to connect to. The peer chain comes
from OpenSSL's SSL_get_peer_cert_chain through the standard `ssl` module: public as
`SSLSocket.get_unverified_chain()` from Python 3.13, the same C method on the private
`_sslobj` in 3.10-3.12. TLS 1.3 and 1.2 alike; no extra dependency.

Saved: `DIR/HOST_PORT.pem`, leaf first, then whatever the server sends.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from policy.files import open_regular
from policy.network import is_loopback
from tools.audit.endpoints import Endpoint, normalise_host, parse_endpoint
from tools.audit.errors import AuditError, BadInputError, UnreachableError

DER = 2  # _ssl.ENCODING_DER


class MissingChainError(AuditError):
    """No chain to judge for an endpoint: none saved, or one the audit may not fetch (a host
    off the loopback interface: nothing in this project connects beyond it)."""


def parse_resolve(text: str) -> tuple[Endpoint, str]:
    """curl's `HOST:PORT:ADDR` (ADDR may be `[v6]`); BadInputError when malformed."""
    match = re.fullmatch(r"([^:\[\]]+):(\d+):(.+)", text)
    address = normalise_host(match.group(3), single_label=True) if match else None
    if match is None or address is None:
        raise BadInputError(text, "--resolve wants HOST:PORT:ADDR")
    return parse_endpoint(f"{match.group(1)}:{match.group(2)}"), address


def client_context() -> ssl.SSLContext:
    """A client context that accepts any chain: fetching only, judging happens elsewhere."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def peer_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """The DER certificates the server sent, leaf first, unverified."""
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:  # Python 3.13+
        return [bytes(der) for der in public()]
    chain = getattr(tls, "_sslobj").get_unverified_chain()  # noqa: B009 - private before 3.13
    return [certificate.public_bytes(DER) for certificate in chain or ()]


def _why(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host ({error.strerror})"
    if isinstance(error, ssl.SSLError | ConnectionResetError | BrokenPipeError):
        detail = getattr(error, "reason", None) or error.strerror or type(error).__name__
        return f"handshake dropped ({detail})"
    return error.strerror or str(error) or type(error).__name__


def fetch_chain(
    endpoint: Endpoint, address: str | None = None, timeout: float = 5.0
) -> list[x509.Certificate]:
    """The chain `endpoint` sends, connecting to `address` when given (else the host).

    Only loopback addresses are connected to (MissingChainError otherwise: point the endpoint
    at a lab server with `address`, as --resolve does, or judge saved chains). Raises
    UnreachableError (refused, timed out, handshake dropped, no certificate) or BadInputError
    for a certificate that does not parse.
    """
    target = address or endpoint.host
    if not is_loopback(target):
        raise MissingChainError(
            f"{endpoint}: no chain: {target} is not a loopback address (the audit connects to "
            f"127.0.0.1 only: --resolve {endpoint.host}:{endpoint.port}:127.0.0.1 to a lab "
            "server, or --chains DIR of saved chains)")
    sni = None if endpoint.is_ip else endpoint.host
    try:
        with (
            socket.create_connection((target, endpoint.port), timeout) as raw,
            client_context().wrap_socket(raw, server_hostname=sni) as tls,
        ):
            ders = peer_chain(tls)
    except OSError as error:
        raise UnreachableError(f"{endpoint}: unreachable: {_why(error)}") from None
    if not ders:
        raise UnreachableError(f"{endpoint}: unreachable: the server sent no certificate")
    try:
        return [x509.load_der_x509_certificate(der) for der in ders]
    except ValueError as error:
        raise BadInputError(str(endpoint), f"server sent a bad certificate ({error})") from None


def chain_path(folder: Path, endpoint: Endpoint) -> str:
    """Where the chain of `endpoint` is saved: `folder/HOST_PORT.pem`."""
    return f"{os.fspath(folder)}{os.sep}{endpoint.host}_{endpoint.port}.pem"


def load_pem_chain(data: bytes, what: str) -> list[x509.Certificate]:
    """The certificates of a PEM chain, leaf first; BadInputError on garbage."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise BadInputError(what, f"not a PEM chain ({error})") from None


#: The most bytes a saved chain may hold (a chain is a few KiB).
CHAIN_LIMIT = 1024 * 1024


def read_small_file(path: str, limit: int = CHAIN_LIMIT) -> bytes:
    """A regular file's bytes, at most `limit` (OSError otherwise: a FIFO or a device is
    refused, not waited on or read for ever), through plain os calls (half the cost of open()
    for a 2 KiB chain, which matters when an audit reads a thousand)."""
    fd = open_regular(path)
    try:
        parts, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            parts.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", path)
    return b"".join(parts)


def load_saved_chain(folder: Path, endpoint: Endpoint) -> list[x509.Certificate]:
    """The chain saved for `endpoint`; MissingChainError or BadInputError."""
    path = chain_path(folder, endpoint)
    try:
        data = read_small_file(path)
    except FileNotFoundError:
        raise MissingChainError(f"{endpoint}: no saved chain {os.path.basename(path)}") from None
    except OSError as error:
        raise BadInputError(path, f"cannot read ({error.strerror or error})") from None
    return load_pem_chain(data, path)


def saved_endpoints(folder: Path) -> Iterator[Endpoint]:
    """The endpoints that have a saved chain in `folder` (file names `HOST_PORT.pem`)."""
    for path in sorted(folder.glob("*_*.pem")):
        host, _, port = path.stem.rpartition("_")
        canonical = normalise_host(host)
        if canonical and port.isdigit() and 0 < int(port) < 65536:
            yield Endpoint(canonical, int(port))
