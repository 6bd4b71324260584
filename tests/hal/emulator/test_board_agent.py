"""The board side of the protocol (hal/emulator/agent.py) on a software machine, without a line."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from hal.emulator.agent import BoardAgent, RebootKind
from hal.interfaces import FlashGeometry, ResetCause
from hal.serial.framing import Flag, Frame, encode_frame
from hal.serial.messages import (
    F64,
    OTP_BLOW,
    QUERY_SEEN,
    RANGE,
    U8,
    U16,
    U32,
    BoardStats,
    BootBanner,
    ErrorCode,
    Hello,
    Op,
    pack_program,
    unpack_error,
)
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode

GEOMETRY = FlashGeometry(size=64 * 1024, sector_size=4096, page_size=256)


@pytest.fixture
def soft() -> Iterator[SoftwareMachine]:
    with SoftwareMachine(None, GEOMETRY) as soft:
        yield soft


@pytest.fixture
def agent(soft: SoftwareMachine) -> BoardAgent:
    return BoardAgent(soft, session=1234)


def ask(agent: BoardAgent, opcode: int, payload: bytes = b"", seq: int = 1) -> Frame:
    """Send one request through the agent's decoder; its reply (the first frame out)."""
    outcome = agent.receive(encode_frame(Frame(opcode, seq, Flag.NONE, payload)))
    assert outcome.frames, "the board did not answer"
    reply = outcome.frames[0]
    assert reply.seq == seq and reply.opcode == opcode and reply.is_reply
    return reply


def error_code(reply: Frame) -> int:
    assert reply.is_error
    return unpack_error(reply.payload)[0]


def test_hello_describes_the_machine(agent: BoardAgent) -> None:
    hello = Hello.unpack(ask(agent, Op.HELLO).payload)
    assert (hello.flash_size, hello.sector_size, hello.page_size) == (64 * 1024, 4096, 256)
    assert (hello.otp_words, hello.boot_count, hello.session) == (64, 1, 1234)
    assert hello.last_cause == ResetCause.POWER_ON


def test_program_then_read_and_hash(agent: BoardAgent, soft: SoftwareMachine) -> None:
    assert ask(agent, Op.FLASH_PROGRAM, pack_program(100, b"sphere")).payload == b""
    assert ask(agent, Op.FLASH_READ, RANGE.pack(98, 10), seq=2).payload == b"\xff\xffsphere\xff\xff"
    digest = ask(agent, Op.FLASH_HASH, RANGE.pack(0, 4096), seq=3).payload
    assert digest == hashlib.sha256(soft.flash.read(0, 4096)).digest()


