"""The host honours what a board announces (docs/serial-protocol.md §3.1, §5, §6.1-§6.3, §8):
its max_payload, its window, its clock, QUERY's answers and its kept console; driven over a
real pseudo-terminal against an in-process emulator whose board agent records what arrives."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hal.emulator.agent import BoardAgent, Outcome
from hal.emulator.kept_lines import CONSOLE_KEPT
from hal.emulator.server import Emulator, start_emulator
from hal.errors import HalError
from hal.interfaces import FlashGeometry, Machine, ResetCause
from hal.serial.framing import Frame, Reject
from hal.serial.machine import SerialMachine
from hal.serial.messages import RANGE, Op
from hal.soft.machine import SoftwareMachine

GEOMETRY = FlashGeometry(size=1024 * 1024, sector_size=4096, page_size=256)


def noise(length: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(length)


@pytest.fixture
def soft() -> Iterator[SoftwareMachine]:
    with SoftwareMachine(None, GEOMETRY) as soft:
        yield soft


class RecordingAgent(BoardAgent):
    """The emulator's board agent, noting every request it acts on and how many arrived in
    each piece of input (more than one: the host had them in flight together)."""

    def __init__(self, machine: Machine, **options: Any) -> None:
        super().__init__(machine, **options)
        self.requests: list[Frame] = []
        self.per_receive: list[int] = []

    def receive(self, data: bytes) -> Outcome:
        before = len(self.requests)
        outcome = super().receive(data)
        self.per_receive.append(len(self.requests) - before)
        return outcome

    def handle(self, frame: Frame) -> Outcome:
        self.requests.append(frame)
        return super().handle(frame)


def serve(soft: SoftwareMachine, agent_class: type[BoardAgent], **options: Any) -> Emulator:
    """An emulator on a pty whose board is an `agent_class` made with `options` (created last,
    so that its boot hook is the machine's)."""
    emulator = Emulator(soft)
    emulator.agent = emulator.line.agent = agent_class(soft, **options)
    emulator.open_pty()
    return emulator.start()


def test_a_4_kib_board_gets_4_kib_program_chunks(soft: SoftwareMachine) -> None:
    with serve(soft, RecordingAgent, max_payload=4096) as emu, SerialMachine(emu.url) as board:
        agent = emu.agent
        assert isinstance(agent, RecordingAgent) and board.hello.max_payload == 4096
        board.flash.erase(0, 64 * 1024)
        data = noise(64 * 1024)
        board.flash.program(0, data)
        assert board.flash.read(0, len(data)) == data
    programs = [len(f.payload) - 4 for f in agent.requests if f.opcode == Op.FLASH_PROGRAM]
    reads = [RANGE.unpack(f.payload)[1] for f in agent.requests if f.opcode == Op.FLASH_READ]
    assert max(programs) == 4092 and sum(programs) == len(data)  # min(65,536, P - 4)
    assert max(reads) == 4093  # min(65,536, P - 3)
    assert max(len(f.payload) for f in agent.requests) <= 4096
    assert agent.decoder.stats.rejected[Reject.OVERSIZE] == 0


def test_a_ping_or_console_text_the_board_cannot_take_is_refused_before_it_is_sent(
    soft: SoftwareMachine,
) -> None:
    with start_emulator(soft, max_payload=512) as emu, SerialMachine(emu.url) as board:
        sent = board.link_stats.requests
        with pytest.raises(HalError, match="509-byte limit") as refused:
            board.ping(bytes(510))
        assert "\n" not in str(refused.value)
        with pytest.raises(HalError, match="512-byte limit"):
            board.console.log("x" * 513)
        assert board.link_stats.requests == sent
        assert board.ping(bytes(509)) == bytes(509)
        board.console.log("é" * 256)  # 512 bytes of UTF-8: at the limit
        assert board.console.lines()[-1] == "é" * 248  # cut to fit a 509-byte page


def test_a_window_1_board_gets_one_request_at_a_time(soft: SoftwareMachine) -> None:
    with serve(soft, RecordingAgent, window=1) as emu, SerialMachine(emu.url) as board:
        agent = emu.agent
        assert isinstance(agent, RecordingAgent) and board.hello.window == 1
        board.flash.erase(0, 256 * 1024)
        data = noise(200 * 1024, seed=1)
        board.flash.program(0, data)
        assert board.flash.read(0, len(data)) == data
    assert len(agent.requests) > 8 and max(agent.per_receive) == 1


class ForgetfulAgent(RecordingAgent):
    """Loses the reply to the first program chunk on the line, and keeps no program reply
    payloads: the QUERY the host then sends is answered 2 (carried out, reply not kept)."""

    lost = False

    def handle(self, frame: Frame) -> Outcome:
        outcome = super().handle(frame)
        if frame.opcode == Op.FLASH_PROGRAM and not self.lost:
            self.lost = True
            return Outcome([])
        return outcome

    def keeps_reply(self, request: Frame, reply: Frame) -> bool:
        return request.opcode != Op.FLASH_PROGRAM


def test_a_query_answered_not_kept_gets_the_request_resent_unchanged(
    soft: SoftwareMachine,
) -> None:
    with serve(soft, ForgetfulAgent) as emu, SerialMachine(emu.url, timeout=0.3) as board:
        agent = emu.agent
        assert isinstance(agent, ForgetfulAgent)
        data = noise(2048, seed=2)
        board.flash.program(0, data)
        assert board.link_stats.queries == 1
    assert soft.flash.read(0, len(data)) == data
    first, again = [f for f in agent.requests if f.opcode == Op.FLASH_PROGRAM]
    assert (again.seq, again.payload, again.crc) == (first.seq, first.payload, first.crc)


def test_the_host_pages_console_lines_from_where_the_board_starts(soft: SoftwareMachine) -> None:
    for n in range(CONSOLE_KEPT + 50):
        soft.console.log(f"line {n}")
    with start_emulator(soft, max_payload=4096) as emu, SerialMachine(emu.url) as board:
        lines = board.console.lines()
    assert lines == soft.console.lines()[-CONSOLE_KEPT:]


def test_a_host_can_tell_whether_the_boards_clock_is_virtual(soft: SoftwareMachine) -> None:
    with start_emulator(soft) as emu, SerialMachine(emu.url) as board:
        assert board.clock.virtual and board.hello.virtual_clock
    with serve(soft, BoardAgent, virtual_clock=False) as emu, SerialMachine(emu.url) as board:
        assert not board.clock.virtual


def test_an_idle_emulator_is_not_bitten_by_its_watchdog(soft: SoftwareMachine) -> None:
    with start_emulator(soft) as emu, SerialMachine(emu.url) as board:
        boots: list[ResetCause] = []
        board.set_boot_hook(lambda booted: boots.append(booted.reset.last_cause()))
        board.watchdog.start(0.05)
        time.sleep(0.3)  # real time passes; the virtual clock does not
        assert board.ping(b"awake") == b"awake"
        board.watchdog.stop()
        assert boots == [] and board.board_stats().boots == 1


def test_a_host_will_not_ask_for_a_power_on_reset(soft: SoftwareMachine) -> None:
    with start_emulator(soft) as emu, SerialMachine(emu.url) as board:
        with pytest.raises(HalError, match="only a power-up"):
            board.reset.request_reset(ResetCause.POWER_ON)
        assert board.reset.last_cause() is ResetCause.POWER_ON and board.hello.boot_count == 1


class OlderAgent(BoardAgent):
    """A board written before HELLO carried `boot_monotonic`: its HELLO reply stops at 38
    bytes (docs §6.1, "Older boards")."""

    def __init__(self, machine: Machine, **options: Any) -> None:
        super().__init__(machine, **options)
        hello = self._handlers[Op.HELLO]
        self._handlers[Op.HELLO] = lambda payload: hello(payload)[:38]


def test_the_host_reports_the_boards_boot_count_and_uptime_since_its_last_boot(
    soft: SoftwareMachine,
) -> None:
    with serve(soft, BoardAgent) as emu, SerialMachine(emu.url) as board:
        assert (board.reset.boot_count(), board.reset.uptime()) == (1, 0.0)
        board.clock.sleep(7200.0)
        assert board.reset.uptime() == 7200.0
        board.reset.request_reset()
        assert (board.reset.boot_count(), board.reset.uptime()) == (2, 0.0)
        board.clock.sleep(60.0)
        assert board.reset.uptime() == 60.0 == soft.reset.uptime()
        assert board.hello.boot_monotonic == 7200.0 and board.clock.monotonic() == 7260.0


def test_an_older_boards_38_byte_hello_leaves_the_uptime_unknown(soft: SoftwareMachine) -> None:
    with serve(soft, OlderAgent) as emu, SerialMachine(emu.url) as board:
        assert board.hello.boot_monotonic is None
        assert (board.reset.boot_count(), board.reset.uptime()) == (1, None)
        board.reset.request_reset()
        assert (board.reset.boot_count(), board.reset.uptime()) == (2, None)
        board.flash.erase(0, 4096)  # the rest of the link works as before
        assert board.flash.read(0, 4) == b"\xff" * 4
