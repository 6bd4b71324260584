"""The board agent's handler for each opcode: a request's payload in, its reply's payload out,
on the machine behind the board (docs/serial-protocol.md §6). A request the board refuses
before touching the machine raises `Refusal` with its error code.

Each handler checks in the order of docs §7 ("Which error wins"): payload size and limits
(BAD_LENGTH), then ranges (OUT_OF_RANGE), then values (BAD_ARGUMENT); the NOR rules
(FLASH_RULE) are the machine's, checked last, when it acts."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Protocol

from hal.emulator.kept_lines import kept_lines
from hal.errors import HalError, PowerLoss
from hal.interfaces import Machine, ResetCause
from hal.serial.framing import PROTOCOL_VERSION, Frame
from hal.serial.messages import (
    F64,
    GEOMETRY,
    HASH_SIZE,
    OTP_BLOW,
    QUERY_SEEN,
    RANGE,
    U8,
    U16,
    U32,
    WALL_RANGE,
    BoardStats,
    ErrorCode,
    Hello,
    Limits,
    Op,
    QueryAnswer,
    pack_lines,
)

#: The causes a host may ask a reset for (POWER_ON only a power-up records: docs §6.6).
REQUESTABLE_CAUSES = (ResetCause.SOFTWARE, ResetCause.WATCHDOG, ResetCause.POWER_LOSS)
#: SHA-256 of no bytes: FLASH_HASH of a zero-length range.
_EMPTY_HASH = hashlib.sha256(b"").digest()

Handler = Callable[[bytes], bytes]


class Refusal(HalError):
    """A request the agent refuses before touching the machine: an error code and why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class BoardState(Protocol):
    """What the handlers need of the board beyond its machine."""

    machine: Machine
    window: int
    baud: int
    boot_count: int
    boot_monotonic: float
    session: int
    limits: Limits
    board_flags: int

    def last_cause(self) -> ResetCause: ...

    def query(self, seq: int) -> tuple[QueryAnswer, Frame | None]: ...

    def stats(self) -> BoardStats: ...