def test_a_duplicate_is_answered_from_the_cache_not_applied(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    request = encode_frame(Frame(Op.FLASH_PROGRAM, 5, Flag.NONE, pack_program(0, b"\x00" * 300)))
    first = agent.receive(request).frames[0]
    ops = soft.faults.op_count
    again = agent.receive(request).frames[0]
    assert again == first
    assert soft.faults.op_count == ops
    assert agent.stats().duplicates == 1


def test_same_seq_with_another_payload_is_a_new_request(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    ask(agent, Op.FLASH_PROGRAM, pack_program(0, b"\x0f"), seq=9)
    ask(agent, Op.FLASH_PROGRAM, pack_program(1, b"\x0f"), seq=9)
    assert soft.flash.read(0, 2) == b"\x0f\x0f"


def test_query_tells_seen_from_never_seen(agent: BoardAgent) -> None:
    ask(agent, Op.FLASH_PROGRAM, pack_program(0, b"\x00"), seq=40)
    seen = ask(agent, Op.QUERY, U16.pack(40), seq=41).payload
    assert QUERY_SEEN.unpack(seen[:3]) == (1, Flag.REPLY, Op.FLASH_PROGRAM)
    assert ask(agent, Op.QUERY, U16.pack(39), seq=42).payload == U8.pack(0)


@pytest.mark.parametrize(
    ("opcode", "payload", "code"),
    [
        (0x7E, b"", ErrorCode.UNKNOWN_OPCODE),
        (Op.FLASH_READ, b"\x00", ErrorCode.BAD_LENGTH),
        (Op.FLASH_READ, RANGE.pack(60 * 1024, 8 * 1024), ErrorCode.OUT_OF_RANGE),
        (Op.FLASH_READ, RANGE.pack(0, 64 * 1024 + 1), ErrorCode.BAD_LENGTH),  # limit first
        (Op.FLASH_ERASE, RANGE.pack(256, 4096), ErrorCode.FLASH_RULE),
        (Op.FLASH_PROGRAM, b"\x00\x00", ErrorCode.BAD_LENGTH),
        (Op.OTP_READ, U32.pack(64), ErrorCode.OUT_OF_RANGE),
        (Op.OTP_BLOW, OTP_BLOW.pack(99, 1), ErrorCode.OUT_OF_RANGE),
        (Op.RESET_REQUEST, U8.pack(9), ErrorCode.BAD_ARGUMENT),
        (Op.CLOCK_SLEEP, F64.pack(-1.0), ErrorCode.BAD_ARGUMENT),
        (Op.WATCHDOG_START, F64.pack(0.0), ErrorCode.BAD_ARGUMENT),
        (Op.CONSOLE_LOG, b"\xff\xfe", ErrorCode.BAD_ARGUMENT),
        (Op.HELLO, b"x", ErrorCode.BAD_LENGTH),
    ],
)
def test_bad_requests_get_an_error_and_change_nothing(
    agent: BoardAgent, soft: SoftwareMachine, opcode: int, payload: bytes, code: ErrorCode
) -> None:
    soft.flash.program(0, b"\x00" * 16)
    before = soft.snapshot()
    assert error_code(ask(agent, opcode, payload)) == code
    after = soft.snapshot()
    assert (after.flash, after.otp, after.cause) == (before.flash, before.otp, before.cause)
    assert Hello.unpack(ask(agent, Op.HELLO, seq=2).payload).boot_count == 1  # still serving


def test_a_program_that_sets_a_bit_is_a_flash_rule_error(agent: BoardAgent) -> None:
    ask(agent, Op.FLASH_PROGRAM, pack_program(0, b"\x00"))
    assert error_code(ask(agent, Op.FLASH_PROGRAM, pack_program(0, b"\x01"), seq=2)) == (
        ErrorCode.FLASH_RULE
    )


def test_another_protocol_version_is_refused(agent: BoardAgent) -> None:
    outcome = agent.receive(encode_frame(Frame(Op.HELLO, 1, Flag.NONE, b"", version=2)))
    assert error_code(outcome.frames[0]) == ErrorCode.BAD_VERSION


def test_replies_and_unsolicited_frames_from_the_host_are_ignored(agent: BoardAgent) -> None:
    assert agent.receive(encode_frame(Frame(Op.PING, 1, Flag.REPLY))).frames == []
    assert agent.receive(encode_frame(Frame(Op.PING, 0, Flag.UNSOLICITED))).frames == []


def test_reset_replies_rebooted_then_boots_with_a_banner(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    outcome = agent.receive(
        encode_frame(Frame(Op.RESET_REQUEST, 1, Flag.NONE, U8.pack(ResetCause.SOFTWARE)))
        + encode_frame(Frame(Op.FLASH_PROGRAM, 2, Flag.NONE, pack_program(0, b"\x00")))
    )
    assert outcome.reboot is RebootKind.RESET
    assert outcome.frames[0].flags == Flag.REPLY | Flag.REBOOTED
    assert all(frame.seq != 2 for frame in outcome.frames)  # dropped: the board went down
    assert soft.flash.read(0, 1) == b"\xff"
    banner_frame, *lines = agent.boot_frames(RebootKind.RESET)
    banner = BootBanner.unpack(banner_frame.payload)
    assert (banner.boot_count, banner.cause, banner.session) == (2, ResetCause.SOFTWARE, 1234)
    assert banner_frame.flags == Flag.UNSOLICITED and banner_frame.seq == 0
    assert lines and all(frame.opcode == Op.CONSOLE_LINE for frame in lines)
    assert ask(agent, Op.QUERY, U16.pack(1), seq=3).payload == U8.pack(0)  # cache lost


def test_a_watchdog_bite_during_sleep_flags_the_sleep_reply(agent: BoardAgent) -> None:
    ask(agent, Op.WATCHDOG_START, F64.pack(1.0))
    outcome = agent.receive(encode_frame(Frame(Op.CLOCK_SLEEP, 2, Flag.NONE, F64.pack(1.5))))
    assert outcome.reboot is RebootKind.RESET
    assert outcome.frames[0].flags & Flag.REBOOTED
    assert agent.boot_count == 2


def test_a_power_cut_is_reported_and_the_board_powers_up_again(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    soft.faults.arm(0, CutMode.TORN)
    outcome = agent.receive(
        encode_frame(Frame(Op.FLASH_PROGRAM, 1, Flag.NONE, pack_program(0, b"\x00" * 16)))
    )
    assert outcome.reboot is RebootKind.POWER_CYCLE
    assert error_code(outcome.frames[0]) == ErrorCode.POWER_LOSS
    assert outcome.frames[0].flags & Flag.REBOOTED
    assert not soft.powered
    banner = BootBanner.unpack(agent.boot_frames(RebootKind.POWER_CYCLE)[0].payload)
    assert soft.powered
    assert banner.cause == ResetCause.POWER_LOSS and banner.boot_count == 2


def test_console_lines_are_pushed_once_each(agent: BoardAgent) -> None:
    outcome = agent.receive(encode_frame(Frame(Op.CONSOLE_LOG, 1, Flag.NONE, b"pushed")))
    pushed = [f for f in outcome.frames if f.opcode == Op.CONSOLE_LINE]
    assert [f.payload[4:] for f in pushed] == [b"pushed"]
    assert [f.opcode for f in agent.receive(encode_frame(Frame(Op.PING, 2))).frames] == [Op.PING]


def test_stats_count_what_the_decoder_dropped(agent: BoardAgent) -> None:
    wire = bytearray(encode_frame(Frame(Op.PING, 1, Flag.NONE, b"abc")))
    wire[-3] ^= 0xFF
    agent.receive(bytes(wire) + b"noise\xc0")
    stats = BoardStats.unpack(ask(agent, Op.STATS, seq=2).payload)
    assert stats.dropped == 2 and stats.bad_crc == 1 and stats.frames == 1


def test_hello_starts_a_session_the_cache_does_not_outlive(
    agent: BoardAgent, soft: SoftwareMachine
) -> None:
    program = encode_frame(Frame(Op.FLASH_PROGRAM, 2, Flag.NONE, pack_program(0, b"\x00")))
    ask(agent, Op.HELLO)
    agent.receive(program)
    soft.flash.erase(0, 4096)
    first_hello = Hello.unpack(ask(agent, Op.HELLO).payload)  # a second host: seq 1 again
    agent.receive(program)  # same seq, same bytes, but a new session: carried out
    assert soft.flash.read(0, 1) == b"\x00"
    assert first_hello.boot_count == 1 and agent.stats().duplicates == 0
