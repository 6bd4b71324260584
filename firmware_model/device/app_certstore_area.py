"""The app certificate store in flash: two copies, each a whole store, switched atomically.

As with the boot record (`bootrecord`): each copy holds a complete store with a sequence number
and a CRC-32 over all its other bytes, and the valid copy with the highest sequence number is
the store. A commit writes the whole new store, sequence + 1, into the copy *not* holding the
newest one (erase the sectors it needs, program it page by page, read it back by hash); until
its last page is programmed, readers find the previous store in the untouched copy, and from
then on the new one. A cut at any point (before, after, or tearing an erase or a program)
leaves the old store or the new one, never a mix: a copy written in part fails its CRC (or its
magic, whose sector goes first). Neither copy valid (erased flash, a device provisioned before
the app store existed) is the empty store, sequence 0.

Copy layout (little-endian):
    magic "FWAC", u16 version 1, u16 count, u32 sequence, u32 length of the entries,
    entries, sorted by identifier, each:
        u8 kind (1 root CA, 2 client), u8 identifier length, identifier (ASCII),
        u16 certificate length, certificate, u16 key length, key, u16 password length, password
    u32 CRC-32 of everything before it.

An entry's bookkeeping is 8 bytes plus its identifier (at most 16): at most 24 bytes, less than
any X.509 certificate (whose validity field alone is 32 bytes), so a copy never needs more than
twice the store's capacity plus 20 bytes (`flash_layout.APP_STORE_COPY_SIZE` is 48 KiB).
A copy is only read as far as its header's length says; one that does not decode to exactly
its bytes again (entries out of order, unknown kinds, stray bytes) is not valid.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field

from construct import (
    Array,
    Checksum,
    Const,
    ConstructError,
    FixedSized,
    GreedyBytes,
    Int8ul,
    Int16ul,
    Int32ul,
    PascalString,
    Prefixed,
    RawCopy,
    Rebuild,
    Struct,
    this,
)

from firmware_model.device.app_certstore_blobs import CertKind
from firmware_model.device.flash_layout import Region
from firmware_model.device.slots import write_region
from firmware_model.errors import LayoutError
from hal.interfaces import Flash

MAGIC = b"FWAC"
VERSION = 1
KIND_CODES = {CertKind.ROOT_CA: 1, CertKind.CLIENT: 2}
_KINDS = {code: kind for kind, code in KIND_CODES.items()}

EntryFormat = Struct(
    "kind" / Int8ul,
    "identifier" / PascalString(Int8ul, "ascii"),
    "certificate" / Prefixed(Int16ul, GreedyBytes),
    "key" / Prefixed(Int16ul, GreedyBytes),
    "password" / Prefixed(Int16ul, GreedyBytes),
)
HeaderFormat = Struct(
    "magic" / Const(MAGIC),
    "version" / Const(VERSION, Int16ul),
    "count" / Rebuild(Int16ul, lambda ctx: len(ctx._.entries)),
    "sequence" / Int32ul,
    "length" / Rebuild(Int32ul, lambda ctx: sum(
        len(EntryFormat.build(entry)) for entry in ctx._.entries)),
)
CopyFormat = Struct(
    "body" / RawCopy(Struct(
        "header" / HeaderFormat,
        "entries" / FixedSized(this.header.length, Array(this.header.count, EntryFormat)),
    )),
    "crc" / Checksum(Int32ul, lambda data: zlib.crc32(data), this.body.data),
)
HEADER_SIZE = int(HeaderFormat.sizeof())
CRC_SIZE = 4
_LENGTH_AT = HEADER_SIZE - 4  # the header's last field
_SEQUENCE_AT = _LENGTH_AT - 4


@dataclass(frozen=True)
class StoredEntry:
    """One certificate as the store keeps it: the blobs as they were installed."""

    identifier: str
    kind: CertKind
    certificate: bytes
    key: bytes = b""
    password: bytes = b""

    @property
    def size(self) -> int:
        """The bytes it takes of the store's capacity: its blobs (see `app_certstore`)."""
        return len(self.certificate) + len(self.key) + len(self.password)


