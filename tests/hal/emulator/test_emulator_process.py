"""`python -m hal.emulator` as a process, over a real pseudo-terminal: what only a process
shows (it keeps serving, it starts with a power-up, it announces what its options say)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from hal.emulator.launcher import LaunchedBoard, launch_board
from hal.interfaces import ResetCause
from hal.serial.framing import MAX_PAYLOAD, Flag, Frame, FrameDecoder, encode_frame
from hal.serial.machine import SerialMachine
from hal.serial.messages import QUERY_SEEN, U16, ErrorCode, Op, QueryAnswer, unpack_error

SMALL = ["--size", str(1024 * 1024)]


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    return tmp_path / "dev.flash"


class RawHost:
    """A bare pyserial port on the emulator, for frames a SerialMachine would not send."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
        self.decoder = FrameDecoder()

    def ask(self, opcode: int, payload: bytes, seq: int, within: float = 5.0) -> Frame:
        self.port.write(encode_frame(Frame(opcode, seq, Flag.NONE, payload)))
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for frame in self.decoder.feed(self.port.read(1 << 16)):
                if frame.is_reply and frame.seq == seq:
                    return frame
        raise AssertionError(f"no reply to seq {seq}")

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def board(flash: Path) -> Iterator[LaunchedBoard]:
    with launch_board(flash, options=SMALL) as launched:
        yield launched


def test_a_query_of_a_large_ping_reply_keeps_the_emulator_serving(board: LaunchedBoard) -> None:
    noise = random.Random(9).randbytes(MAX_PAYLOAD)
    host = RawHost(board.url)
    try:
        # a frame may carry 65,600 bytes, but an echo that long could not be repeated by QUERY
        refused = host.ask(Op.PING, noise, seq=1)
        assert refused.is_error and unpack_error(refused.payload)[0] == ErrorCode.BAD_LENGTH
        query = host.ask(Op.QUERY, U16.pack(1), seq=2)
        assert query.payload == QUERY_SEEN.pack(QueryAnswer.KEPT, refused.flags, Op.PING) + (
            refused.payload)
        big = noise[:MAX_PAYLOAD - 3]  # the largest PING a board takes
        assert host.ask(Op.PING, big, seq=3).payload == big
        query = host.ask(Op.QUERY, U16.pack(3), seq=4)  # 3 + 65,597 bytes: 65,600
        assert query.payload == QUERY_SEEN.pack(QueryAnswer.KEPT, Flag.REPLY, Op.PING) + big
        assert host.ask(Op.PING, b"still serving", seq=5).payload == b"still serving"
    finally:
        host.close()
    assert board.process.poll() is None


def test_a_restarted_emulator_reports_power_on(flash: Path) -> None:
    with launch_board(flash, options=SMALL) as first, SerialMachine(first.url) as machine:
        machine.reset.request_reset(ResetCause.SOFTWARE)
        assert machine.reset.last_cause() is ResetCause.SOFTWARE
        session = machine.hello.session
        first.process.terminate()
        assert first.process.wait(timeout=10) == 0
    assert flash.with_name("dev.flash.reset").read_text().strip() == "SOFTWARE"
    with launch_board(flash, options=SMALL) as second, SerialMachine(second.url) as machine:
        hello = machine.hello
        assert (hello.last_cause, hello.boot_count) == (ResetCause.POWER_ON, 1)
        assert hello.session != session
        assert machine.reset.last_cause() is ResetCause.POWER_ON
    assert flash.with_name("dev.flash.reset").read_text().strip() == "POWER_ON"


def test_the_emulator_announces_the_max_payload_and_window_it_was_started_with(
    flash: Path,
) -> None:
    options = [*SMALL, "--max-payload", "4096", "--window", "1"]
    with launch_board(flash, options=options) as launched, \
            SerialMachine(launched.url) as machine:
        hello = machine.hello
        assert (hello.max_payload, hello.window, hello.virtual_clock) == (4096, 1, True)
        machine.flash.erase(0, 16 * 1024)
        data = random.Random(4).randbytes(16 * 1024)
        machine.flash.program(0, data)
        assert machine.flash.read(0, len(data)) == data
        assert machine.board_stats().dropped == 0
