"""The serial protocol's framing and payload layouts (hal/serial/framing.py), and the spec's
worked examples."""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.serial.framing import (
    CRC,
    END,
    ESC,
    HEADER,
    MAX_ENCODED,
    MAX_PAYLOAD,
    Flag,
    Frame,
    FrameDecoder,
    MalformedPayload,
    Reject,
    encode_frame,
    frame_body,
    slip_escape,
    slip_unescape,
)
from hal.serial.messages import (
    BoardFlag,
    BoardStats,
    BootBanner,
    ErrorCode,
    Hello,
    Op,
    pack_error,
    pack_lines,
    pack_program,
    unpack_error,
    unpack_lines,
)

SPEC = Path(__file__).resolve().parents[3] / "docs" / "serial-protocol.md"

frames = st.builds(
    Frame,
    opcode=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    flags=st.sampled_from([Flag.NONE, Flag.REPLY, Flag.REPLY | Flag.ERROR, Flag.UNSOLICITED,
                           Flag.REPLY | Flag.REBOOTED]),
    # bias towards the bytes that need escaping
    payload=st.binary(max_size=300) | st.lists(st.sampled_from([END, ESC, 0xDC, 0xDD, 0]),
                                               max_size=50).map(bytes),
)


def raw_frame(header: bytes, payload: bytes) -> bytes:
    """A frame with a correct CRC over whatever header it is given (for building bad frames)."""
    body = header + payload
    return bytes([END]) + slip_escape(body + CRC.pack(zlib.crc32(body))) + bytes([END])


# --- framing round trips -----------------------------------------------------------------------


@given(frames)
def test_a_frame_decodes_to_itself(frame: Frame) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(frame)) == [frame]
    assert decoder.stats.dropped == 0


@given(frames, st.integers(1, 17))
def test_a_frame_fed_in_pieces_decodes_to_itself(frame: Frame, piece: int) -> None:
    wire = encode_frame(frame)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for start in range(0, len(wire), piece):
        out += decoder.feed(wire[start : start + piece])
    assert out == [frame]


@given(st.binary(max_size=500))
def test_escaping_removes_every_end_and_round_trips(raw: bytes) -> None:
    escaped = slip_escape(raw)
    assert END not in escaped
    assert slip_unescape(escaped) == raw


def test_escape_sequences_are_the_rfc_1055_ones() -> None:
    assert slip_escape(bytes([0xC0, 0xDB, 0x01])) == bytes([0xDB, 0xDC, 0xDB, 0xDD, 0x01])


def unescape_byte_by_byte(escaped: bytes) -> bytes | None:
    """RFC 1055 decoding as a board's UART interrupt handler does it."""
    out = bytearray()
    pending_escape = False
    for byte in escaped:
        if pending_escape:
            if byte not in (0xDC, 0xDD):
                return None
            out.append(0xC0 if byte == 0xDC else 0xDB)
            pending_escape = False
        elif byte == 0xDB:
            pending_escape = True
        else:
            out.append(byte)
    return None if pending_escape else bytes(out)


@settings(max_examples=300)
@given(st.lists(st.sampled_from([b"\xdb", b"\xdc", b"\xdd", b"\xc0", b"a", b"\xdb\xdc",
                                 b"\xdb\xdd", b"xyz"]), max_size=40).map(b"".join))
def test_unescaping_agrees_with_a_byte_by_byte_decoder(escaped: bytes) -> None:
    assert slip_unescape(escaped) == unescape_byte_by_byte(escaped)


@pytest.mark.parametrize("bad", [b"\xdb", b"a\xdbb", b"\xdb\xdb\xdc"])
def test_a_stray_escape_is_refused(bad: bytes) -> None:
    assert slip_unescape(bad) is None


@settings(max_examples=200)
@given(st.lists(st.tuples(st.binary(max_size=80), frames), max_size=6), st.binary(max_size=80))
def test_garbage_between_frames_yields_exactly_the_frames(
    chunks: list[tuple[bytes, Frame]], tail: bytes
) -> None:
    stream = b"".join(garbage + encode_frame(frame) for garbage, frame in chunks) + tail
    decoder = FrameDecoder()
    assert decoder.feed(stream) == [frame for _garbage, frame in chunks]


# --- what the decoder drops ------------------------------------------------------------------


def test_a_bad_crc_is_dropped_and_the_next_frame_still_decodes() -> None:
    good = Frame(Op.PING, 7, payload=b"hello")
    body = bytearray(frame_body(good))
    body[-1] ^= 0x01
    damaged = bytes([END]) + slip_escape(bytes(body)) + bytes([END])
    decoder = FrameDecoder()
    assert decoder.feed(damaged + encode_frame(good)) == [good]
    assert decoder.stats.rejected[Reject.BAD_CRC] == 1


