"""A board on a serial line as a :class:`hal.interfaces.Machine`.

``SerialMachine("/dev/ttyUSB0")`` (or any pyserial URL: ``socket://127.0.0.1:PORT``, a pty
path) opens the port, handshakes with the board agent (docs/serial-protocol.md) and exposes
its flash, fuses, reset controller, clock, console and watchdog. The boot hook runs on the
host, after the board has rebooted and the link has re-handshaken with it.

Failures are typed: LinkError when the port fails or the protocol breaks, LinkTimeout when the
board does not answer within its time (never a hang past it), FlashError / OtpError /
PowerLoss / RemoteError for what the board reports. After a LinkError the next call reopens
the port (for `timeout` seconds) and carries on with a board that came back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from hal.errors import HalError, OtpError, RemoteError
from hal.interfaces import BootHook, Closeable, ResetCause
from hal.serial.flash import Progress, SerialFlash
from hal.serial.framing import MalformedPayload
from hal.serial.link import BoardLink
from hal.serial.messages import (
    F64,
    OTP_BLOW,
    U8,
    U32,
    WALL_RANGE,
    BoardStats,
    ErrorCode,
    Hello,
    Op,
    unpack_ints,
    unpack_lines,
    unpack_time,
)
from hal.serial.requests import LinkStats

_OTP_CODES = (ErrorCode.OUT_OF_RANGE, ErrorCode.BAD_ARGUMENT, ErrorCode.BAD_LENGTH)
_WORD_MAX = 0xFFFF_FFFF


class SerialOtp:
    """:class:`hal.interfaces.Otp` on a board."""

    def __init__(self, link: BoardLink) -> None:
        self._link = link

    @property
    def word_count(self) -> int:
        """Fuse words on the board (from its HELLO)."""
        return self._link.hello.otp_words

    def read_word(self, index: int) -> int:
        """Fuse word `index`; OtpError if it does not exist."""
        self._check_index(index)
        reply = self._call(Op.OTP_READ, U32.pack(index))
        (value,) = unpack_ints(U32, reply, "OTP_READ reply")
        return value

    def blow(self, index: int, bits: int) -> None:
        """Set `bits` in word `index`; OtpError if the word does not exist or bits do not fit."""
        self._check_index(index)
        if not 0 <= bits <= _WORD_MAX:
            raise OtpError(f"OTP word {index}: bits {bits:#x} do not fit in 32 bits")
        self._call(Op.OTP_BLOW, OTP_BLOW.pack(index, bits))

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.word_count:
            raise OtpError(f"no OTP word {index}: the bank has words 0..{self.word_count - 1}")

    def _call(self, opcode: Op, payload: bytes) -> bytes:
        try:
            return self._link.call(opcode, payload)
        except RemoteError as exc:
            if exc.code in _OTP_CODES:
                raise OtpError(str(exc)) from exc
            raise


class SerialReset:
    """:class:`hal.interfaces.ResetController` on a board."""

    def __init__(self, link: BoardLink) -> None:
        self._link = link

    def request_reset(self, cause: ResetCause = ResetCause.SOFTWARE) -> None:
        """Reset the board, wait until it is back, then run the boot hook (on the host).
        HalError for cause POWER_ON, which only a power-up records (docs §6.6)."""
        cause = ResetCause(cause)
        if cause is ResetCause.POWER_ON:
            raise HalError("a reset cannot be asked for with cause POWER_ON: only a power-up "
                           "records it")
        self._link.reset_board(int(cause))

    def last_cause(self) -> ResetCause:
        """The cause of the board's most recent reset."""
        (raw,) = unpack_ints(U8, self._link.call(Op.RESET_LAST_CAUSE), "RESET_LAST_CAUSE reply")
        return ResetCause(raw)

    def boot_count(self) -> int:
        """Boots since the board powered up, as its last HELLO said (the host handshakes
        again after every boot it learns of, docs §9)."""
        self._link.settle()
        return self._link.hello.boot_count

    def uptime(self) -> float | None:
        """Seconds since the board's last boot: CLOCK_MONOTONIC minus HELLO's `boot_monotonic`;
        None from a board whose HELLO does not carry it (docs §6.1)."""
        self._link.settle()
        if self._link.hello.boot_monotonic is None:
            return None  # an older board: no request needed
        now = unpack_time(self._link.call(Op.CLOCK_MONOTONIC, reply_bytes=F64.size),
                          "CLOCK_MONOTONIC", 0.0, math.inf)
        booted = self._link.hello.boot_monotonic  # read after the call: a boot it caught up on
        return None if booted is None else max(0.0, now - booted)


class SerialClock:
    """:class:`hal.interfaces.Clock` on a board (virtual on the emulator, real on a kit)."""

    def __init__(self, link: BoardLink) -> None:
        self._link = link

    @property
    def virtual(self) -> bool:
        """True if the board announced a virtual clock (HELLO's VIRTUAL_CLOCK flag): a sleep
        then moves its clocks at once, so a 24-hour deferral takes milliseconds; False if a
        sleep takes real time."""
        return self._link.hello.virtual_clock

    def wall(self) -> float:
        """The board's UTC wall time, seconds since the epoch."""
        return unpack_time(self._link.call(Op.CLOCK_WALL, reply_bytes=F64.size), "CLOCK_WALL",
                           *WALL_RANGE)

    def monotonic(self) -> float:
        """The board's monotonic seconds."""
        return unpack_time(self._link.call(Op.CLOCK_MONOTONIC, reply_bytes=F64.size),
                           "CLOCK_MONOTONIC", 0.0, math.inf)

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass on the board (a watchdog may bite meanwhile: then the boot hook
        has run by the time this returns). ValueError for a negative or non-finite time."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"cannot sleep {seconds!r} seconds")
        self._link.call(Op.CLOCK_SLEEP, F64.pack(seconds), work_s=seconds)


