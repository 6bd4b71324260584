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
from hal.emulator.kept_lines import console_total, kept_lines
from hal.errors import FlashError, HalError, OtpError, PowerLoss
from hal.interfaces import Machine, ResetCause
from hal.serial.framing import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    UNSOLICITED_SEQ,
    Flag,
    Frame,
    FrameDecoder,
    Reject,
)
from hal.serial.messages import (
    CONSOLE_LINE_HEAD,
    BoardFlag,
    BoardStats,
    BootBanner,
    ErrorCode,
    Limits,
    Op,
    QueryAnswer,
    encode_text,
    pack_error,
)

#: Requests a host may have in flight at once (announced in HELLO).
DEFAULT_WINDOW = 16
#: Largest window a board may announce (HELLO carries it as a u16).
MAX_WINDOW = 0xFFFF
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


@runtime_checkable
class PowerOnRecording(Protocol):
    """A machine whose reset-cause register an agent sets to POWER_ON when it starts serving."""

    def record_power_on(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What the reply cache keeps of one request (docs §5)."""

    fingerprint: int
    reply: Frame  # with an empty payload when the payload was not kept
    kept: bool = True  # False: a duplicate is carried out again, QUERY answers NOT_KEPT


@dataclass
class AgentCounters:
    """Running counters behind the STATS reply (the link layer fills in the decoder's)."""

    duplicates: int = 0
    errors: int = 0


class BoardAgent:
    """Answers requests on `machine`; counts boots through the machine's boot hook.

    Creating the agent is the board's power-up: boot count 1, a new session, the boot at the
    machine's monotonic time now (HELLO's `boot_monotonic`), and (on a machine that records it,
    the software machine) the reset cause POWER_ON. The agent installs its own
    boot hook on `machine` (the board's boot path): every reset, watchdog bite or power cycle
    counts as a boot and is announced with a BOOT_BANNER.

    `max_payload` is the P the board announces (docs §3.1): its decoder drops longer frames,
    requests over the limits that follow from it get BAD_LENGTH, and no reply exceeds P - 3
    (a QUERY reply: P).
    `virtual_clock` says the machine's clock moves only in CLOCK_SLEEP (the software machine's
    does); HELLO announces it. ValueError for a `max_payload` or `window` out of range.
    """

    def __init__(
        self,
        machine: Machine,
        *,
        baud: int = 0,
        window: int = DEFAULT_WINDOW,
        cache_size: int = DEFAULT_CACHE,
        session: int | None = None,
        max_payload: int = MAX_PAYLOAD,
        virtual_clock: bool = True,
    ) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window {window} is outside 1..{MAX_WINDOW}")
        self.machine = machine
        self.baud = baud
        self.window = window
        self.limits = Limits(max_payload)
        self.board_flags: int = BoardFlag.VIRTUAL_CLOCK if virtual_clock else BoardFlag.NONE
        self.session = random.getrandbits(32) if session is None else session
        self.boot_count = 1
        self.boot_monotonic = self._monotonic()
        self.counters = AgentCounters()
        self.decoder = FrameDecoder(max_payload)
        self._cache_size = max(cache_size, 4 * window)
        self._cache: OrderedDict[int, CacheEntry] = OrderedDict()
        self._booted = False
        if isinstance(machine, PowerOnRecording):
            machine.record_power_on()
        self._console_pushed = console_total(machine.console)
        self._handlers = Handlers(self).table()
        machine.set_boot_hook(self._on_boot)

    @property
    def max_payload(self) -> int:
        """The P this board announces."""
        return self.limits.max_payload

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
        fingerprint = _fingerprint(frame)
        if frame.opcode == Op.HELLO:  # never answered from the cache (docs §5)
            if not frame.payload:  # a new host session: its seq numbers start afresh; a
                self._cache.clear()  # refused HELLO (BAD_LENGTH) changes nothing (§7)
        elif (cached := self._cache.get(frame.seq)) is not None and \
                cached.fingerprint == fingerprint and cached.kept:
            self.counters.duplicates += 1
            if cached.reply.is_error:  # STATS counts every error reply sent (docs §6.7)
                self.counters.errors += 1
            return Outcome([cached.reply])
        reply, reboot = self._execute(frame)
        limit = self.limits.query_reply if frame.opcode == Op.QUERY else self.limits.reply
        if len(reply.payload) > limit:  # never sent: QUERY could not repeat it
            reply = self._error(frame, ErrorCode.INTERNAL,
                                f"a reply of {len(reply.payload)} bytes exceeds the board's "
                                f"{limit}")
        self._remember(frame, fingerprint, reply)
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
        """CONSOLE_LINE frames for every line logged (and still kept) since the last call."""
        console = self.machine.console
        try:
            total = console_total(console)
            if total <= self._console_pushed:  # nothing new, or rolled back (a snapshot)
                self._console_pushed = total
                return []
            total, start, lines = kept_lines(console, self._console_pushed)
        except HalError:
            return []
        room = self.limits.reply - CONSOLE_LINE_HEAD.size
        frames = [
            Frame(Op.CONSOLE_LINE, UNSOLICITED_SEQ, Flag.UNSOLICITED,
                  CONSOLE_LINE_HEAD.pack(index) + encode_text(line, room))
            for index, line in enumerate(lines, start)
        ]
        self._console_pushed = total
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
        return Frame(frame.opcode, frame.seq, flags,
                     pack_error(code, message, self.limits.error_text))

    def keeps_reply(self, request: Frame, reply: Frame) -> bool:
        """Whether the cache keeps `reply`'s payload. The emulator keeps every reply; a board
        short of RAM may drop the payload of an idempotent request's successful reply (docs
        §5), and a subclass may model one."""
        return True

    def _remember(self, request: Frame, fingerprint: int, reply: Frame) -> None:
        seq = request.seq
        if self.keeps_reply(request, reply) or reply.is_error:
            self._cache[seq] = CacheEntry(fingerprint, reply)
        else:
            self._cache[seq] = CacheEntry(fingerprint, Frame(reply.opcode, seq, reply.flags),
                                          kept=False)
        self._cache.move_to_end(seq)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _on_boot(self, _machine: Machine) -> None:
        self.boot_count += 1
        self.boot_monotonic = self._monotonic()
        self._booted = True

    def _monotonic(self) -> float:
        """The machine's monotonic clock now (0 on a machine that has lost power)."""
        try:
            return self.machine.clock.monotonic()
        except PowerLoss:
            return 0.0

    def query(self, seq: int) -> tuple[QueryAnswer, Frame | None]:
        """What QUERY answers about `seq` (docs §6.2), and the cached reply if there is one:
        NOT_KEPT, without the payload, about a QUERY (its reply, up to P bytes, would not fit
        in another; a QUERY is idempotent, so the host may simply send it again)."""
        entry = self._cache.get(seq)
        if entry is None:
            return QueryAnswer.NO_ENTRY, None
        reply = entry.reply
        if not entry.kept or reply.opcode == Op.QUERY:
            return QueryAnswer.NOT_KEPT, Frame(reply.opcode, reply.seq, reply.flags)
        return QueryAnswer.KEPT, reply

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
