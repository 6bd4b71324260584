"""The boot record: which slot of each component the device boots, committed atomically.

Two copies, one per flash sector. A record carries a sequence number and a CRC-32 over all its
other bytes; the valid copy (magic, version and CRC check out) with the highest sequence number
is the boot record. A commit writes the record with sequence + 1 into the *other* copy (erase
its sector, program one page): until that program completes, readers still find the previous
record in the untouched copy; once it completes, they find the new one. A cut at any point of
the commit (before, after, or tearing the erase or the program) leaves one of the two records,
never a mix, because a partly written copy fails its CRC.

Record layout (little-endian, 172 bytes):
    magic "FWBR", u16 version 2, u8 state (1 confirmed, 2 trial), u8 reserved 0, u32 sequence,
    active set, fallback set: per component (keystore, store) a slot reference:
        u8 slot (0 A, 1 B, 0xFF none), u32 image length, 32-byte SHA-256 of the image,
    u64 manifest date: the build date of the newest update manifest the device installed (its
        version: an older manifest is a replay, refused); carried by every later record,
    u32 CRC-32 of everything before it.

`RecordFormat` declares it (construct); the codec below packs and unpacks the same bytes with
one `struct` call each way, with the struct derived from the declaration (a boot and every
commit go through it; the tests check codec and declaration against each other).
"""

from __future__ import annotations

import enum
import functools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

from construct import (
    Bytes,
    Checksum,
    Const,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    RawCopy,
    Struct,
    this,
)

from firmware_model.device.flash_layout import FlashLayout, slot_name
from firmware_model.image import derive
from firmware_model.trust.components import Component
from hal.interfaces import Flash

MAGIC = b"FWBR"
NO_SLOT = 0xFF

SlotRefFormat = Struct("slot" / Int8ul, "length" / Int32ul, "digest" / Bytes(32))
SlotSetFormat = Struct("keystore" / SlotRefFormat, "store" / SlotRefFormat)
RecordBody = Struct(
    "magic" / Const(MAGIC),
    "version" / Const(2, Int16ul),
    "state" / Int8ul,
    "reserved" / Const(0, Int8ul),
    "sequence" / Int32ul,
    "active" / SlotSetFormat,
    "fallback" / SlotSetFormat,
    "manifest_date" / Int64ul,
)
RecordFormat = Struct(
    "body" / RawCopy(RecordBody),
    "crc" / Checksum(Int32ul, lambda data: zlib.crc32(data), this.body.data),
)
RECORD_SIZE = int(RecordFormat.sizeof())
VERSION = 2

#: The record body as one struct, derived from `RecordBody`: header, then (slot, length,
#: digest) for the active keystore, active store, fallback keystore and fallback store, then the
#: manifest date; the CRC follows it.
_BODY = derive.run(RecordBody).struct
_CRC = derive.fields(RecordFormat, "crc").struct


class RecordState(enum.IntEnum):
    """A confirmed record boots as is; a trial record is confirmed by its first good boot."""

    CONFIRMED = 1
    TRIAL = 2


@dataclass(frozen=True)
class SlotRef:
    """An image committed to a slot: which slot, how long, its SHA-256. Slot None: nothing."""

    slot: int | None
    length: int = 0
    digest: bytes = bytes(32)

    @property
    def empty(self) -> bool:
        return self.slot is None

    def describe(self) -> str:
        return "none" if self.slot is None else f"slot {slot_name(self.slot)}"

    def to_json(self) -> dict[str, object]:
        return {"slot": None if self.slot is None else slot_name(self.slot),
                "length": self.length, "sha256": self.digest.hex()}


EMPTY = SlotRef(None)


@dataclass(frozen=True)
class SlotSet:
    """One slot reference per component: what boots together."""

    keystore: SlotRef
    store: SlotRef

    def __getitem__(self, component: Component) -> SlotRef:
        return self.keystore if component is Component.KEYSTORE else self.store

    def with_refs(self, refs: Mapping[Component, SlotRef]) -> SlotSet:
        """This set with the components of `refs` replaced."""
        return SlotSet(refs.get(Component.KEYSTORE, self.keystore),
                       refs.get(Component.STORE, self.store))

    def to_json(self) -> dict[str, object]:
        return {c.value: self[c].to_json() for c in Component}


