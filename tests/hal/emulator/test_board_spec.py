"""The board agent against the revised docs/serial-protocol.md, frame by frame, in-process: the
payload limits of a board's `max_payload` (§3.1, §4), QUERY's answers (§6.2), HELLO's flags
(§6.1), the kept console (§6.3), zero-length flash requests (§6.4), OTP (§6.5), reset causes
and the watchdog (§6.6), STATS (§6.7), which error wins (§7) and POWER_ON at power-up (§9).
Each test is named after the fault it stops."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hal.emulator.agent import BoardAgent, RebootKind
from hal.emulator.kept_lines import CONSOLE_KEPT
from hal.interfaces import FlashGeometry, ResetCause
from hal.serial.framing import (
    CRC,
    END,
    HEADER,
    MAX_PAYLOAD,
    Flag,
    Frame,
    Reject,
    encode_frame,
    max_encoded,
    slip_escape,
)
from hal.serial.messages import (
    F64,
    OTP_BLOW,
    QUERY_SEEN,
    RANGE,
    U8,
    U16,
    U32,
    BoardFlag,
    BoardStats,
    BootBanner,
    ErrorCode,
    Hello,
    Limits,
    Op,
    QueryAnswer,
    pack_program,
    unpack_error,
    unpack_lines,
)
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode

SIZE = 64 * 1024
GEOMETRY = FlashGeometry(size=SIZE, sector_size=4096, page_size=256)


@pytest.fixture
def soft() -> Iterator[SoftwareMachine]:
    with SoftwareMachine(None, GEOMETRY) as soft:
        yield soft


@pytest.fixture
def agent(soft: SoftwareMachine) -> BoardAgent:
    return BoardAgent(soft, session=77)


def send(agent: BoardAgent, frame: Frame) -> list[Frame]:
    """The frames the board sends back for `frame` (replies and pushed console lines)."""
    return agent.receive(encode_frame(frame)).frames


def ask(agent: BoardAgent, opcode: int, payload: bytes = b"", seq: int = 1) -> Frame:
    """One request's reply; also checks it fits the board's limit and can go on the wire."""
    reply = send(agent, Frame(opcode, seq, Flag.NONE, payload))[0]
    assert reply.is_reply and reply.seq == seq and reply.opcode == opcode
    limits = agent.limits
    assert len(reply.payload) <= (limits.query_reply if opcode == Op.QUERY else limits.reply)
    encode_frame(reply)
    return reply


def error_code(reply: Frame) -> int:
    assert reply.is_error, reply
    return unpack_error(reply.payload)[0]


def raw_frame(opcode: int, seq: int, payload: bytes, declared: int | None = None) -> bytes:
    """A request with a correct CRC whatever its length field says (encode_frame refuses)."""
    body = HEADER.pack(1, opcode, 0, seq, len(payload) if declared is None else declared)
    body += payload
    return bytes([END]) + slip_escape(body + CRC.pack(zlib.crc32(body))) + bytes([END])


# --- §3.1 and §4: a board's own max_payload ----------------------------------------------------


def test_a_query_of_a_large_ping_reply_keeps_the_board_serving(agent: BoardAgent) -> None:
    big = bytes(range(256)) * (MAX_PAYLOAD // 256) + bytes(MAX_PAYLOAD % 256 - 3)
    assert len(big) == MAX_PAYLOAD - 3
    assert ask(agent, Op.PING, big).payload == big
    query = ask(agent, Op.QUERY, U16.pack(1), seq=2)  # 3 + (P - 3) bytes: exactly P
    assert query.payload == QUERY_SEEN.pack(QueryAnswer.KEPT, Flag.REPLY, Op.PING) + big
    assert ask(agent, Op.QUERY, U16.pack(2), seq=3).payload == QUERY_SEEN.pack(
        QueryAnswer.NOT_KEPT, Flag.REPLY, Op.QUERY)  # a QUERY's reply is not repeated in another
    assert error_code(ask(agent, Op.PING, big + b"!", seq=4)) == ErrorCode.BAD_LENGTH
    assert ask(agent, Op.PING, b"still serving", seq=5).payload == b"still serving"


@pytest.mark.parametrize("max_payload", [512, 4096, MAX_PAYLOAD])
def test_no_reply_outgrows_what_query_can_repeat(soft: SoftwareMachine, max_payload: int) -> None:
    agent = BoardAgent(soft, max_payload=max_payload)
    limits = agent.limits
    soft.console.log("é" * 40_000)  # a line longer than any page
    requests = [
        (Op.PING, bytes(limits.ping)),
        (Op.FLASH_READ, RANGE.pack(0, limits.read_length)),
        (Op.CONSOLE_LINES, U32.pack(0)),
    ]
    for seq, (opcode, payload) in enumerate(requests, 1):
        reply = ask(agent, opcode, payload, seq)
        assert not reply.is_error and len(reply.payload) <= max_payload - 3
        assert len(ask(agent, Op.QUERY, U16.pack(seq), seq + 100).payload) <= max_payload
    assert Limits(max_payload).error_text <= max_payload - 5


def test_a_frame_over_the_boards_own_maximum_is_dropped_as_oversize(
    soft: SoftwareMachine,
) -> None:
    agent = BoardAgent(soft, max_payload=512)
    assert agent.receive(raw_frame(Op.PING, 1, bytes(513))).frames == []
    assert agent.receive(b"\x55" * (max_encoded(512) + 1)).frames == []  # no END: overflow
    rejected = agent.decoder.stats.rejected
    assert rejected[Reject.OVERSIZE] == 1  # the overlong run counts at its END (docs §4)
    assert error_code(ask(agent, Op.PING, bytes(510), seq=2)) == ErrorCode.BAD_LENGTH
    assert rejected[Reject.OVERSIZE] == 2  # the request's leading END ended it
    assert ask(agent, Op.PING, bytes(509), seq=3).payload == bytes(509)


@pytest.mark.parametrize(
    ("max_payload", "opcode", "payload"),
    [
        (512, Op.PING, bytes(510)),
        (512, Op.FLASH_READ, RANGE.pack(0, 510)),
        (4096, Op.FLASH_READ, RANGE.pack(0, 4094)),
        (MAX_PAYLOAD, Op.PING, bytes(MAX_PAYLOAD - 2)),
        (MAX_PAYLOAD, Op.FLASH_READ, RANGE.pack(0, 64 * 1024 + 1)),
        (MAX_PAYLOAD, Op.FLASH_PROGRAM, pack_program(0, bytes(64 * 1024 + 1))),
        (MAX_PAYLOAD, Op.CONSOLE_LOG, b"x" * (60 * 1024 + 1)),
    ],
)
def test_a_request_over_a_limit_of_the_board_gets_bad_length(
    tmp_path: Path, max_payload: int, opcode: int, payload: bytes
) -> None:
    with SoftwareMachine(None, FlashGeometry(size=256 * 1024)) as soft:
        agent = BoardAgent(soft, max_payload=max_payload)
        before = soft.snapshot()
        assert error_code(ask(agent, opcode, payload)) == ErrorCode.BAD_LENGTH
        assert soft.snapshot().flash == before.flash
        assert soft.console.total == before.console_lines


def test_a_small_board_announces_its_max_payload_window_and_virtual_clock(
    soft: SoftwareMachine,
) -> None:
    agent = BoardAgent(soft, max_payload=4096, window=1)
    payload = ask(agent, Op.HELLO).payload
    assert len(payload) == Hello.SIZE == 46 and payload[37] == BoardFlag.VIRTUAL_CLOCK
    hello = Hello.unpack(payload)
    assert (hello.max_payload, hello.window, hello.virtual_clock) == (4096, 1, True)
    assert not Hello.unpack(ask(BoardAgent(soft, virtual_clock=False), Op.HELLO).payload
                            ).virtual_clock
    for bad in ({"max_payload": 511}, {"max_payload": MAX_PAYLOAD + 1}, {"window": 0}):
        with pytest.raises(ValueError):
            BoardAgent(soft, **bad)  # type: ignore[arg-type]


def test_hello_says_when_the_board_last_booted_on_its_monotonic_clock(
    soft: SoftwareMachine,
) -> None:
    soft.clock.advance(100.0)
    agent = BoardAgent(soft)  # the power-up: boot 1, now
    first = Hello.unpack(ask(agent, Op.HELLO).payload)
    assert (first.boot_count, first.boot_monotonic) == (1, 100.0)
    soft.clock.advance(7200.0)
    assert Hello.unpack(ask(agent, Op.HELLO).payload).boot_monotonic == 100.0
    ask(agent, Op.RESET_REQUEST, bytes([ResetCause.SOFTWARE]))
    after = Hello.unpack(ask(agent, Op.HELLO).payload)
    assert (after.boot_count, after.boot_monotonic) == (2, 7300.0)
    assert soft.reset.uptime() == 0.0 and soft.reset.boot_count() == 2


# --- §6.2 QUERY ----------------------------------------------------------------------------------


def test_a_query_after_hello_says_never_carried_out(agent: BoardAgent) -> None:
    ask(agent, Op.FLASH_PROGRAM, pack_program(0, b"\x00"), seq=5)
    assert ask(agent, Op.QUERY, U16.pack(5), seq=6).payload[0] == QueryAnswer.KEPT
    ask(agent, Op.HELLO, seq=1)  # a new session: the cache is emptied
    assert ask(agent, Op.QUERY, U16.pack(5), seq=2).payload == U8.pack(QueryAnswer.NO_ENTRY)


def test_a_query_after_the_cache_moved_on_says_no_entry(agent: BoardAgent) -> None:
    ask(agent, Op.FLASH_PROGRAM, pack_program(0, b"\x00"), seq=1)
    for seq in range(2, 2 + 64):  # 64 more requests: the first one's entry is evicted
        ask(agent, Op.PING, seq=seq)
    assert ask(agent, Op.QUERY, U16.pack(1), seq=100).payload == U8.pack(0)
    assert ask(agent, Op.QUERY, U16.pack(65), seq=101).payload[0] == QueryAnswer.KEPT


class LeanAgent(BoardAgent):
    """A board short of RAM: it drops the payload of successful replies to reads (docs §5)."""

    def keeps_reply(self, request: Frame, reply: Frame) -> bool:
        return request.opcode != Op.FLASH_READ


def test_a_board_that_kept_no_payload_answers_2_and_carries_a_duplicate_out_again(
    soft: SoftwareMachine,
) -> None:
    agent = LeanAgent(soft)
    read = Frame(Op.FLASH_READ, 3, Flag.NONE, RANGE.pack(0, 1000))
    first = send(agent, read)[0]
    assert ask(agent, Op.QUERY, U16.pack(3), seq=4).payload == QUERY_SEEN.pack(
        QueryAnswer.NOT_KEPT, Flag.REPLY, Op.FLASH_READ)
    assert send(agent, read)[0] == first  # carried out again: same seq, same reply
    assert agent.stats().duplicates == 0
    error = ask(agent, Op.FLASH_READ, RANGE.pack(SIZE, 1), seq=5)  # errors are always kept
    assert ask(agent, Op.QUERY, U16.pack(5), seq=6).payload[3:] == error.payload


# --- §6.3 the console ----------------------------------------------------------------------------


def test_the_console_keeps_its_last_10000_lines_and_says_where_they_start(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    for n in range(CONSOLE_KEPT + 50):
        soft.console.log(f"line {n}")
    total = soft.console.total
    got, start, lines = unpack_lines(ask(agent, Op.CONSOLE_LINES, U32.pack(0)).payload)
    assert (got, start) == (total, total - CONSOLE_KEPT)
    assert lines[0] == f"line {total - CONSOLE_KEPT - 1}" and len(lines) < CONSOLE_KEPT
    assert unpack_lines(ask(agent, Op.CONSOLE_LINES, U32.pack(total - 1), 2).payload) == (
        total, total - 1, [f"line {CONSOLE_KEPT + 49}"])
    assert unpack_lines(ask(agent, Op.CONSOLE_LINES, U32.pack(total + 9), 3).payload) == (
        total, total, [])


def test_a_small_boards_console_cuts_long_lines_at_a_character_boundary(
    soft: SoftwareMachine,
) -> None:
    agent = BoardAgent(soft, max_payload=512)
    frames = send(agent, Frame(Op.CONSOLE_LOG, 1, Flag.NONE, "é".encode() * 256))  # 512 bytes
    reply, pushed = frames
    assert not reply.is_error and pushed.opcode == Op.CONSOLE_LINE
    assert len(pushed.payload) <= 509 and pushed.payload[4:].decode() == "é" * 252
    index = U32.unpack(pushed.payload[:4])[0]
    _total, start, lines = unpack_lines(ask(agent, Op.CONSOLE_LINES, U32.pack(index), 2).payload)
    assert start == index and lines == ["é" * 248]  # 509 - 10 - 2 = 497 bytes: 248 characters


def test_console_log_splits_on_newline_only_and_refuses_what_is_not_utf8(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    before = soft.console.total
    ask(agent, Op.CONSOLE_LOG, "a\rb\x0bc\u2028d\r\ne\n".encode())
    ask(agent, Op.CONSOLE_LOG, b"", seq=2)
    assert soft.console.lines()[before:] == ["a\rb\x0bc\u2028d\r", "e", "", ""]
    assert error_code(ask(agent, Op.CONSOLE_LOG, b"ok\xff", seq=3)) == ErrorCode.BAD_ARGUMENT
    assert soft.console.total == before + 4


# --- §6.4 zero-length flash requests, §6.5 OTP -------------------------------------------------


def test_zero_length_flash_requests_do_nothing_and_are_no_fault_point(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    soft.faults.arm(0, CutMode.BEFORE)  # the next flash operation would cut the power
    assert ask(agent, Op.FLASH_READ, RANGE.pack(SIZE, 0)).payload == b""
    assert ask(agent, Op.FLASH_PROGRAM, pack_program(SIZE, b""), seq=2).payload == b""
    assert ask(agent, Op.FLASH_ERASE, RANGE.pack(5, 0), seq=3).payload == b""  # unaligned
    assert ask(agent, Op.FLASH_ERASE, RANGE.pack(SIZE, 0), seq=4).payload == b""
    assert ask(agent, Op.FLASH_HASH, RANGE.pack(SIZE, 0), seq=5).payload == (
        hashlib.sha256(b"").digest())
    assert error_code(ask(agent, Op.FLASH_READ, RANGE.pack(SIZE + 1, 0), seq=6)) == (
        ErrorCode.OUT_OF_RANGE)
    assert soft.faults.op_count == 0 and soft.powered


def test_otp_blow_ors_bits_in_and_never_clears_one(agent: BoardAgent) -> None:
    reads = iter(range(100, 200))

    def word() -> int:
        reply = ask(agent, Op.OTP_READ, U32.pack(3), seq=next(reads))
        return int(U32.unpack(reply.payload)[0])

    assert word() == 0  # a new board's fuses
    ask(agent, Op.OTP_BLOW, OTP_BLOW.pack(3, 0b1010))
    ask(agent, Op.OTP_BLOW, OTP_BLOW.pack(3, 0b0011), seq=2)
    ask(agent, Op.OTP_BLOW, OTP_BLOW.pack(3, 0), seq=3)  # a valid no-op
    assert word() == 0b1011
    assert error_code(ask(agent, Op.OTP_BLOW, OTP_BLOW.pack(64, 1), 4)) == ErrorCode.OUT_OF_RANGE
    assert error_code(ask(agent, Op.OTP_BLOW, bytes(7), 5)) == ErrorCode.BAD_LENGTH
    assert error_code(ask(agent, Op.OTP_READ, bytes(3), 6)) == ErrorCode.BAD_LENGTH
    assert word() == 0b1011


# --- §6.6 reset causes and the watchdog, §6.7 STATS, §9 power-up -------------------------------


@pytest.mark.parametrize("cause", [0, 4, 255])
def test_a_reset_cannot_be_asked_for_as_power_on_or_an_unknown_cause(
    agent: BoardAgent, soft: SoftwareMachine, cause: int
) -> None:
    soft.reset.request_reset(ResetCause.WATCHDOG)
    boots = agent.boot_count
    outcome = agent.receive(encode_frame(Frame(Op.RESET_REQUEST, 1, Flag.NONE, U8.pack(cause))))
    assert outcome.reboot is None and error_code(outcome.frames[0]) == ErrorCode.BAD_ARGUMENT
    assert agent.boot_count == boots and soft.reset.last_cause() is ResetCause.WATCHDOG


@pytest.mark.parametrize("cause", [ResetCause.SOFTWARE, ResetCause.WATCHDOG, ResetCause.POWER_LOSS])
def test_the_watchdog_is_stopped_at_every_boot(agent: BoardAgent, cause: ResetCause) -> None:
    ask(agent, Op.WATCHDOG_START, F64.pack(1.0))
    outcome = agent.receive(encode_frame(Frame(Op.RESET_REQUEST, 2, Flag.NONE, U8.pack(cause))))
    assert outcome.reboot is RebootKind.RESET
    agent.boot_frames(RebootKind.RESET)
    sleep = ask(agent, Op.CLOCK_SLEEP, F64.pack(5.0), seq=3)
    assert not sleep.flags & Flag.REBOOTED and agent.boot_count == 2


def test_a_bite_during_sleep_leaves_the_clock_at_the_deadline(agent: BoardAgent) -> None:
    def monotonic(seq: int) -> float:
        return float(F64.unpack(ask(agent, Op.CLOCK_MONOTONIC, seq=seq).payload)[0])

    started = monotonic(1)
    ask(agent, Op.WATCHDOG_START, F64.pack(2.0), seq=2)
    outcome = agent.receive(encode_frame(Frame(Op.CLOCK_SLEEP, 3, Flag.NONE, F64.pack(10.0))))
    assert outcome.reboot is RebootKind.RESET and outcome.frames[0].flags & Flag.REBOOTED
    banner = BootBanner.unpack(agent.boot_frames(RebootKind.RESET)[0].payload)
    assert banner.cause == ResetCause.WATCHDOG
    assert monotonic(4) == started + 2.0


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_a_watchdog_timeout_out_of_its_domain_is_refused(agent: BoardAgent, timeout: float) -> None:
    reply = ask(agent, Op.WATCHDOG_START, F64.pack(timeout))
    assert error_code(reply) == ErrorCode.BAD_ARGUMENT
    assert not ask(agent, Op.WATCHDOG_KICK, seq=2).is_error  # a stopped watchdog: no-ops
    assert not ask(agent, Op.WATCHDOG_STOP, seq=3).is_error


def test_stats_count_since_power_up_and_survive_a_reset(agent: BoardAgent) -> None:
    wire = bytearray(encode_frame(Frame(Op.PING, 1, Flag.NONE, b"abc")))
    wire[-3] ^= 0xFF  # a bad CRC
    agent.receive(bytes(wire))
    program = Frame(Op.FLASH_PROGRAM, 2, Flag.NONE, pack_program(0, b"\x00"))
    send(agent, program)
    send(agent, program)  # a duplicate
    ask(agent, 0x7E, seq=3)  # an error
    agent.receive(encode_frame(Frame(Op.RESET_REQUEST, 4, Flag.NONE, U8.pack(1))))
    agent.boot_frames(RebootKind.RESET)
    stats = BoardStats.unpack(ask(agent, Op.STATS, seq=5).payload)
    assert (stats.dropped, stats.bad_crc, stats.duplicates, stats.errors, stats.boots) == (
        1, 1, 1, 1, 2)
    assert stats.frames == 5


def test_a_new_agent_on_a_device_left_after_a_reset_reports_power_on(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with SoftwareMachine(path, GEOMETRY) as soft:
        soft.reset.request_reset(ResetCause.SOFTWARE)
    with SoftwareMachine(path, GEOMETRY) as again:
        assert again.reset.last_cause() is ResetCause.SOFTWARE  # the device kept it...
        agent = BoardAgent(again)  # ...but serving it is a power-up
        hello = Hello.unpack(ask(agent, Op.HELLO).payload)
        assert (hello.boot_count, hello.last_cause) == (1, ResetCause.POWER_ON)
        assert ask(agent, Op.RESET_LAST_CAUSE, seq=2).payload == U8.pack(ResetCause.POWER_ON)
        assert BootBanner.unpack(agent.banner_frame().payload).cause == ResetCause.POWER_ON
    assert (tmp_path / "dev.flash.reset").read_text().strip() == "POWER_ON"


# --- §7 which error wins ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (Frame(0x7E, 1, Flag.NONE, b"x", version=2), ErrorCode.BAD_VERSION),
        (Frame(0x7E, 1, Flag.NONE, b"x"), ErrorCode.UNKNOWN_OPCODE),
        (Frame(Op.FLASH_READ, 1, Flag.NONE, RANGE.pack(SIZE, 64 * 1024 + 1)),
         ErrorCode.BAD_LENGTH),
        (Frame(Op.FLASH_PROGRAM, 1, Flag.NONE, pack_program(SIZE - 1, b"\x00\xff")),
         ErrorCode.OUT_OF_RANGE),
        (Frame(Op.FLASH_ERASE, 1, Flag.NONE, RANGE.pack(SIZE + 1, 100)), ErrorCode.OUT_OF_RANGE),
        (Frame(Op.FLASH_ERASE, 1, Flag.NONE, RANGE.pack(1, 100)), ErrorCode.FLASH_RULE),
        (Frame(Op.FLASH_PROGRAM, 1, Flag.NONE, pack_program(0, b"\xff\x01")),
         ErrorCode.FLASH_RULE),
        (Frame(Op.OTP_BLOW, 1, Flag.NONE, OTP_BLOW.pack(99, 1) + b"\x00"), ErrorCode.BAD_LENGTH),
        (Frame(Op.RESET_REQUEST, 1, Flag.NONE, b"\x00\x00"), ErrorCode.BAD_LENGTH),
        (Frame(Op.CLOCK_SLEEP, 1, Flag.NONE, F64.pack(-1.0)[:4]), ErrorCode.BAD_LENGTH),
        (Frame(Op.CONSOLE_LOG, 1, Flag.NONE, b"\xff" * (60 * 1024 + 1)), ErrorCode.BAD_LENGTH),
    ],
)
def test_the_first_failing_check_names_the_error(
    agent: BoardAgent, soft: SoftwareMachine, frame: Frame, code: ErrorCode
) -> None:
    soft.flash.program(0, b"\x00")
    before = soft.snapshot()
    assert error_code(send(agent, frame)[0]) == code
    after = soft.snapshot()
    assert (after.flash, after.otp, after.cause) == (before.flash, before.otp, before.cause)
    assert after.console_lines == before.console_lines
