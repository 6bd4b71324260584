"""The app certificate store (Applibs CertStore): what apps and the device REST API manage.

Not the OS trusted root store (`device.tls`, the certificate-store image that TLS and the
update use): this one holds the certificates apps install for network authentication (EAP-TLS
and the like), up to 24 KiB of them, in flash of its own (`app_certstore_area`: two copies,
switched atomically, so it survives resets, power cuts and separate processes).

    store = device.app_store                    # or AppCertStore(flash, AppStoreArea(copies))
    store.install_root_ca("Lab-Root", pem)      # PEM or DER; replaces whatever "Lab-Root" held
    store.install_client("wifi", cert, key, password=b"secret")
    store.identifiers(); store.count(); store.identifier_at(0); store.available_space()
    store.info("wifi")                          # subject, issuer, not before/after, kind, size
    store.move("wifi", "wifi-old"); store.delete("Lab-Root")

Each refusal raises a `CertStoreError` with the errno the C API gives (`Refusal` names the
finer reason); every check happens before the first flash write, so a refused call leaves the
flash untouched. Microsoft's limits, and what the model decides where Microsoft is silent or
contradicts itself, are in docs/device.md ("The app certificate store").

Space: the store holds CAPACITY (24 KiB) and reports RESERVED (62) bytes of it as never
available, so an empty store reports 24,514 bytes, the figure a device gives through the REST
API in Microsoft's own tests. A certificate takes exactly the bytes of its blobs as installed
(certificate, and for a client certificate its private key and password); identifiers and
bookkeeping take none of it. Replacing a certificate (install or move onto a taken
identifier) is judged against the space free once the replaced one is gone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from firmware_model.device.app_certstore_area import AppStoreArea, StoredEntry, StoreState
from firmware_model.device.app_certstore_blobs import (
    CertInfo,
    CertKind,
    Refusal,
    check_key_pair,
    check_length,
    load_certificate,
    load_private_key,
)
from hal.interfaces import Flash
from policy.text import printable

__all__ = ["AVAILABLE_WHEN_EMPTY", "CAPACITY", "MAX_CERT_SIZE", "MAX_IDENTIFIER_LENGTH",
           "MAX_PASSWORD_LENGTH", "RESERVED", "AppCertStore", "CertInfo", "CertKind",
           "Refusal"]

#: "up to 24 KiB of certificates" (Learn: certstore how-to).
CAPACITY = 24 * 1024
#: Never available, so that an empty store reports what a device reports (see module doc).
RESERVED = 62
AVAILABLE_WHEN_EMPTY = CAPACITY - RESERVED  # 24514
#: CERTSTORE_MAX_CERT_SIZE: the most a certificate blob (and a private key blob) may hold.
MAX_CERT_SIZE = 8192
#: CERTSTORE_MAX_IDENTIFIER_LENGTH, and the characters an identifier may use.
MAX_IDENTIFIER_LENGTH = 16
IDENTIFIER_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")
#: CERTSTORE_MAX_PRIVATE_KEY_PASSWORD_LENGTH.
MAX_PASSWORD_LENGTH = 256

Log = Callable[[str], None]


def check_identifier(identifier: str) -> None:
    """IDENTIFIER_LENGTH (ERANGE) unless 1..16 bytes long (UTF-8, as the C API counts), then
    IDENTIFIER_CHARACTERS (EINVAL) unless every character is one of A-Z a-z 0-9 . _ -."""
    length = len(identifier.encode("utf-8", "surrogatepass"))
    if not 1 <= length <= MAX_IDENTIFIER_LENGTH:
        unit = "characters" if identifier.isascii() else "bytes in UTF-8"
        raise Refusal.IDENTIFIER_LENGTH.error(
            f"identifier {printable(repr(identifier), 60)} is {length} {unit}; it must be 1 to "
            f"{MAX_IDENTIFIER_LENGTH} characters")
    if not IDENTIFIER_CHARACTERS.fullmatch(identifier):
        raise Refusal.IDENTIFIER_CHARACTERS.error(
            f"identifier {identifier!r} may only use A-Z, a-z, 0-9, '.', '-' and '_'")


class AppCertStore:
    """The app certificate store kept in `area` of `flash` (see module doc). It reads the flash
    at every call (nothing is cached), so any number of these on one device agree."""

    def __init__(self, flash: Flash, area: AppStoreArea, log: Log | None = None) -> None:
        self.flash, self.area = flash, area
        self._log = log

    # -- reading -------------------------------------------------------------------------------

    def state(self) -> StoreState:
        """The whole store as it is in flash now."""
        return self.area.read(self.flash)

    def _current(self) -> tuple[StoreState, tuple[StoreState, int] | None]:
        """The store, and the copy holding it (what a commit needs) from one read."""
        newest = self.area.newest(self.flash)
        return (StoreState() if newest is None else newest[0]), newest

    def identifiers(self) -> list[str]:
        """Every identifier, in index order (sorted by byte value)."""
        return [entry.identifier for entry in self.state().entries]

    def count(self) -> int:
        """CertStore_GetCertificateCount."""
        return len(self.state().entries)

    def identifier_at(self, index: int) -> str:
        """CertStore_GetCertificateIdentifierAt: INDEX_RANGE (ERANGE) unless 0 <= index <
        count."""
        entries = self.state().entries
        if not 0 <= index < len(entries):
            raise Refusal.INDEX_RANGE.error(
                f"index {index}: the store holds {len(entries)} certificates (indices 0 to "
                f"{len(entries) - 1})" if entries else f"index {index}: the store is empty")
        return entries[index].identifier

    def available_space(self) -> int:
        """CertStore_GetAvailableSpace: bytes free for certificates (24514 when empty)."""
        return self._free(self.state())

    def info(self, identifier: str) -> CertInfo:
        """What the store tells about `identifier`'s certificate; NOT_FOUND (ENOENT)."""
        entry = self._entry(self.state(), identifier)
        return CertInfo.of(entry.identifier, entry.kind, entry.size, entry.certificate)

    def entries(self) -> list[CertInfo]:
        """`info` of every certificate, in index order."""
        return self.listing()[0]

    def listing(self) -> tuple[list[CertInfo], int]:
        """`entries()` and `available_space()` from one read of the store (over a serial
        line the store is up to 24 KiB)."""
        state = self.state()
        return ([CertInfo.of(e.identifier, e.kind, e.size, e.certificate)
                 for e in state.entries], self._free(state))

    def subject_name(self, identifier: str) -> str:
        """CertStore_GetCertificateSubjectName (OpenSSL one-line form)."""
        return self.info(identifier).subject_name

    def issuer_name(self, identifier: str) -> str:
        """CertStore_GetCertificateIssuerName (OpenSSL one-line form)."""
        return self.info(identifier).issuer_name

    def not_before(self, identifier: str) -> datetime:
        """CertStore_GetCertificateNotBefore (UTC)."""
        return self.info(identifier).not_before

    def not_after(self, identifier: str) -> datetime:
        """CertStore_GetCertificateNotAfter (UTC)."""
        return self.info(identifier).not_after

    # -- changing ------------------------------------------------------------------------------

    def install_root_ca(self, identifier: str, certificate: bytes) -> CertKind | None:
        """CertStore_InstallRootCACertificate: `certificate` (PEM or DER) under `identifier`,
        replacing whatever it held. Returns the kind replaced (None: the identifier was free).

        Refusals, in this order: the identifier (ERANGE, EINVAL), the certificate's length
        (ERANGE: 0 or over 8192 bytes), its content (EINVAL), the space (ENOSPC).
        """
        check_identifier(identifier)
        check_length(certificate, MAX_CERT_SIZE, "certificate", Refusal.CERTIFICATE_LENGTH)
        load_certificate(certificate)
        return self._install(StoredEntry(identifier, CertKind.ROOT_CA, bytes(certificate)))

    def install_client(self, identifier: str, certificate: bytes, private_key: bytes,
                       password: bytes | None = None) -> CertKind | None:
        """CertStore_InstallClientCertificate: a certificate and its private key (PEM or DER;
        `password` decrypts an encrypted key and is kept with it). Returns the kind replaced.

        Refusals, in this order: the identifier (ERANGE, EINVAL); the lengths (ERANGE: the
        certificate or the key 0 or over 8192 bytes, the password over 256); the certificate,
        the key, the password and whether they belong together (EINVAL); the space (ENOSPC).
        """
        check_identifier(identifier)
        check_length(certificate, MAX_CERT_SIZE, "certificate", Refusal.CERTIFICATE_LENGTH)
        check_length(private_key, MAX_CERT_SIZE, "private key", Refusal.KEY_LENGTH)
        if password is not None and len(password) > MAX_PASSWORD_LENGTH:
            raise Refusal.PASSWORD_LENGTH.error(
                f"the password is {len(password)} bytes; at most {MAX_PASSWORD_LENGTH}")
        cert = load_certificate(certificate)
        check_key_pair(cert, load_private_key(bytes(private_key), password))
        return self._install(StoredEntry(identifier, CertKind.CLIENT, bytes(certificate),
                                         bytes(private_key), bytes(password or b"")))

    def delete(self, identifier: str) -> CertKind:
        """CertStore_DeleteCertificate; NOT_FOUND (ENOENT). Returns the kind deleted."""
        state, newest = self._current()
        entry = self._entry(state, identifier)
        self.area.commit(self.flash, tuple(e for e in state.entries if e is not entry), newest)
        self.log(f"deleted {entry.kind.value} certificate {identifier!r}")
        return entry.kind

    def move(self, source: str, destination: str) -> CertKind | None:
        """CertStore_MoveCertificate: `source`'s certificate now under `destination` (whatever
        that held is replaced), `source` gone, in one atomic commit. Returns the kind replaced.

        Refusals: either identifier (ERANGE, EINVAL), then NOT_FOUND (ENOENT) if `source` holds
        nothing. Moving a certificate onto its own identifier changes nothing.
        """
        check_identifier(source)
        check_identifier(destination)
        state, newest = self._current()
        entry = self._entry(state, source)
        if source == destination:
            return None
        replaced = state.find(destination)
        moved = StoredEntry(destination, entry.kind, entry.certificate, entry.key,
                            entry.password)
        kept = tuple(e for e in state.entries if e.identifier not in (source, destination))
        self.area.commit(self.flash, (*kept, moved), newest)
        self.log(f"moved {entry.kind.value} certificate {source!r} to {destination!r}"
                 + (f" (replacing a {replaced.kind.value} certificate)" if replaced else ""))
        return None if replaced is None else replaced.kind

    # -- inside --------------------------------------------------------------------------------

    @staticmethod
    def _free(state: StoreState) -> int:
        return AVAILABLE_WHEN_EMPTY - sum(entry.size for entry in state.entries)

    @staticmethod
    def _entry(state: StoreState, identifier: str) -> StoredEntry:
        entry = state.find(identifier)
        if entry is None:
            raise Refusal.NOT_FOUND.error(f"no certificate with identifier {identifier!r}")
        return entry

    def _install(self, entry: StoredEntry) -> CertKind | None:
        state, newest = self._current()
        replaced = state.find(entry.identifier)
        free = self._free(state) + (replaced.size if replaced is not None else 0)
        if entry.size > free:
            raise Refusal.NO_SPACE.error(
                f"{entry.identifier!r} needs {entry.size} bytes; {free} are available"
                + (" once the certificate it replaces is gone" if replaced else ""))
        kept = tuple(e for e in state.entries if e.identifier != entry.identifier)
        self.area.commit(self.flash, (*kept, entry), newest)
        self.log(f"installed {entry.kind.value} certificate {entry.identifier!r} "
                 f"({entry.size} bytes)"
                 + (f", replacing a {replaced.kind.value} certificate" if replaced else ""))
        return None if replaced is None else replaced.kind

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(f"[certstore] {line}")