@dataclass(frozen=True)
class BootRecord:
    """What to boot (`active`), what to fall back to, and whether `active` is on trial."""

    sequence: int
    state: RecordState
    active: SlotSet
    fallback: SlotSet
    manifest_date: int = 0  # the newest update manifest installed: older ones are replays

    def trial(self, refs: Mapping[Component, SlotRef], manifest_date: int = 0) -> BootRecord:
        """The next record: `refs` on trial, falling back to what is active now, installed
        from a manifest built at `manifest_date` (the record keeps the newest date)."""
        return BootRecord(self.sequence + 1, RecordState.TRIAL, self.active.with_refs(refs),
                          self.active, max(self.manifest_date, manifest_date))

    def confirmed(self) -> BootRecord:
        """The next record: the active set confirmed, the fallback kept."""
        return replace(self, sequence=self.sequence + 1, state=RecordState.CONFIRMED)

    def reverted(self) -> BootRecord:
        """The next record: back to the fallback set, confirmed."""
        return BootRecord(self.sequence + 1, RecordState.CONFIRMED, self.fallback, self.fallback,
                          self.manifest_date)

    def to_json(self) -> dict[str, object]:
        return {"sequence": self.sequence, "state": self.state.name.lower(),
                "active": self.active.to_json(), "fallback": self.fallback.to_json(),
                "manifest_date": self.manifest_date}


def _ref_fields(ref: SlotRef) -> tuple[int, int, bytes]:
    if len(ref.digest) != 32:
        raise ValueError(f"a slot reference's digest is 32 bytes, not {len(ref.digest)}")
    return NO_SLOT if ref.slot is None else ref.slot, ref.length, ref.digest


def encode_record(record: BootRecord) -> bytes:
    """The record's bytes, CRC included (ValueError / struct.error if a field does not fit)."""
    refs = (record.active.keystore, record.active.store,
            record.fallback.keystore, record.fallback.store)
    body = _BODY.pack(MAGIC, VERSION, int(record.state), 0, record.sequence,
                      *(field for ref in refs for field in _ref_fields(ref)),
                      record.manifest_date)
    return body + _CRC.pack(zlib.crc32(body))


def _ref(slot: int, length: int, digest: bytes) -> SlotRef:
    if slot == NO_SLOT:
        return EMPTY
    if slot not in (0, 1):
        raise ValueError(f"slot {slot}")
    return SlotRef(slot, length, digest)


def decode_record(data: bytes) -> BootRecord | None:
    """The record in `data` (a copy's first RECORD_SIZE bytes), or None if it is not valid."""
    raw = bytes(data[:RECORD_SIZE])
    if not raw.startswith(MAGIC):
        return None  # an erased or never written copy: no need to parse it
    return _decode(raw)


@functools.lru_cache(maxsize=16)
def _decode(raw: bytes) -> BootRecord | None:
    """Decode one copy's bytes (a pure function of them, so memoized: a boot and the commits
    around it read the same two copies again and again)."""
    if len(raw) != RECORD_SIZE or zlib.crc32(raw[: _BODY.size]) != _CRC.unpack_from(
            raw, _BODY.size)[0]:
        return None
    magic, version, state, reserved, sequence, *fields, manifest_date = _BODY.unpack_from(raw)
    if magic != MAGIC or version != VERSION or reserved != 0:
        return None
    try:
        refs = [_ref(*fields[i : i + 3]) for i in range(0, len(fields), 3)]
        return BootRecord(sequence, RecordState(state), SlotSet(refs[0], refs[1]),
                          SlotSet(refs[2], refs[3]), manifest_date)
    except ValueError:
        return None


def first_record(active: SlotSet) -> BootRecord:
    """The record a freshly provisioned device starts with: `active` confirmed, no fallback."""
    return BootRecord(1, RecordState.CONFIRMED, active, SlotSet(EMPTY, EMPTY))


class RecordArea:
    """Reads and commits the boot record in the two copies `layout` reserves for it."""

    def __init__(self, layout: FlashLayout) -> None:
        self.layout = layout

    def read_copies(self, flash: Flash) -> list[BootRecord | None]:
        """Each copy's record, None where a copy is not valid."""
        return [decode_record(flash.read(region.offset, RECORD_SIZE))
                for region in self.layout.record_copies]

    def newest(self, flash: Flash) -> tuple[BootRecord, int] | None:
        """The newest valid record and the copy holding it; None if neither copy is valid."""
        found = [(record, copy) for copy, record in enumerate(self.read_copies(flash))
                 if record is not None]
        if not found:
            return None
        return max(found, key=lambda pair: (pair[0].sequence, -pair[1]))

    def read(self, flash: Flash) -> BootRecord | None:
        """The boot record (the newest valid copy), or None on a device never provisioned."""
        newest = self.newest(flash)
        return None if newest is None else newest[0]

    def commit(self, flash: Flash, record: BootRecord) -> None:
        """Make `record` the boot record: write it over the copy not holding the newest one.

        Power-safe: see the module docstring. `record.sequence` must exceed the newest's.
        """
        newest = self.newest(flash)
        if newest is not None and record.sequence <= newest[0].sequence:
            raise ValueError(
                f"record {record.sequence} does not supersede record {newest[0].sequence}"
            )
        target = self.layout.record_copies[1 - newest[1] if newest is not None else 0]
        flash.erase(target.offset, target.size)
        flash.program(target.offset, encode_record(record))
