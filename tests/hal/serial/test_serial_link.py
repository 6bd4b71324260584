"""SerialMachine against the emulator over real pseudo-terminals and loopback TCP sockets.

The emulator runs in a thread (start_emulator) where the test needs to reach the machine behind
it, and as a subprocess (python -m hal.emulator) where it must die or come back.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from hal.emulator.line_noise import FaultRates
from hal.emulator.server import Emulator, start_emulator
from hal.errors import DeviceBusyError, FlashError, LinkError, LinkTimeout, OtpError, PowerLoss
from hal.interfaces import FlashGeometry, Machine, ResetCause
from hal.serial.framing import (
    CRC,
    END,
    HEADER,
    MAX_PAYLOAD,
    Flag,
    Frame,
    FrameDecoder,
    encode_frame,
    slip_escape,
)
from hal.serial.machine import SerialMachine
from hal.serial.messages import BoardStats, ErrorCode, Op, pack_program, unpack_error
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode

GEOMETRY = FlashGeometry(size=1024 * 1024, sector_size=4096, page_size=256)
NOISY = 1e-3  # one byte in 1,000
#: A generous bound for "fails, does not hang": far above the timeouts the tests configure.
NO_HANG_S = 15.0


def noise(length: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(length)


@pytest.fixture
def soft(tmp_path: Path) -> Iterator[SoftwareMachine]:
    with SoftwareMachine(tmp_path / "board.flash", GEOMETRY) as soft:
        yield soft


@pytest.fixture(params=["pty", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def emulator(soft: SoftwareMachine, transport: str) -> Iterator[Emulator]:
    emu = start_emulator(soft, transport=transport)
    yield emu
    emu.close()


def record_boots(board: Machine) -> list[ResetCause]:
    boots: list[ResetCause] = []

    def hook(booted: Machine) -> None:
        assert booted is board
        boots.append(booted.reset.last_cause())

    board.set_boot_hook(hook)
    return boots


# --- every operation, clean line -------------------------------------------------------------


def test_flash_operations(emulator: Emulator, soft: SoftwareMachine) -> None:
    progress: list[tuple[str, int, int]] = []
    with SerialMachine(emulator.url,
                       on_progress=lambda w, d, t: progress.append((w, d, t))) as board:
        assert board.flash.geometry == GEOMETRY
        board.flash.erase(0, 512 * 1024)
        progress.clear()
        data = noise(300 * 1024 + 5)
        board.flash.program(7, data)
        programmed = list(progress)
        assert soft.flash.read(7, len(data)) == data
        assert board.flash.read(7, len(data)) == data
        assert board.flash.hash(7, len(data)) == hashlib.sha256(data).digest()
        assert board.flash.read(GEOMETRY.size, 0) == b""
        board.flash.program(400 * 1024, b"\x00")
        with pytest.raises(FlashError, match="only clears bits"):
            board.flash.program(400 * 1024, b"\x01")
        with pytest.raises(FlashError):
            board.flash.read(GEOMETRY.size - 1, 2)
        stats = board.link_stats
        assert stats.retries == 0 and stats.resyncs == 0 and stats.bytes_sent > len(data)
    assert len(programmed) > 1 and programmed[-1] == ("program", len(data), len(data))
    assert [done for _, done, _ in programmed] == sorted(done for _, done, _ in programmed)


def test_otp_reset_clock_console_watchdog(emulator: Emulator, soft: SoftwareMachine) -> None:
    with SerialMachine(emulator.url) as board:
        assert board.otp.word_count == 64
        board.otp.blow(5, 0b1010)
        board.otp.blow(5, 0b0001)
        assert board.otp.read_word(5) == 0b1011 == soft.otp.read_word(5)
        with pytest.raises(OtpError):
            board.otp.read_word(64)
        boots = record_boots(board)
        board.reset.request_reset(ResetCause.WATCHDOG)
        board.reset.request_reset()
        assert boots == [ResetCause.WATCHDOG, ResetCause.SOFTWARE]
        assert board.reset.last_cause() is ResetCause.SOFTWARE
        wall, mono = board.clock.wall(), board.clock.monotonic()
        board.clock.sleep(3600)
        assert board.clock.monotonic() - mono == pytest.approx(3600)
        assert board.clock.wall() - wall == pytest.approx(3600)
        board.console.log("over the line: ünïcödé")
        assert board.console.lines()[-1] == "over the line: ünïcödé"
        assert board.console.lines() == soft.console.lines()
        board.watchdog.start(10)
        board.clock.sleep(6)
        board.watchdog.kick()
        board.clock.sleep(6)
        board.watchdog.stop()
        assert boots == [ResetCause.WATCHDOG, ResetCause.SOFTWARE]
        board.watchdog.start(10)
        board.clock.sleep(11)  # bites: the sleep's reply says so, the hook runs on the host
        assert boots[-1] is ResetCause.WATCHDOG and len(boots) == 3
        assert board.ping(b"\xc0\xdb echo") == b"\xc0\xdb echo"
        assert board.board_stats().boots == board.hello.boot_count == 4
        assert "cause WATCHDOG" in board.link_stats.console[-1]
        assert board.link_stats.retries == 0  # a clean line: reboots are waited out, not retried


def test_a_closed_machine_refuses_work(emulator: Emulator) -> None:
    board = SerialMachine(emulator.url)
    board.close()
    with pytest.raises(LinkError):
        board.clock.wall()


def test_a_second_host_on_the_same_pty_is_busy(soft: SoftwareMachine) -> None:
    with start_emulator(soft) as emu, SerialMachine(emu.url) as first:
        with pytest.raises(DeviceBusyError, match="another process is using the port"):
            SerialMachine(emu.url)
        assert first.ping(b"still mine") == b"still mine"


def test_a_port_that_does_not_exist_is_a_link_error(tmp_path: Path) -> None:
    with pytest.raises(LinkError):
        SerialMachine(str(tmp_path / "no-such-tty"))


# --- a noisy line ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["corrupt", "drop", "duplicate"])
def test_noisy_pty_program_lands_exactly(soft: SoftwareMachine, kind: str) -> None:
    with start_emulator(soft, rates=FaultRates(**{kind: NOISY}), seed=11) as emu, \
            SerialMachine(emu.url, timeout=0.5) as board:
        board.flash.erase(0, 256 * 1024)
        data = noise(256 * 1024, seed=1)
        board.flash.program(0, data)
        assert board.flash.hash(0, len(data)) == hashlib.sha256(data).digest()
        assert soft.flash.read(0, len(data)) == data
        stats = board.link_stats
        board_stats = board.board_stats()
    faults_rx, faults_tx = emu.fault_counts
    assert faults_rx.bytes_seen and faults_tx.bytes_seen
    assert stats.retries > 0
    assert board_stats.dropped > 0 or stats.resyncs > 0


def test_noisy_tcp_line_all_faults_at_once(soft: SoftwareMachine) -> None:
    rates = FaultRates(NOISY, NOISY, NOISY)
    with start_emulator(soft, transport="tcp", rates=rates, seed=5) as emu, \
            SerialMachine(emu.url, timeout=0.5, retries=12) as board:
        boots = record_boots(board)
        board.flash.erase(0, 128 * 1024)
        data = noise(128 * 1024, seed=2)
        board.flash.program(0, data)
        assert board.flash.read(0, len(data)) == data
        for _ in range(4):
            board.reset.request_reset()
        assert boots == [ResetCause.SOFTWARE] * 4  # each reset applied exactly once
        assert board.board_stats().boots == 5
        assert board.link_stats.retries > 0


# --- a host that misbehaves --------------------------------------------------------------------


class RawHost:
    """A bare pyserial port on the emulator, for sending frames the SerialMachine never would."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
        self.decoder = FrameDecoder()

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def reply(self, seq: int, within: float = 5.0) -> Frame:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for frame in self.decoder.feed(self.port.read(4096)):
                if frame.is_reply and frame.seq == seq:
                    return frame
        raise AssertionError(f"no reply to seq {seq}")

    def close(self) -> None:
        self.port.close()


