"""The board agent's handler for each opcode: a request's payload in, its reply's payload out,
on the machine behind the board (docs/serial-protocol.md §6). A request the board refuses
before touching the machine raises `Refusal` with its error code."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from hal.errors import HalError, PowerLoss
from hal.interfaces import Machine, ResetCause
from hal.serial.framing import MAX_PAYLOAD, PROTOCOL_VERSION, Frame
from hal.serial.messages import (
    F64,
    GEOMETRY,
    HASH_SIZE,
    MAX_DATA,
    MAX_LINE,
    OTP_BLOW,
    QUERY_SEEN,
    RANGE,
    U8,
    U16,
    U32,
    BoardStats,
    ErrorCode,
    Hello,
    Op,
    pack_lines,
)

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
    session: int

    def last_cause(self) -> ResetCause: ...

    def cached_reply(self, seq: int) -> Frame | None: ...

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
            Op.PING: lambda payload: payload,
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
        return Hello(
            PROTOCOL_VERSION, MAX_PAYLOAD, self.board.window, self.board.baud, geometry.size,
            geometry.sector_size, geometry.page_size, self._otp_words(), self.board.boot_count,
            int(self.board.last_cause()), self.board.session,
        ).pack()

    def _otp_words(self) -> int:
        try:
            return self.machine.otp.word_count
        except PowerLoss:
            return 0

    def _query(self, payload: bytes) -> bytes:
        (target,) = U16.unpack(_expect(payload, U16.size, "QUERY"))
        reply = self.board.cached_reply(target)
        if reply is None:
            return U8.pack(0)
        return QUERY_SEEN.pack(1, int(reply.flags), reply.opcode) + reply.payload

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
        offset, length = self._range(payload, "FLASH_READ")
        if length > MAX_DATA:
            raise Refusal(ErrorCode.BAD_LENGTH,
                          f"FLASH_READ of {length} bytes exceeds {MAX_DATA} per request")
        return self.machine.flash.read(offset, length)

    def _program(self, payload: bytes) -> bytes:
        if len(payload) < U32.size:
            raise Refusal(ErrorCode.BAD_LENGTH, "FLASH_PROGRAM needs an offset")
        (offset,) = U32.unpack_from(payload)
        data = payload[U32.size:]
        if len(data) > MAX_DATA:
            raise Refusal(ErrorCode.BAD_LENGTH,
                          f"FLASH_PROGRAM of {len(data)} bytes exceeds {MAX_DATA} per request")
        self._check_flash_range("FLASH_PROGRAM", offset, len(data))
        self.machine.flash.program(offset, data)
        return b""

    def _erase(self, payload: bytes) -> bytes:
        offset, length = self._range(payload, "FLASH_ERASE")
        self.machine.flash.erase(offset, length)
        return b""

    def _hash(self, payload: bytes) -> bytes:
        offset, length = self._range(payload, "FLASH_HASH")
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
        try:
            cause = ResetCause(raw)
        except ValueError:
            raise Refusal(ErrorCode.BAD_ARGUMENT, f"no reset cause {raw}") from None
        self.machine.reset.request_reset(cause)
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
        self.machine.clock.sleep(seconds)
        return b""

    def _log(self, payload: bytes) -> bytes:
        if len(payload) > MAX_LINE:
            raise Refusal(ErrorCode.BAD_LENGTH,
                          f"console line of {len(payload)} bytes exceeds {MAX_LINE}")
        try:
            line = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(ErrorCode.BAD_ARGUMENT, "console line is not UTF-8") from None
        self.machine.console.log(line)
        return b""

    def _lines(self, payload: bytes) -> bytes:
        (first,) = U32.unpack(_expect(payload, U32.size, "CONSOLE_LINES"))
        lines = self.machine.console.lines()
        reply, _count = pack_lines(len(lines), lines[first:])
        return reply

    def _watchdog_start(self, payload: bytes) -> bytes:
        (timeout_s,) = F64.unpack(_expect(payload, F64.size, "WATCHDOG_START"))
        self.machine.watchdog.start(timeout_s)
        return b""

    def _no_args(self, payload: bytes, action: Callable[[], None]) -> bytes:
        _expect(payload, 0, "request")
        action()
        return b""


def _expect(payload: bytes, size: int, what: str) -> bytes:
    if len(payload) != size:
        raise Refusal(ErrorCode.BAD_LENGTH,
                      f"{what} payload is {len(payload)} bytes, expected {size}")
    return payload