@dataclass(frozen=True)
class StoreState:
    """A whole store: its entries sorted by identifier, and the sequence of the copy."""

    sequence: int = 0
    entries: tuple[StoredEntry, ...] = field(default_factory=tuple)

    def find(self, identifier: str) -> StoredEntry | None:
        return next((e for e in self.entries if e.identifier == identifier), None)


def encode_copy(state: StoreState) -> bytes:
    """The bytes of one copy holding `state` (its entries in identifier order)."""
    entries = [{"kind": KIND_CODES[e.kind], "identifier": e.identifier,
                "certificate": e.certificate, "key": e.key, "password": e.password}
               for e in sorted(state.entries, key=lambda e: e.identifier)]
    value = {"header": {"sequence": state.sequence}, "entries": entries}
    return bytes(CopyFormat.build({"body": {"value": value}}))


@functools.lru_cache(maxsize=8)
def decode_copy(raw: bytes) -> StoreState | None:
    """The store in a copy's bytes, or None if they are not a valid copy (memoized: a pure
    function of the bytes, and every operation reads both copies)."""
    try:
        parsed = CopyFormat.parse(raw).body.value
        state = StoreState(parsed.header.sequence, tuple(
            StoredEntry(e.identifier, _KINDS[e.kind], e.certificate, e.key, e.password)
            for e in parsed.entries))
    except (ConstructError, KeyError, UnicodeDecodeError):
        return None
    return state if encode_copy(state) == raw else None


class AppStoreArea:
    """Reads and commits the app certificate store in the two copies `copies` (flash regions)."""

    def __init__(self, copies: tuple[Region, Region]) -> None:
        self.copies = copies

    def read_copy(self, flash: Flash, index: int) -> StoreState | None:
        """Copy `index`'s store, None if the copy is not valid."""
        head = self._header(flash, index)
        if head is None:
            return None
        region = self.copies[index]
        total = HEADER_SIZE + int.from_bytes(head[_LENGTH_AT:HEADER_SIZE], "little") + CRC_SIZE
        if total > region.size:
            return None
        return decode_copy(flash.read(region.offset, total))

    def _header(self, flash: Flash, index: int) -> bytes | None:
        head = flash.read(self.copies[index].offset, HEADER_SIZE)
        return head if head.startswith(MAGIC) else None  # not: erased, or never written

    def newest(self, flash: Flash) -> tuple[StoreState, int] | None:
        """The newest valid store and the copy holding it; None if neither copy is valid.

        The headers are read first and the copy whose header claims the higher sequence is
        read whole first: the other is read only if that one is not valid (a copy costs up to
        24 KiB over a serial line; the two headers, 16 bytes each).
        """
        claims = [(int.from_bytes(head[_SEQUENCE_AT:_SEQUENCE_AT + 4], "little"), index)
                  for index in (0, 1) if (head := self._header(flash, index)) is not None]
        for _claimed, index in sorted(claims, key=lambda claim: (-claim[0], claim[1])):
            state = self.read_copy(flash, index)
            if state is not None:
                return state, index
        return None

    def read(self, flash: Flash) -> StoreState:
        """The store: the newest valid copy's, or the empty store if neither is valid."""
        newest = self.newest(flash)
        return StoreState() if newest is None else newest[0]

    def commit(self, flash: Flash, entries: tuple[StoredEntry, ...],
               newest: tuple[StoreState, int] | None) -> StoreState:
        """Make `entries` the store, power-safely (module doc); returns the new state.

        `newest` is what `newest(flash)` returned for the store the change was made to (read
        once by the caller, who judged the change against it). ReadbackError if the copy does
        not read back what was written.
        """
        sequence = 1 if newest is None else newest[0].sequence + 1
        target = self.copies[0 if newest is None else 1 - newest[1]]
        state = StoreState(sequence, tuple(sorted(entries, key=lambda e: e.identifier)))
        data = encode_copy(state)
        if len(data) > target.size:  # the accounting keeps this from happening (module doc)
            raise LayoutError(f"an app store of {len(data)} bytes does not fit {target.name}")
        write_region(flash, target, data)
        return state