def test_garbage_unknown_opcodes_and_oversize_frames_change_nothing(
    emulator: Emulator, soft: SoftwareMachine
) -> None:
    soft.flash.program(0, b"\x00" * 64)
    before = soft.flash.hash(0, GEOMETRY.size)
    host = RawHost(emulator.url)
    try:
        host.send(bytes(range(256)) * 8)  # garbage, ENDs and ESCs included
        host.send(encode_frame(Frame(0x7E, 1)))
        assert unpack_error(host.reply(1).payload)[0] == ErrorCode.UNKNOWN_OPCODE
        big = pack_program(0, bytes(MAX_PAYLOAD))  # longer than any frame may be
        body = HEADER.pack(1, Op.FLASH_PROGRAM, 0, 2, len(big)) + big
        host.send(bytes([END]) + slip_escape(body + CRC.pack(0)) + bytes([END]))
        truncated = encode_frame(Frame(Op.FLASH_PROGRAM, 3, Flag.NONE, pack_program(0, b"\x00")))
        host.send(truncated[:-6] + bytes([END]))
        host.send(encode_frame(Frame(Op.FLASH_ERASE, 4, Flag.NONE, b"\x00")))
        bad_length = host.reply(4)
        assert unpack_error(bad_length.payload)[0] == ErrorCode.BAD_LENGTH
        host.send(encode_frame(Frame(Op.STATS, 5)))
        stats = BoardStats.unpack(host.reply(5).payload)
        assert stats.dropped >= 3 and stats.errors == 2
    finally:
        host.close()
    assert soft.flash.hash(0, GEOMETRY.size) == before
    with SerialMachine(emulator.url) as board:  # and it keeps serving
        assert board.flash.read(0, 4) == b"\x00" * 4


