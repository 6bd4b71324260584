"""The boot record's struct codec against its construct declaration (`RecordFormat`)."""

from __future__ import annotations

import struct
import zlib

import pytest
from construct import ConstructError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_model.device.bootrecord import (
    MAGIC,
    NO_SLOT,
    RECORD_SIZE,
    BootRecord,
    RecordFormat,
    RecordState,
    SlotRef,
    SlotSet,
    decode_record,
    encode_record,
)

U32 = st.integers(0, 0xFFFF_FFFF)
REFS = st.one_of(
    st.just(SlotRef(None)),
    st.builds(SlotRef, st.sampled_from([0, 1]), U32, st.binary(min_size=32, max_size=32)),
)
RECORDS = st.builds(BootRecord, U32, st.sampled_from(list(RecordState)),
                    st.builds(SlotSet, REFS, REFS), st.builds(SlotSet, REFS, REFS),
                    st.integers(0, 2**64 - 1))


def declared_bytes(record: BootRecord) -> bytes:
    """What RecordFormat builds for `record`."""
    def ref(r: SlotRef) -> dict[str, object]:
        return {"slot": NO_SLOT if r.slot is None else r.slot, "length": r.length,
                "digest": r.digest}

    def slot_set(s: SlotSet) -> dict[str, object]:
        return {"keystore": ref(s.keystore), "store": ref(s.store)}

    body = {"state": int(record.state), "sequence": record.sequence,
            "active": slot_set(record.active), "fallback": slot_set(record.fallback),
            "manifest_date": record.manifest_date}
    return bytes(RecordFormat.build({"body": {"value": body}}))


def declared_record(raw: bytes) -> BootRecord | None:
    """What RecordFormat parses `raw` as; None where the parse or a field's meaning fails."""
    try:
        body = RecordFormat.parse(raw).body.value
        state = RecordState(body.state)
    except (ConstructError, ValueError):
        return None

    def ref(value: dict[str, object]) -> SlotRef | None:
        slot, length, digest = value["slot"], value["length"], value["digest"]
        assert isinstance(slot, int) and isinstance(length, int) and isinstance(digest, bytes)
        if slot == NO_SLOT:
            return SlotRef(None)
        return SlotRef(slot, length, digest) if slot in (0, 1) else None

    refs = [ref(s[c]) for s in (body.active, body.fallback) for c in ("keystore", "store")]
    if any(r is None for r in refs):
        return None
    ks, st_, fks, fst = refs
    assert ks is not None and st_ is not None and fks is not None and fst is not None
    return BootRecord(int(body.sequence), state, SlotSet(ks, st_), SlotSet(fks, fst),
                      int(body.manifest_date))


@settings(max_examples=200, deadline=None)
@given(RECORDS)
def test_the_codec_writes_the_declared_bytes_and_reads_them_back(record: BootRecord) -> None:
    raw = encode_record(record)
    assert raw == declared_bytes(record) and len(raw) == RECORD_SIZE
    assert decode_record(raw) == record == declared_record(raw)


BODY_SIZE = RECORD_SIZE - 4
SLOT_OFFSETS = [12 + 37 * i for i in range(4)]  # after the 12-byte header, 37 bytes per ref


@st.composite
def record_bytes(draw: st.DrawFn) -> bytes:
    """164 bytes that pass the header, the slot bytes and the CRC, or fail some of them."""
    body = bytearray(draw(st.binary(min_size=BODY_SIZE, max_size=BODY_SIZE)))
    if draw(st.booleans()):  # a valid header: magic, version, a state, reserved 0
        body[:8] = MAGIC + struct.pack("<HBB", 1, draw(st.sampled_from([0, 1, 2, 3])), 0)
    if draw(st.booleans()):  # slot bytes that mean something (or nearly)
        for at in SLOT_OFFSETS:
            body[at] = draw(st.sampled_from([0, 1, 2, NO_SLOT]))
    crc = zlib.crc32(body) ^ (0 if draw(st.booleans()) else 1 << draw(st.integers(0, 31)))
    return bytes(body) + struct.pack("<I", crc)


@settings(max_examples=400, deadline=None)
@given(record_bytes())
@example(b"\xff" * RECORD_SIZE)
@example(bytes(RECORD_SIZE))
def test_the_codec_reads_any_bytes_as_the_declaration_does(raw: bytes) -> None:
    assert decode_record(raw) == declared_record(raw)


def test_a_digest_of_the_wrong_length_is_refused() -> None:
    record = BootRecord(1, RecordState.CONFIRMED, SlotSet(SlotRef(0, 1, b"short"), SlotRef(None)),
                        SlotSet(SlotRef(None), SlotRef(None)))
    with pytest.raises(ValueError, match="digest is 32 bytes, not 5"):
        encode_record(record)
