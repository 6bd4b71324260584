"""§3.1 for a small board: --max-payload 4096, every limit derived from it."""

from __future__ import annotations

import struct

import pytest

from tests.board.boardlink import OP, Link, wire

pytestmark = pytest.mark.board

P = 4096


@pytest.fixture
def small(request, target, start):
    agent = start("--max-payload", str(P))
    with agent.link() as board:
        assert board.hello().max_payload == P
        yield board


def test_ping_limit(small: Link) -> None:
    assert len(small.ok("PING", b"\x11" * (P - 3))) == P - 3
    small.fails("PING", b"\x11" * (P - 2), "BAD_LENGTH")
    small.fails("PING", b"\x11" * P, "BAD_LENGTH")


def test_read_limit(small: Link) -> None:
    assert len(small.read(0, P - 3)) == P - 3
    small.fails("FLASH_READ", struct.pack("<II", 0, P - 2), "BAD_LENGTH")


def test_program_limit(small: Link) -> None:
    small.erase(0, 8192)
    small.program(0, b"\x00" * (P - 4))            # the most a frame carries
    assert small.read(0, P - 4) == b"\x00" * (P - 4)


def test_oversize_frames_dropped(small: Link) -> None:
    dropped = small.stats()[1]
    small.send(wire(OP["PING"], small.seq(), b"\x22" * (P + 1)))
    small.send(wire(OP["FLASH_PROGRAM"], small.seq(), struct.pack("<I", 8192) + b"\x00" * (P - 3)))
    assert small.quiet(0.3) == []
    assert small.stats()[1] == dropped + 2
    assert small.read(8192, 4) == b"\xff" * 4


def test_console_log_at_p(small: Link) -> None:
    assert small.ok("CONSOLE_LOG", b"z" * P) == b""