def test_a_program_the_board_did_not_keep_is_caught_by_the_hash(
    emulator: Emulator, soft: SoftwareMachine
) -> None:
    data = b"\xff" + noise(200 * 1024)

    def tamper(_what: str, done: int, _total: int) -> None:
        if done < len(data):  # a bit flips in the board's flash behind the link's back
            soft.flash.program(0, b"\x7f")

    with SerialMachine(emulator.url, on_progress=tamper) as board:
        with pytest.raises(FlashError, match="does not match the data sent"):
            board.flash.program(0, data)
        assert board.flash.read(0, 1) == b"\x7f"


def test_a_repeated_program_frame_is_applied_once(
    emulator: Emulator, soft: SoftwareMachine
) -> None:
    host = RawHost(emulator.url)
    try:
        frame = encode_frame(Frame(Op.FLASH_PROGRAM, 77, Flag.NONE, pack_program(0, b"\x5a")))
        host.send(frame)
        first = host.reply(77)
        ops = soft.faults.op_count
        host.send(frame)
        assert host.reply(77) == first
        assert soft.faults.op_count == ops
        host.send(encode_frame(Frame(Op.STATS, 78)))
        assert BoardStats.unpack(host.reply(78).payload).duplicates == 1
    finally:
        host.close()


# --- power, death and resurrection -------------------------------------------------------------


def test_a_power_cut_on_the_board_raises_power_loss_until_power_on(
    emulator: Emulator, soft: SoftwareMachine
) -> None:
    with SerialMachine(emulator.url) as board:
        boots = record_boots(board)
        board.flash.erase(0, 4096)
        soft.faults.arm(1, CutMode.BEFORE)
        with pytest.raises(PowerLoss):
            board.flash.program(0, bytes(1024))
        with pytest.raises(PowerLoss):
            board.clock.wall()
        board.power_on()
        assert boots == [ResetCause.POWER_LOSS]
        assert board.flash.read(0, 512) == bytes(256) + b"\xff" * 256  # first page only


def spawn(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m hal.emulator` on a 1 MiB flash; the process and its port URL."""
    command = [sys.executable, "-m", "hal.emulator", "--flash", str(tmp_path / "sub.flash"),
               "--size", str(GEOMETRY.size), "--exit-with-parent", *args]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 15)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        pytest.fail(f"the emulator printed no port: {process.communicate()[1]}")
    return process, line.split()[-1]


def finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()


@pytest.mark.parametrize("where", ["--pty", "--tcp=127.0.0.1:0"])
def test_a_killed_emulator_gives_link_error_not_a_hang(tmp_path: Path, where: str) -> None:
    process, url = spawn(tmp_path, where)
    try:
        board = SerialMachine(url, timeout=1.0, retries=2)
        board.flash.erase(0, 4096)
        process.kill()
        process.wait()
        started = time.monotonic()
        with pytest.raises(LinkError):
            board.flash.read(0, 4096)
        with pytest.raises(LinkError):  # and the next call cannot reopen it either
            board.flash.read(0, 4096)
        assert time.monotonic() - started < NO_HANG_S
        board.close()
    finally:
        finish(process)


def test_a_board_that_stops_answering_times_out(tmp_path: Path) -> None:
    process, url = spawn(tmp_path, "--pty")
    try:
        board = SerialMachine(url, timeout=0.3, retries=2)
        os.kill(process.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(LinkTimeout):
            board.clock.monotonic()
        assert time.monotonic() - started < NO_HANG_S
        os.kill(process.pid, signal.SIGCONT)
        board.close()
    finally:
        finish(process)


def test_an_emulator_that_comes_back_is_reconnected(tmp_path: Path) -> None:
    process, url = spawn(tmp_path, "--tcp", "127.0.0.1:0")
    port = url.rsplit(":", 1)[1]
    try:
        board = SerialMachine(url, timeout=2.0)
        boots = record_boots(board)
        board.flash.erase(0, 4096)
        board.flash.program(0, b"survives")
        process.kill()
        process.wait()
        with pytest.raises(LinkError):
            board.flash.read(0, 8)
        process, _ = spawn(tmp_path, "--tcp", f"127.0.0.1:{port}")
        assert board.flash.read(0, 8) == b"survives"
        assert boots == [ResetCause.POWER_ON]  # a new power-up: the hook ran once
        assert board.link_stats.reconnects == 1
        board.close()
    finally:
        finish(process)


# --- pacing and the command line -----------------------------------------------------------------


def test_a_paced_board_keeps_to_its_line_rate(soft: SoftwareMachine) -> None:
    baud = 400_000
    with start_emulator(soft, baud=baud) as emu, SerialMachine(emu.url) as board:
        assert board.hello.baud == baud
        started = time.monotonic()
        board.flash.read(0, 16 * 1024)
        elapsed = time.monotonic() - started
    assert elapsed >= 16 * 1024 * 10 / baud
