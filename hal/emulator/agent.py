"""The board side of the serial protocol: request frames in, reply frames out, on a Machine.

No I/O: :class:`BoardAgent` is what the small agent on a dev kit does (and what the emulator
runs), minus the UART. The transport around it (:mod:`hal.emulator.server`) sends the frames it
returns and, when an outcome says so, performs the reboot sequence (silence, then `boot_frames`).
"""

from __future__ import annotations

import contextlib
import enum
import math
import random
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hal.errors import FlashError, HalError, OtpError, PowerLoss
from hal.interfaces import Machine, ResetCause
from hal.serial.framing import (
    F64,
    GEOMETRY,
    HASH_SIZE,
    MAX_DATA,
    MAX_LINE,
    MAX_PAYLOAD,
    OTP_BLOW,
    PROTOCOL_VERSION,
    QUERY_SEEN,
    RANGE,
    U8,
    U16,
    U32,
    UNSOLICITED_SEQ,
    BoardStats,
    BootBanner,
    ErrorCode,
    Flag,
    Frame,
    FrameDecoder,
    Hello,
    Op,
    Reject,
    pack_error,
    pack_lines,
)

#: Requests a host may have in flight at once (announced in HELLO).
DEFAULT_WINDOW = 16
#: Replies remembered for duplicate detection and QUERY; at least 4 windows.
DEFAULT_CACHE = 64


class RebootKind(enum.Enum):
    """What follows a reply flagged REBOOTED."""

    RESET = "reset"  # the machine has already reset (reset request, watchdog bite)
    POWER_CYCLE = "power-cycle"  # power was cut: the board powers up again after the silence


@dataclass
class Outcome:
    """Frames to send for one request, and whether the board reboots once they are out."""

    frames: list[Frame]
    reboot: RebootKind | None = None


@runtime_checkable
class PowerCycling(Protocol):
    """A machine that can be powered up again after a power cut (the software machine)."""

    def power_on(self) -> None: ...


