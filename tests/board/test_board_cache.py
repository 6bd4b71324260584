"""§5: the reply cache, exactly-once, sessions (HELLO), seq wrap."""

from __future__ import annotations

import struct

import pytest

from tests.board.boardlink import OP, Link, wire

pytestmark = pytest.mark.board

SECTOR = 4096


def sector(board: Link, index: int) -> int:
    offset = (index * SECTOR) % board.hello().flash_size
    board.erase(offset, SECTOR)
    return offset


def test_resent_program_not_applied_twice(board: Link) -> None:
    offset = sector(board, 40)
    seq = board.seq()
    frame = wire(OP["FLASH_PROGRAM"], seq, struct.pack("<I", offset) + b"\x3c" * 8)
    board.send(frame)
    first = board.next_reply()
    board.erase(offset, SECTOR)                      # so a second program would show
    dups = board.stats()[3]
    board.send(frame)                                # the host re-sends: same seq, same bytes
    second = board.next_reply()
    assert second.raw == first.raw
    assert board.read(offset, 8) == b"\xff" * 8, "a duplicate FLASH_PROGRAM was carried out"
    assert board.stats()[3] == dups + 1


def test_duplicate_error_reply_is_the_same(board: Link) -> None:
    offset = sector(board, 41)
    board.program(offset, b"\x00")
    frame = wire(OP["FLASH_PROGRAM"], board.seq(), struct.pack("<I", offset) + b"\x01")
    board.send(frame)
    first = board.next_reply()
    board.send(frame)
    assert board.next_reply().raw == first.raw and first.flags & 0x02


def test_seq_wrap_with_other_fingerprint_is_new(board: Link) -> None:
    offset = sector(board, 42)
    seq = board.seq()
    board.ok("FLASH_PROGRAM", struct.pack("<I", offset) + b"\xf0", seq=seq)
    board.ok("FLASH_PROGRAM", struct.pack("<I", offset + 1) + b"\x0f", seq=seq)  # same seq
    assert board.read(offset, 2) == b"\xf0\x0f"
    # same opcode, same length, other bytes: still new
    board.ok("FLASH_PROGRAM", struct.pack("<I", offset + 2) + b"\x0f", seq=seq)
    assert board.read(offset, 3) == b"\xf0\x0f\x0f"


def test_hello_empties_the_cache(board: Link) -> None:
    offset = sector(board, 43)
    seq = board.seq()
    frame = wire(OP["FLASH_PROGRAM"], seq, struct.pack("<I", offset) + b"\x00")
    board.send(frame)
    board.next_reply()
    board.hello()                                    # a new session
    assert board.ok("QUERY", struct.pack("<H", seq)) == b"\x00"
    board.erase(offset, SECTOR)
    board.send(frame)                                # a new host's request, byte-identical
    board.next_reply()
    assert board.read(offset, 1) == b"\x00", "HELLO did not empty the reply cache"


def test_hello_is_never_answered_from_the_cache(board: Link) -> None:
    frame = wire(OP["HELLO"], 555)
    board.send(frame)
    board.next_reply()
    offset = sector(board, 44)
    seq = board.seq()
    program = wire(OP["FLASH_PROGRAM"], seq, struct.pack("<I", offset) + b"\x00")
    board.send(program)
    board.next_reply()
    board.send(frame)                                # the same HELLO again: carried out
    board.next_reply()
    assert board.ok("QUERY", struct.pack("<H", seq)) == b"\x00"


def test_cache_holds_at_least_64(board: Link) -> None:
    offset = sector(board, 45)
    seq = board.seq()
    board.ok("FLASH_PROGRAM", struct.pack("<I", offset) + b"\x00", seq=seq)
    for _ in range(62):
        board.ok("PING", b"")
    assert board.ok("QUERY", struct.pack("<H", seq))[:1] == b"\x01"


def test_duplicate_idempotent_read_same_reply(board: Link) -> None:
    offset = sector(board, 46)
    board.program(offset, bytes(range(100)))
    frame = wire(OP["FLASH_READ"], board.seq(), struct.pack("<II", offset, 100))
    board.send(frame)
    first = board.next_reply()
    board.send(frame)
    assert board.next_reply().raw == first.raw


def test_query_is_cached_like_any_request(board: Link) -> None:
    seq = board.seq()
    board.ok("PING", b"q", seq=seq)
    qseq = board.seq()
    first = board.ok("QUERY", struct.pack("<H", seq), seq=qseq)
    assert first[:1] == b"\x01"
    # about a QUERY the answer is always 2 (§6.2): its reply may be P bytes, too long to repeat
    assert board.ok("QUERY", struct.pack("<H", qseq)) == bytes([2, 0x01, OP["QUERY"]])
