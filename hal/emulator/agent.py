"""The board side of the serial protocol: request frames in, reply frames out, on a Machine.

No I/O: :class:`BoardAgent` is what the small agent on a dev kit does (and what the emulator
runs), minus the UART. The transport around it (:mod:`hal.emulator.server`) sends the frames it
returns and, when an outcome says so, performs the reboot sequence (silence, then `boot_frames`).
"""

from __future__ import annotations

import contextlib
import enum
import random
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hal.emulator.handlers import Handlers, Refusal
from hal.errors import FlashError, HalError, OtpError, PowerLoss
from hal.interfaces import Machine, ResetCause
from hal.serial.framing import (
    PROTOCOL_VERSION,
    UNSOLICITED_SEQ,
    Flag,
    Frame,
    FrameDecoder,
    Reject,
)
from hal.serial.messages import (
    MAX_LINE,
    U32,
    BoardStats,
    BootBanner,
    ErrorCode,
    Op,
    pack_error,
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


@dataclass
class AgentCounters:
    """Running counters behind the STATS reply (the link layer fills in the decoder's)."""

    duplicates: int = 0
    errors: int = 0


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
        self._handlers = Handlers(self).table()
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
        cause = self.last_cause()
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

    def cached_reply(self, seq: int) -> Frame | None:
        """The reply cached for `seq`, if any (QUERY)."""
        cached = self._cache.get(seq)
        return None if cached is None else cached[1]

    def last_cause(self) -> ResetCause:
        try:
            return self.machine.reset.last_cause()
        except PowerLoss:
            return ResetCause.POWER_LOSS

def _fingerprint(frame: Frame) -> int:
    """What identifies a request beyond its sequence number: opcode, length and CRC (the CRC it
    arrived with covers header and payload; a frame built locally gets one computed)."""
    crc = frame.crc or zlib.crc32(frame.payload)
    return (frame.opcode << 56) | (len(frame.payload) << 32) | crc