class Refusal(HalError):
    """A request the agent refuses before touching the machine: an error code and why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class AgentCounters:
    """Running counters behind the STATS reply (the link layer fills in the decoder's)."""

    duplicates: int = 0
    errors: int = 0
    ignored: int = 0  # frames that were not requests (replies, unsolicited) - dropped
    by_opcode: dict[int, int] = field(default_factory=dict)


Handler = Callable[[bytes], bytes]


class BoardAgent:
    """Answers requests on `machine`; counts boots through the machine's boot hook.

    The agent installs its own boot hook on `machine` (the board's boot path): every reset,
    watchdog bite or power-up counts as a boot and is announced with a BOOT_BANNER.
    """

    def __init__(
        self,
        machine: Machine,
        *,
        baud: int = 0,
        window: int = DEFAULT_WINDOW,
        cache_size: int = DEFAULT_CACHE,
        session: int | None = None,
    ) -> None:
        self.machine = machine
        self.baud = baud
        self.window = window
        self.session = random.getrandbits(32) if session is None else session
        self.boot_count = 1
        self.counters = AgentCounters()
        self.decoder = FrameDecoder()
        self._cache_size = max(cache_size, 4 * window)
        self._cache: OrderedDict[int, tuple[int, Frame]] = OrderedDict()
        self._booted = False
        self._console_pushed = len(machine.console.lines())
        self._handlers = self._handler_table()
        machine.set_boot_hook(self._on_boot)

    # -- requests ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> Outcome:
        """Feed bytes from the line; the frames to send back, and a reboot if one follows.

        Only frames that check out are acted on. When a request makes the board reboot, the
        rest of `data` is dropped with the receiver's state (the board is going down).
        """
        frames: list[Frame] = []
        for frame in self.decoder.feed(data):
            outcome = self.handle(frame)
            frames += outcome.frames
            if outcome.reboot is not None:
                self.decoder.reset()
                return Outcome(frames, outcome.reboot)
        return Outcome(frames)

    def handle(self, frame: Frame) -> Outcome:
        """The reply (plus pushed console lines) to one checked-out frame from the host."""
        if frame.is_reply or frame.is_unsolicited:
            self.counters.ignored += 1
            return Outcome([])
        if frame.version != PROTOCOL_VERSION:
            return Outcome([self._error(frame, ErrorCode.BAD_VERSION,
                                        f"board speaks protocol version {PROTOCOL_VERSION}, "
                                        f"not {frame.version}")])
        if frame.opcode == Op.HELLO:
            self._cache.clear()  # a new host session: its seq numbers start afresh
        fingerprint = _fingerprint(frame)
        cached = self._cache.get(frame.seq)
        if cached is not None and cached[0] == fingerprint:
            self.counters.duplicates += 1
            return Outcome([cached[1]])
        reply, reboot = self._execute(frame)
        self._remember(frame.seq, fingerprint, reply)
        if reboot is not None:  # what the reset logged belongs after the banner
            return Outcome([reply], reboot)
        return Outcome([reply, *self.console_frames()])

    def boot_frames(self, kind: RebootKind) -> list[Frame]:
        """After the reboot silence: power up if needed, then the banner and console lines.

        The reply cache is cleared (RAM is lost on a reboot).
        """
        self._cache.clear()
        self.decoder.reset()
        if kind is RebootKind.POWER_CYCLE and isinstance(self.machine, PowerCycling):
            self._booted = False
            # A cut armed for a boot-time operation leaves it off: the next request reports it.
            with contextlib.suppress(PowerLoss):
                self.machine.power_on()
        return [self.banner_frame(), *self.console_frames()]

    def banner_frame(self) -> Frame:
        """The unsolicited BOOT_BANNER for the current boot."""
        cause = self._last_cause()
        banner = BootBanner(self.boot_count, int(cause), self.session,
                            f"sphere-fwmodel board agent v{PROTOCOL_VERSION}: boot "
                            f"{self.boot_count}, cause {cause.name}")
        return Frame(Op.BOOT_BANNER, UNSOLICITED_SEQ, Flag.UNSOLICITED, banner.pack())

    def console_frames(self) -> list[Frame]:
        """CONSOLE_LINE frames for every line logged since the last call."""
        try:
            lines = self.machine.console.lines()
        except HalError:
            return []
        if len(lines) < self._console_pushed:  # the console was rolled back (snapshot)
            self._console_pushed = len(lines)
        frames = [
            Frame(Op.CONSOLE_LINE, UNSOLICITED_SEQ, Flag.UNSOLICITED,
                  U32.pack(index) + line.encode("utf-8", "replace")[:MAX_LINE])
            for index, line in enumerate(lines[self._console_pushed:], self._console_pushed)
        ]
        self._console_pushed = len(lines)
        return frames

    def stats(self) -> BoardStats:
        """The board's link counters, as the STATS reply carries them."""
        decoded = self.decoder.stats
        return BoardStats(decoded.frames, decoded.dropped, decoded.rejected[Reject.BAD_CRC],
                          self.counters.duplicates, self.counters.errors, self.boot_count)

    # -- internals --------------------------------------------------------------------------

    def _execute(self, frame: Frame) -> tuple[Frame, RebootKind | None]:
        handler = self._handlers.get(frame.opcode)
        self.counters.by_opcode[frame.opcode] = self.counters.by_opcode.get(frame.opcode, 0) + 1
        if handler is None:
            return self._error(frame, ErrorCode.UNKNOWN_OPCODE,
                               f"unknown opcode {frame.opcode:#04x}"), None
        self._booted = False
        try:
            payload = handler(frame.payload)
        except Refusal as exc:
            return self._error(frame, exc.code, str(exc)), self._reboot_after()
        except PowerLoss as exc:
            error = self._error(frame, ErrorCode.POWER_LOSS, str(exc), Flag.REBOOTED)
            return error, RebootKind.POWER_CYCLE
        except FlashError as exc:
            return self._error(frame, ErrorCode.FLASH_RULE, str(exc)), self._reboot_after()
        except OtpError as exc:
            return self._error(frame, ErrorCode.OUT_OF_RANGE, str(exc)), self._reboot_after()
        except (HalError, ValueError) as exc:
            return self._error(frame, ErrorCode.BAD_ARGUMENT, str(exc)), self._reboot_after()
        except Exception as exc:  # the board keeps serving whatever a handler does
            return self._error(frame, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"), None
        reboot = self._reboot_after()
        flags = Flag.REPLY | (Flag.REBOOTED if reboot else Flag.NONE)
        return Frame(frame.opcode, frame.seq, flags, payload), reboot

    def _reboot_after(self) -> RebootKind | None:
        return RebootKind.RESET if self._booted else None

    def _error(self, frame: Frame, code: ErrorCode, message: str,
               extra: Flag = Flag.NONE) -> Frame:
        self.counters.errors += 1
        flags = Flag.REPLY | Flag.ERROR | extra
        if self._booted:
            flags |= Flag.REBOOTED
        return Frame(frame.opcode, frame.seq, flags, pack_error(code, message))

    def _remember(self, seq: int, fingerprint: int, reply: Frame) -> None:
        self._cache[seq] = (fingerprint, reply)
        self._cache.move_to_end(seq)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _on_boot(self, _machine: Machine) -> None:
        self.boot_count += 1
        self._booted = True

    def _last_cause(self) -> ResetCause:
        try:
            return self.machine.reset.last_cause()
        except PowerLoss:
            return ResetCause.POWER_LOSS

    def _handler_table(self) -> dict[int, Handler]:
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
            PROTOCOL_VERSION, MAX_PAYLOAD, self.window, self.baud, geometry.size,
            geometry.sector_size, geometry.page_size, self._otp_words(), self.boot_count,
            int(self._last_cause()), self.session,
        ).pack()

    def _otp_words(self) -> int:
        try:
            return self.machine.otp.word_count
        except PowerLoss:
            return 0

    def _query(self, payload: bytes) -> bytes:
        (target,) = U16.unpack(_expect(payload, U16.size, "QUERY"))
        cached = self._cache.get(target)
        if cached is None:
            return U8.pack(0)
        reply = cached[1]
        return QUERY_SEEN.pack(1, int(reply.flags), reply.opcode) + reply.payload

    def _stats(self, payload: bytes) -> bytes:
        _expect(payload, 0, "STATS")
        return self.stats().pack()

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


def _fingerprint(frame: Frame) -> int:
    """What identifies a request beyond its sequence number: opcode, length and CRC (the CRC it
    arrived with covers header and payload; a frame built locally gets one computed)."""
    crc = frame.crc or zlib.crc32(frame.payload)
    return (frame.opcode << 56) | (len(frame.payload) << 32) | crc