class SerialConsole:
    """:class:`hal.interfaces.Console` on a board."""

    def __init__(self, link: BoardLink) -> None:
        self._link = link

    def log(self, line: str) -> None:
        """Log `line` on the board's console (one line per ``\n``-separated part). HalError,
        with nothing sent, if its UTF-8 is longer than the board takes (docs §3.1)."""
        raw = line.encode("utf-8")
        limit = self._link.limits.console_log
        if len(raw) > limit:
            raise HalError(f"console text of {len(raw)} bytes exceeds the board's {limit}-byte "
                           "limit")
        self._link.call(Op.CONSOLE_LOG, raw)

    def lines(self) -> list[str]:
        """The lines the board keeps, oldest first, boot banners included (fetched in pages;
        a board keeps at least its last 64 lines since power-up, the emulator 10,000)."""
        lines: list[str] = []
        first = 0
        while True:
            reply = self._link.call(Op.CONSOLE_LINES, U32.pack(first),
                                    reply_bytes=self._link.limits.reply)
            total, start, page = unpack_lines(reply)
            if start < first and start < total:
                raise MalformedPayload(f"CONSOLE_LINES reply: from line {start}, asked {first}")
            if start > first:  # lines forgotten before they were fetched: keep a run
                lines = []
            lines += page
            first = start + len(page)
            if first >= total or not page:
                return lines


class SerialWatchdog:
    """:class:`hal.interfaces.Watchdog` on a board."""

    def __init__(self, link: BoardLink) -> None:
        self._link = link

    def start(self, timeout_s: float) -> None:
        """Start (or restart) the board's watchdog; HalError unless `timeout_s` is positive."""
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise HalError(f"watchdog timeout must be a positive number of seconds: {timeout_s!r}")
        self._link.call(Op.WATCHDOG_START, F64.pack(timeout_s))

    def kick(self) -> None:
        """Push the deadline back."""
        self._link.call(Op.WATCHDOG_KICK)

    def stop(self) -> None:
        """Stop the watchdog."""
        self._link.call(Op.WATCHDOG_STOP)


class SerialMachine(Closeable):
    """A board behind `port_url`, speaking the serial board protocol.

    `timeout` is the fixed allowance per attempt (the line time of the bytes involved and the
    board's work are added to it); `retries` bounds the re-sends per request; `on_progress`
    is called with (what, bytes done, bytes total) during flash transfers (what: read, program,
    erase); `on_console` with each console line the board pushes, as it arrives (the lines of
    the board's start-up before the link was open are in `console.lines()`).
    """

    def __init__(
        self,
        port_url: str,
        *,
        timeout: float = 2.0,
        retries: int = 5,
        on_progress: Progress | None = None,
        on_console: Callable[[str], None] | None = None,
        lock_wait: float = 0.0,
    ) -> None:
        self._link = BoardLink(port_url, timeout=timeout, retries=retries, lock_wait=lock_wait)
        self._link.on_console = on_console
        self._hook: BootHook | None = None
        self._link.on_boot = self._run_boot_hook
        self._flash = SerialFlash(self._link, on_progress)
        self._otp = SerialOtp(self._link)
        self._reset = SerialReset(self._link)
        self._clock = SerialClock(self._link)
        self._console = SerialConsole(self._link)
        self._watchdog = SerialWatchdog(self._link)

    @property
    def flash(self) -> SerialFlash:
        """The board's NOR flash."""
        return self._flash

    @property
    def otp(self) -> SerialOtp:
        """The board's fuses."""
        return self._otp

    @property
    def reset(self) -> SerialReset:
        """The board's reset controller."""
        return self._reset

    @property
    def clock(self) -> SerialClock:
        """The board's clock."""
        return self._clock

    @property
    def console(self) -> SerialConsole:
        """The board's console."""
        return self._console

    @property
    def watchdog(self) -> SerialWatchdog:
        """The board's watchdog."""
        return self._watchdog

    @property
    def link_stats(self) -> LinkStats:
        """A copy of the link's counters (retries, resyncs, dropped frames, ...)."""
        stats = self._link.stats
        return dataclasses.replace(stats, console=list(stats.console))

    @property
    def hello(self) -> Hello:
        """What the board said in the last handshake."""
        return self._link.hello

    def board_stats(self) -> BoardStats:
        """The board's own link counters (STATS)."""
        return BoardStats.unpack(self._link.call(Op.STATS, reply_bytes=BoardStats.LAYOUT.size))

    def ping(self, payload: bytes = b"") -> bytes:
        """PING: the board echoes `payload`. HalError, with nothing sent, if it is longer than
        the board takes (docs §3.1: max_payload - 3 bytes)."""
        limit = self._link.limits.ping
        if len(payload) > limit:
            raise HalError(f"a PING of {len(payload)} bytes exceeds the board's {limit}-byte "
                           "limit")
        return self._link.call(Op.PING, payload, reply_bytes=len(payload))

    def set_boot_hook(self, hook: BootHook | None) -> None:
        """Run `hook(self)` on the host each time the board has booted (after a reset, a
        watchdog bite or a power cycle, once the link is re-established)."""
        self._hook = hook

    def power_on(self) -> None:
        """After a PowerLoss: wait for the board to come back and run the boot hook. On a
        powered board: a reset with cause POWER_LOSS (a real power cycle needs a hand)."""
        if self._link.powered_off:
            self._link.finish_reboot()
        else:
            self._link.reset_board(int(ResetCause.POWER_LOSS))

    def close(self) -> None:
        """Close the port."""
        self._link.close()

    def _run_boot_hook(self) -> None:
        if self._hook is not None:
            self._hook(self)

