"""The certificate store as the device uses it: its roots and TLS judged at the device's clock.

Python's `ssl` checks certificate times against the host's real clock, and OpenSSL's way of
setting another verification time is not exposed. So a context built here:

- loads only the roots valid at the device's clock (an expired root is as good as absent);
- lets OpenSSL verify signatures, names and constraints but not times (X509_V_FLAG_NO_CHECK_TIME);
- verifies, as part of every handshake, the chain the peer sent with cryptography's
  `x509.verification` at the device's clock (validity of leaf, intermediates and root, server
  name), through the context's socket class. A failure there is an `ssl.SSLCertVerificationError`
  like any other, raised out of `wrap_socket`/`do_handshake`.

A chain is therefore accepted when it holds at the device's clock, whatever the host's clock says.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from firmware_model.errors import TlsError
from firmware_model.image.certstore import read_store_payload

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (not exported by Python's ssl module).
VERIFY_NO_CHECK_TIME = 0x200000
CONNECT_TIMEOUT = 10.0


def as_utc(when: float | datetime) -> datetime:
    """A timezone-aware UTC datetime from epoch seconds or an aware datetime."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("device time must be timezone-aware")
        return when.astimezone(UTC)
    return datetime.fromtimestamp(when, UTC)


def iso(when: datetime) -> str:
    """`2025-02-01T00:00:00Z` (four digits of year always: `0001-01-01T00:00:00Z`)."""
    when = when.astimezone(UTC)
    return f"{when.year:04d}-" + when.strftime("%m-%dT%H:%M:%SZ")


def _common_name(name: x509.Name) -> str:
    names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


@dataclass(frozen=True)
class StoreRoot:
    """A trusted root: its file name in the store and its certificate."""

    name: str
    certificate: x509.Certificate

    def valid_at(self, when: datetime) -> bool:
        """True when `when` lies within the root's validity period."""
        cert = self.certificate
        return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc

    def to_json(self, at: datetime) -> dict[str, object]:
        cert = self.certificate
        return {
            "name": self.name,
            "subject": cert.subject.rfc4514_string(),
            "not_before": iso(cert.not_valid_before_utc),
            "not_after": iso(cert.not_valid_after_utc),
            "sha256": cert.fingerprint(hashes.SHA256()).hex(),
            "valid_at_device_time": self.valid_at(at),
        }