class Handlers:
    """The opcode handlers of `board` (see module doc)."""

    def __init__(self, board: BoardState) -> None:
        self.board = board
        self.machine = board.machine

    def table(self) -> dict[int, Handler]:
        """The handler of each opcode."""
        return {
            Op.HELLO: self._hello,
            Op.PING: self._ping,
            Op.QUERY: self._query,
            Op.STATS: self._stats,
            Op.FLASH_GEOMETRY: self._geometry,
            Op.FLASH_READ: self._read,
            Op.FLASH_PROGRAM: self._program,
            Op.FLASH_ERASE: self._erase,
            Op.FLASH_HASH: self._hash,
            Op.OTP_WORD_COUNT: self._otp_count,
            Op.OTP_READ: self._otp_read,
            Op.OTP_BLOW: self._otp_blow,
            Op.RESET_REQUEST: self._reset,
            Op.RESET_LAST_CAUSE: self._cause,
            Op.CLOCK_WALL: lambda p: self._clock_reading(p, self.machine.clock.wall),
            Op.CLOCK_MONOTONIC: lambda p: self._clock_reading(p, self.machine.clock.monotonic),
            Op.CLOCK_SLEEP: self._sleep,
            Op.CONSOLE_LOG: self._log,
            Op.CONSOLE_LINES: self._lines,
            Op.WATCHDOG_START: self._watchdog_start,
            Op.WATCHDOG_KICK: lambda p: self._no_args(p, self.machine.watchdog.kick),
            Op.WATCHDOG_STOP: lambda p: self._no_args(p, self.machine.watchdog.stop),
        }

    def _hello(self, payload: bytes) -> bytes:
        _expect(payload, 0, "HELLO")
        geometry = self.machine.flash.geometry
        board = self.board
        return Hello(
            PROTOCOL_VERSION, board.limits.max_payload, board.window, board.baud, geometry.size,
            geometry.sector_size, geometry.page_size, self._otp_words(), board.boot_count,
            int(board.last_cause()), board.session, board.board_flags, board.boot_monotonic,
        ).pack()

    def _otp_words(self) -> int:
        try:
            return self.machine.otp.word_count
        except PowerLoss:
            return 0

    def _ping(self, payload: bytes) -> bytes:
        _at_most(len(payload), self.board.limits.ping, "PING payload")
        return payload

    def _query(self, payload: bytes) -> bytes:
        (target,) = U16.unpack(_expect(payload, U16.size, "QUERY"))
        answer, reply = self.board.query(target)
        if reply is None:
            return U8.pack(answer)
        head = QUERY_SEEN.pack(answer, int(reply.flags), reply.opcode)
        return head + reply.payload if answer == QueryAnswer.KEPT else head

    def _stats(self, payload: bytes) -> bytes:
        _expect(payload, 0, "STATS")
        return self.board.stats().pack()

    def _geometry(self, payload: bytes) -> bytes:
        _expect(payload, 0, "FLASH_GEOMETRY")
        geometry = self.machine.flash.geometry
        return GEOMETRY.pack(geometry.size, geometry.sector_size, geometry.page_size)

    def _range(self, payload: bytes, what: str) -> tuple[int, int]:
        offset, length = RANGE.unpack(_expect(payload, RANGE.size, what))
        self._check_flash_range(what, offset, length)
        return offset, length

    def _check_flash_range(self, what: str, offset: int, length: int) -> None:
        size = self.machine.flash.geometry.size
        if offset + length > size:
            raise Refusal(ErrorCode.OUT_OF_RANGE,
                          f"{what} of {length:#x} bytes at {offset:#x} is outside the "
                          f"{size:#x}-byte flash")

    def _read(self, payload: bytes) -> bytes:
        _offset, length = RANGE.unpack(_expect(payload, RANGE.size, "FLASH_READ"))
        _at_most(length, self.board.limits.read_length, "FLASH_READ length")
        offset, length = self._range(payload, "FLASH_READ")
        return self.machine.flash.read(offset, length) if length else b""

    def _program(self, payload: bytes) -> bytes:
        if len(payload) < U32.size:
            raise Refusal(ErrorCode.BAD_LENGTH, "FLASH_PROGRAM needs an offset")
        (offset,) = U32.unpack_from(payload)
        data = payload[U32.size:]
        _at_most(len(data), self.board.limits.program_data, "FLASH_PROGRAM data")
        self._check_flash_range("FLASH_PROGRAM", offset, len(data))
        if data:  # no data: no flash operation at all (docs §6.4)
            self.machine.flash.program(offset, data)
        return b""

    def _erase(self, payload: bytes) -> bytes:
        offset, length = self._range(payload, "FLASH_ERASE")
        if length:  # length 0: valid at any offset up to the end, and no flash operation
            self.machine.flash.erase(offset, length)
        return b""

    def _hash(self, payload: bytes) -> bytes:
        offset, length = self._range(payload, "FLASH_HASH")
        if not length:
            return _EMPTY_HASH
        digest = self.machine.flash.hash(offset, length)
        assert len(digest) == HASH_SIZE
        return digest

    def _otp_count(self, payload: bytes) -> bytes:
        _expect(payload, 0, "OTP_WORD_COUNT")
        return U32.pack(self.machine.otp.word_count)

    def _otp_read(self, payload: bytes) -> bytes:
        (index,) = U32.unpack(_expect(payload, U32.size, "OTP_READ"))
        self._check_otp_index(index)
        return U32.pack(self.machine.otp.read_word(index))

    def _otp_blow(self, payload: bytes) -> bytes:
        index, bits = OTP_BLOW.unpack(_expect(payload, OTP_BLOW.size, "OTP_BLOW"))
        self._check_otp_index(index)
        self.machine.otp.blow(index, bits)
        return b""

    def _check_otp_index(self, index: int) -> None:
        count = self.machine.otp.word_count
        if index >= count:
            raise Refusal(ErrorCode.OUT_OF_RANGE,
                          f"no OTP word {index}: the bank has words 0..{count - 1}")

    def _reset(self, payload: bytes) -> bytes:
        (raw,) = U8.unpack(_expect(payload, U8.size, "RESET_REQUEST"))
        if raw not in REQUESTABLE_CAUSES:
            names = ", ".join(f"{int(c)} {c.name}" for c in REQUESTABLE_CAUSES)
            raise Refusal(ErrorCode.BAD_ARGUMENT,
                          f"a reset cannot be asked for with cause {raw} (only {names})")
        self.machine.reset.request_reset(ResetCause(raw))
        return b""

    def _cause(self, payload: bytes) -> bytes:
        _expect(payload, 0, "RESET_LAST_CAUSE")
        return U8.pack(int(self.machine.reset.last_cause()))

    def _clock_reading(self, payload: bytes, read: Callable[[], float]) -> bytes:
        _expect(payload, 0, "clock reading")
        return F64.pack(read())

    def _sleep(self, payload: bytes) -> bytes:
        (seconds,) = F64.unpack(_expect(payload, F64.size, "CLOCK_SLEEP"))
        if not math.isfinite(seconds) or seconds < 0:
            raise Refusal(ErrorCode.BAD_ARGUMENT, f"cannot sleep {seconds!r} seconds")
        if self.machine.clock.wall() + seconds >= WALL_RANGE[1]:  # FLASH.clock ends at 9999
            raise Refusal(ErrorCode.BAD_ARGUMENT, "sleep past year 9999")
        self.machine.clock.sleep(seconds)
        return b""

    def _log(self, payload: bytes) -> bytes:
        _at_most(len(payload), self.board.limits.console_log, "CONSOLE_LOG text")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refusal(ErrorCode.BAD_ARGUMENT,
                          f"console text is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        for line in text.split("\n"):  # "\n" alone separates lines; "" is one empty line
            self.machine.console.log(line)
        return b""

    def _lines(self, payload: bytes) -> bytes:
        (first,) = U32.unpack(_expect(payload, U32.size, "CONSOLE_LINES"))
        total, start, lines = kept_lines(self.machine.console, first)
        reply, _count = pack_lines(total, start, lines, self.board.limits.reply)
        return reply

    def _watchdog_start(self, payload: bytes) -> bytes:
        (timeout_s,) = F64.unpack(_expect(payload, F64.size, "WATCHDOG_START"))
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise Refusal(ErrorCode.BAD_ARGUMENT,
                          f"watchdog timeout must be a positive number of seconds: {timeout_s!r}")
        self.machine.watchdog.start(timeout_s)
        return b""

    def _no_args(self, payload: bytes, action: Callable[[], None]) -> bytes:
        _expect(payload, 0, "request")
        action()
        return b""


def _at_most(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise Refusal(ErrorCode.BAD_LENGTH, f"{what} of {size} bytes exceeds this board's "
                                            f"{limit} (docs §3.1)")


def _expect(payload: bytes, size: int, what: str) -> bytes:
    if len(payload) != size:
        raise Refusal(ErrorCode.BAD_LENGTH,
                      f"{what} payload is {len(payload)} bytes, expected {size}")
    return payload