def test_a_flipped_payload_bit_is_dropped() -> None:
    wire = bytearray(encode_frame(Frame(Op.FLASH_PROGRAM, 3, payload=pack_program(0, b"data"))))
    wire[12] ^= 0x40
    decoder = FrameDecoder()
    assert decoder.feed(bytes(wire)) == []
    assert decoder.stats.dropped == 1


def test_a_truncated_frame_is_dropped() -> None:
    wire = encode_frame(Frame(Op.PING, 1, payload=b"0123456789"))
    decoder = FrameDecoder()
    assert decoder.feed(wire[:-5] + bytes([END])) == []
    assert decoder.stats.rejected[Reject.BAD_LENGTH] == 1


def test_a_frame_too_short_for_a_header_is_garbage() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\xc0\x01\x02\x03\xc0") == []
    assert decoder.stats.rejected[Reject.GARBAGE] == 1


def test_a_length_field_that_disagrees_is_dropped() -> None:
    header = HEADER.pack(1, Op.PING, 0, 1, 3)  # says 3 bytes, carries 4
    decoder = FrameDecoder()
    assert decoder.feed(raw_frame(header, b"abcd")) == []
    assert decoder.stats.rejected[Reject.BAD_LENGTH] == 1


def test_a_declared_length_over_the_maximum_is_dropped() -> None:
    payload = bytes(MAX_PAYLOAD + 1)
    header = HEADER.pack(1, Op.FLASH_PROGRAM, 0, 1, len(payload))
    decoder = FrameDecoder()
    good = Frame(Op.PING, 2)
    assert decoder.feed(raw_frame(header, payload) + encode_frame(good)) == [good]
    assert decoder.stats.rejected[Reject.OVERSIZE] == 1