def server_identity(name: str) -> x509.DNSName | x509.IPAddress:
    """The subject a server must be certified for: an IP address SAN or a DNS name SAN."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class DeviceStore:
    """The roots of an authenticated certificate store image."""

    def __init__(self, roots: Sequence[StoreRoot]) -> None:
        self.roots = tuple(roots)

    @classmethod
    def from_payload(cls, payload: bytes) -> DeviceStore:
        """Read the store filesystem (ImageFormatError if it is not one).

        A pure function of the payload's bytes, memoized: the update agent loads a new store
        before it writes it, and the boot after the reset loads the same bytes again (whose
        signature the boot checks anew: only the parsing is remembered).
        """
        return _load_store(bytes(payload))

    @property
    def names(self) -> list[str]:
        return [root.name for root in self.roots]

    def names_valid_at(self, at: datetime) -> list[str]:
        """The names of the roots valid at `at`."""
        return [root.name for root in self.valid_roots(at)]

    def valid_roots(self, at: datetime) -> list[StoreRoot]:
        """The roots valid at `at` (the device's clock)."""
        return [root for root in self.roots if root.valid_at(at)]

    def verify_chain(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        server_name: str,
        at: datetime,
    ) -> list[x509.Certificate]:
        """The chain from `leaf` to a store root, verified at `at`; TlsError if there is none."""
        valid = self.valid_roots(at)
        if not valid:
            raise TlsError(f"no root of the store is valid at device time {iso(at)}")
        verifier = (PolicyBuilder().store(Store([r.certificate for r in valid])).time(at)
                    .build_server_verifier(server_identity(server_name)))
        try:
            return list(verifier.verify(leaf, list(intermediates)))
        except VerificationError as error:
            raise TlsError(f"certificate chain fails at device time {iso(at)}: {error}") from None

    def root_for(self, certificate: x509.Certificate) -> StoreRoot | None:
        """The store root that is `certificate`, if any."""
        return next((r for r in self.roots if r.certificate == certificate), None)

    def ssl_context(self, at: datetime) -> DeviceSSLContext:
        """A TLS client context trusting this store at device time `at` (see module doc)."""
        context = DeviceSSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.device_store = self
        context.device_time = at
        context.verify_flags |= VERIFY_NO_CHECK_TIME
        context.sslsocket_class = DeviceClockSocket
        der = b"".join(r.certificate.public_bytes(serialization.Encoding.DER)
                       for r in self.valid_roots(at))
        if der:
            context.load_verify_locations(cadata=der)
        return context


@functools.lru_cache(maxsize=4)
def _load_store(payload: bytes) -> DeviceStore:
    return DeviceStore([StoreRoot(name, cert) for name, cert in read_store_payload(payload)])


class DeviceSSLContext(ssl.SSLContext):
    """An SSLContext that also knows the device's store and clock (set by `ssl_context`)."""

    device_store: DeviceStore
    device_time: datetime


def _der(item: Any) -> bytes:
    """A certificate of `get_unverified_chain` as DER (bytes on 3.13+, objects on 3.11)."""
    if isinstance(item, bytes):
        return item
    return bytes(item.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]


def peer_chain(sock: ssl.SSLSocket) -> list[x509.Certificate]:
    """The certificates the peer sent, leaf first."""
    getter = getattr(sock, "get_unverified_chain", None)
    if getter is None:  # Python < 3.13: the method exists on the C object only
        getter = sock._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    return [x509.load_der_x509_certificate(_der(item)) for item in getter() or []]


class DeviceClockSocket(ssl.SSLSocket):
    """After OpenSSL's checks, verifies the peer's chain at the device's clock."""

    verified_chain: list[x509.Certificate]

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        if not isinstance(context, DeviceSSLContext):
            return
        chain = peer_chain(self)
        try:
            if not chain:
                raise TlsError("the server sent no certificate")
            self.verified_chain = context.device_store.verify_chain(
                chain[0], chain[1:], self.server_hostname or "", context.device_time)
        except TlsError as error:
            failure = ssl.SSLCertVerificationError(1, str(error))
            failure.verify_message = str(error)
            raise failure from None


@dataclass(frozen=True)
class TlsSession:
    """What a successful handshake from the device established."""

    host: str
    port: int
    version: str
    chain: tuple[x509.Certificate, ...]
    root_name: str | None

    def describe(self) -> str:
        path = " -> ".join(_common_name(c.subject) for c in self.chain)
        root = f" (store root {self.root_name})" if self.root_name else ""
        return f"{self.host}:{self.port}: {self.version}, chain {path}{root}"

    def to_json(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "version": self.version,
                "chain": [c.subject.rfc4514_string() for c in self.chain],
                "store_root": self.root_name}


def connect(
    store: DeviceStore,
    at: datetime,
    host: str,
    port: int,
    server_name: str | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> TlsSession:
    """Open a TLS connection from the device to `host:port`, handshake, close.

    TlsError naming the reason if the connection or the handshake fails.
    """
    context = store.ssl_context(at)
    name = server_name or host
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=name) as tls:
            assert isinstance(tls, DeviceClockSocket)
            chain = tuple(tls.verified_chain)
            version = tls.version() or "TLS"
    except ssl.SSLCertVerificationError as error:
        reason = str(error.verify_message or error)
        if "device time" not in reason:
            reason += f" (store roots valid at device time {iso(at)}: " \
                      f"{', '.join(store.names_valid_at(at)) or 'none'})"
        raise TlsError(f"{host}:{port}: {reason}") from None
    except ssl.SSLError as error:
        raise TlsError(f"{host}:{port}: TLS handshake failed ({error.reason or error})") from None
    except OSError as error:
        raise TlsError(f"{host}:{port}: cannot connect ({error.strerror or error})") from None
    root = store.root_for(chain[-1]) if chain else None
    return TlsSession(host, port, version, chain, root.name if root else None)
