"""§2-§5 on the wire: SLIP, the frame layout, every drop rule, order, version, flags."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.board.boardlink import (
    END,
    ERR,
    ESC,
    OP,
    REBOOTED,
    REPLY,
    UNSOLICITED,
    Link,
    body,
    escape,
    seal,
    wire,
)

pytestmark = pytest.mark.board


def drops(board: Link, candidate: bytes) -> tuple[int, int]:
    """Sends a bad candidate, then a PING: the PING alone is answered. The (dropped, bad CRC)
    counts STATS added for the bad one."""
    before = board.stats()
    board.send(candidate)
    seq = board.seq()
    board.send(wire(OP["PING"], seq, b"after"))
    reply = board.next_reply()
    assert (reply.seq, reply.payload) == (seq, b"after"), "the bad candidate got a reply"
    assert board.quiet(0.1) == []
    after = board.stats()
    # STATS counts itself among the frames received: two STATS and the PING lie between.
    assert after[0] - before[0] == 2
    return after[1] - before[1], after[2] - before[2]


def test_worked_example_program_reply(start) -> None:
    """§3 worked example: the request's wire bytes and the board's reply, byte for byte."""
    request = bytes.fromhex(
        "c0 01 12 00 01 00 07 00 00 00 00 10 00 00 db dc db dd 5a f9 08 91 21 c0")
    assert wire(0x12, 1, bytes.fromhex("00100000c0db5a")) == request
    agent = start()
    with agent.link() as board:
        board.send(request)
        reply = board.next_reply()
        assert reply.wire == bytes.fromhex("c0 01 12 01 01 00 00 00 00 00 aa ee c7 a2 c0")
        assert board.read(0x1000, 3) == bytes.fromhex("c0db5a")


def test_erase_error_layout(board: Link) -> None:
    """§3 worked example: FLASH_RULE for a misaligned erase, flags REPLY|ERROR."""
    reply = board.fails("FLASH_ERASE", struct.pack("<II", 1, 4096), "FLASH_RULE")
    assert reply.flags == REPLY | 0x02
    assert reply.payload[2:].decode("utf-8")  # text for people


def test_reply_escapes_end_and_esc(board: Link) -> None:
    payload = bytes([END, ESC, ESC, END, 0xDC, 0xDD]) * 20
    reply = board.request("PING", payload)
    assert reply.payload == payload
    assert reply.wire[1:-1] == escape(reply.raw)


def test_crc_check_value() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926


def test_empty_candidate_is_not_counted(board: Link) -> None:
    assert drops(board, bytes([END, END, END])) == (0, 0)


def test_bad_escape_dropped(board: Link) -> None:
    good = seal(body(OP["PING"], board.seq(), b"x"))
    bad = good[:9] + bytes([ESC, 0x41]) + good[9:]
    assert drops(board, bytes([END]) + bad + bytes([END])) == (1, 0)


def test_esc_at_end_dropped(board: Link) -> None:
    good = escape(seal(body(OP["PING"], board.seq(), b"x")))
    assert drops(board, bytes([END]) + good + bytes([ESC, END])) == (1, 0)


def test_short_candidate_dropped(board: Link) -> None:
    assert drops(board, bytes([END]) + b"\x01\x02\x00\x05" + bytes([END])) == (1, 0)


def test_length_field_lies_dropped(board: Link) -> None:
    frame = seal(body(OP["PING"], board.seq(), b"abcd", length=3))
    assert drops(board, bytes([END]) + escape(frame) + bytes([END])) == (1, 0)


def test_length_above_max_payload_dropped(board: Link) -> None:
    p = board.hello().max_payload
    frame = seal(body(OP["PING"], board.seq(), b"abcd", length=p + 1))
    assert drops(board, bytes([END]) + escape(frame) + bytes([END])) == (1, 0)


def test_bad_crc_dropped_and_counted(board: Link) -> None:
    frame = bytearray(seal(body(OP["FLASH_ERASE"], board.seq(), struct.pack("<II", 0, 4096))))
    frame[-1] ^= 0x40
    assert drops(board, bytes([END]) + escape(bytes(frame)) + bytes([END])) == (1, 1)


def test_oversize_dropped_up_to_next_end(board: Link) -> None:
    """§4 rule 2: more bytes than 13 + P without an END; a valid frame's bytes inside the
    flood (no END before them) are dropped with it."""
    p = board.hello().max_payload
    inner = escape(seal(body(OP["PING"], board.seq(), b"inside")))
    flood = bytes([END]) + b"\x55" * (2 * (13 + p) + 8) + inner + bytes([END])
    assert drops(board, flood) == (1, 0)


def test_garbage_flood_then_service(board: Link) -> None:
    """Random bytes with ENDs sprinkled in: never a reply, and the board serves on."""
    import random

    rng = random.Random(1055)
    noise = bytes(rng.randrange(256) for _ in range(20_000))
    board.send(noise + bytes([END]))
    assert board.quiet(0.3) == []
    assert board.ok("PING", b"alive") == b"alive"


def test_frames_with_reply_or_unsolicited_ignored(board: Link) -> None:
    for flags in (REPLY, UNSOLICITED, REPLY | 0x02, UNSOLICITED | REBOOTED):
        board.send(wire(OP["PING"], board.seq(), b"ignored", flags=flags))
    assert board.quiet(0.2) == []
    assert board.ok("PING", b"ok") == b"ok"


def test_bad_version_not_cached(board: Link) -> None:
    dups = board.stats()[3]
    frame = wire(OP["PING"], 700, b"v2", version=2)
    for _ in range(2):
        board.send(frame)
        reply = board.next_reply()
        assert reply.seq == 700 and reply.error == ERR["BAD_VERSION"]
        assert reply.version == 1 and reply.flags == REPLY | 0x02
    assert board.stats()[3] == dups


def test_replies_in_arrival_order(board: Link) -> None:
    seqs = [board.seq() for _ in range(8)]
    board.send(b"".join(wire(OP["PING"], s, bytes([i]) * i) for i, s in enumerate(seqs)))
    replies = [board.next_reply() for _ in seqs]
    assert [r.seq for r in replies] == seqs
    assert [r.payload for r in replies] == [bytes([i]) * i for i in range(8)]


def test_frame_without_leading_end_after_power_up(start) -> None:
    """§4: bytes before the first END after power-up are a candidate like any other."""
    agent = start()
    with agent.link() as board:
        board.quiet(0.2)
        board.send(escape(seal(body(OP["PING"], 9, b"first"))) + bytes([END]))
        reply = board.next_reply()
        assert (reply.seq, reply.payload) == (9, b"first")


def test_unsolicited_frames_have_seq_zero(start) -> None:
    agent = start()
    with agent.link() as board:
        board.request("RESET_REQUEST", b"\x01")
        banner = board.wait_unsolicited(OP["BOOT_BANNER"])
        assert banner.seq == 0 and banner.flags == UNSOLICITED