def test_a_run_without_end_is_dropped_up_to_the_next_end_and_counted_there_once() -> None:
    decoder = FrameDecoder()
    noise = b"\x55" * 40_000
    out: list[Frame] = []
    for _ in range(MAX_ENCODED // len(noise) + 2):
        out += decoder.feed(noise)
    assert decoder.stats.rejected[Reject.OVERSIZE] == 0  # not yet: it ends at its END
    good = Frame(Op.PING, 9, payload=b"after")
    out += decoder.feed(b"trailing noise" + encode_frame(good))
    assert out == [good]
    assert decoder.stats.rejected[Reject.OVERSIZE] == 1


def test_encode_refuses_an_oversize_payload_and_a_wide_seq() -> None:
    with pytest.raises(MalformedPayload):
        encode_frame(Frame(Op.PING, 1, payload=bytes(MAX_PAYLOAD + 1)))
    with pytest.raises(MalformedPayload):
        encode_frame(Frame(Op.PING, 0x10000))


# --- payload layouts -----------------------------------------------------------------------------


def test_hello_round_trips_and_is_46_bytes_and_a_longer_one_is_read() -> None:
    hello = Hello(1, MAX_PAYLOAD, 16, 921_600, 1 << 24, 4096, 256, 64, 3, 2, 0xDEADBEEF,
                  BoardFlag.VIRTUAL_CLOCK, 7200.5)
    assert len(hello.pack()) == 46 and hello.pack()[37] == 0x01
    assert hello.pack()[38:] == struct.pack("<d", 7200.5)
    assert Hello.unpack(hello.pack()) == hello and hello.virtual_clock
    assert Hello.unpack(hello.pack() + b"later fields") == hello  # room for later fields
    with pytest.raises(MalformedPayload):
        Hello.unpack(hello.pack()[:37])


def test_an_older_boards_38_byte_hello_is_read_with_boot_monotonic_unknown() -> None:
    older = Hello(1, 4096, 1, 0, 1 << 20, 4096, 256, 64, 2, 1, 7, BoardFlag.VIRTUAL_CLOCK)
    assert len(older.pack()) == 38 and older.boot_monotonic is None
    assert Hello.unpack(older.pack()) == older
    assert Hello.unpack(older.pack() + b"\x01\x02") == older  # too short for the field: ignored


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_hello_boot_monotonic_that_is_no_time_reads_as_unknown(value: float) -> None:
    payload = Hello(1, 4096, 1, 0, 1 << 20, 4096, 256, 64, 2, 1, 7).pack()
    assert Hello.unpack(payload + struct.pack("<d", value)).boot_monotonic is None


def test_stats_and_banner_round_trip() -> None:
    stats = BoardStats(10, 2, 1, 3, 4, 5)
    assert BoardStats.unpack(stats.pack()) == stats
    banner = BootBanner(4, 1, 77, "boot 4, cause SOFTWARE ✓")
    assert BootBanner.unpack(banner.pack()) == banner


def test_error_payload_is_code_then_text() -> None:
    payload = pack_error(ErrorCode.FLASH_RULE, "misaligned")
    assert payload[:2] == b"\x04\x00"
    assert unpack_error(payload) == (ErrorCode.FLASH_RULE, "misaligned")


def test_console_lines_page_round_trips_and_stops_at_the_limit() -> None:
    lines = ["first", "", "ünïcödé", "x" * 100]
    payload, count = pack_lines(9, 5, lines, limit=1000)
    assert count == 4 and payload[:10] == bytes.fromhex("09000000 05000000 0400")
    assert unpack_lines(payload) == (9, 5, lines)
    small, count = pack_lines(9, 5, lines, limit=10 + 2 + 5 + 2 + 0 + 1)
    assert count == 2
    assert unpack_lines(small) == (9, 5, ["first", ""])


def test_a_console_line_longer_than_a_page_is_cut_at_a_character_boundary() -> None:
    payload, count = pack_lines(1, 0, ["ü" * 600], limit=509)  # 1,200 bytes; 497 fit
    assert count == 1
    _total, _start, (line,) = unpack_lines(payload)
    assert line == "ü" * 248 and len(payload) == 10 + 2 + 496


def test_console_lines_reply_that_runs_past_its_payload_is_refused() -> None:
    payload, _ = pack_lines(1, 0, ["abc"], limit=1000)
    with pytest.raises(MalformedPayload):
        unpack_lines(payload[:-1])
    with pytest.raises(MalformedPayload):
        unpack_lines(payload + b"x")


# --- the spec's worked examples ------------------------------------------------------------------


def spec_examples() -> dict[str, bytes]:
    """Every ```hex block in the spec that follows an `<!-- example: NAME -->` marker."""
    pattern = re.compile(r"<!-- example: ([\w -]+?) -->\s*```hex\n(.*?)```", re.S)
    return {name: bytes.fromhex(block) for name, block in pattern.findall(SPEC.read_text())}


def test_the_spec_has_the_worked_examples() -> None:
    assert set(spec_examples()) == {
        "program-request header", "program-request payload", "program-request crc",
        "program-request wire", "program-reply wire", "erase-error wire",
        "hello-reply payload", "console-lines-reply payload",
    }


def test_the_spec_worked_examples_are_what_the_code_emits() -> None:
    examples = spec_examples()
    request = Frame(Op.FLASH_PROGRAM, 1, Flag.NONE, pack_program(0x1000, b"\xc0\xdb\x5a"))
    body = frame_body(request)
    assert examples["program-request header"] == body[:9]
    assert examples["program-request payload"] == body[9:-4]
    assert examples["program-request crc"] == body[-4:]
    assert examples["program-request wire"] == encode_frame(request)
    assert examples["program-reply wire"] == encode_frame(Frame(Op.FLASH_PROGRAM, 1, Flag.REPLY))
    error = Frame(Op.FLASH_ERASE, 2, Flag.REPLY | Flag.ERROR,
                  pack_error(ErrorCode.FLASH_RULE, "misaligned"))
    assert examples["erase-error wire"] == encode_frame(error)
    assert FrameDecoder().feed(examples["program-request wire"]) == [request]
    hello = Hello(1, 4096, 1, 0, 1 << 20, 4096, 256, 64, 2, 1, 0x12345678,
                  BoardFlag.VIRTUAL_CLOCK, 7200.5)
    assert examples["hello-reply payload"] == hello.pack()
    assert Hello.unpack(examples["hello-reply payload"]) == hello
    older = dataclasses.replace(hello, boot_monotonic=None)
    assert examples["hello-reply payload"][:38] == older.pack()
    assert Hello.unpack(examples["hello-reply payload"][:38]) == older
    lines, _count = pack_lines(12, 10, ["ok", "é"], limit=4093)
    assert examples["console-lines-reply payload"] == lines
    assert unpack_lines(lines) == (12, 10, ["ok", "é"])


def test_the_spec_crc_figures_hold() -> None:
    text = SPEC.read_text()
    assert "`0xCBF43926`" in text and zlib.crc32(b"123456789") == 0xCBF43926
    body = frame_body(Frame(Op.FLASH_PROGRAM, 1, Flag.NONE, pack_program(0x1000, b"\xc0\xdb\x5a")))
    (crc,) = struct.unpack("<I", body[-4:])
    assert f"`0x{crc:08X}`" in text
