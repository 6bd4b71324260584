"""The board's UART, between the board agent and the port: it feeds the agent what arrives
(through line noise), queues the agent's frames, paces them at the board's baud rate, and runs
the reboot sequence (silence, then the banner) when a reply says the board reboots."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from hal.emulator.agent import BoardAgent, RebootKind
from hal.emulator.line_noise import FaultRates, LineFaults
from hal.serial.framing import Frame, encode_frame

#: Seconds a rebooting board stays silent before its banner.
DEFAULT_REBOOT_DELAY = 0.05
#: Largest piece written at once when pacing (keeps the line model smooth).
_PACED_PIECE_S = 0.003
#: Output that may wait for a host before the oldest is dropped (an overflowing UART FIFO).
_MAX_BACKLOG = 4 * 1024 * 1024
_READ_SIZE = 1 << 16
_IDLE_WAIT = 0.1


class BoardLine:
    """The board's UART: feeds the agent, queues its frames, paces output, runs reboots.

    Not thread-safe: one event loop drives it (`on_receive`, `due`, `take_output`, `sent`).
    """

    def __init__(
        self,
        agent: BoardAgent,
        *,
        baud: int = 0,
        rates: FaultRates | None = None,
        seed: int | None = None,
        reboot_delay: float = DEFAULT_REBOOT_DELAY,
    ) -> None:
        rng = random.Random(seed)
        rates = rates or FaultRates()
        self.agent = agent
        self.baud = baud
        self.rx_faults = LineFaults(rates, random.Random(rng.getrandbits(64)))
        self.tx_faults = LineFaults(rates, random.Random(rng.getrandbits(64)))
        self._reboot_delay = reboot_delay
        self._out = bytearray()
        self._tx_free = 0.0  # when the line has sent what was written so far
        self._going_down: RebootKind | None = None
        self._silent_until: float | None = None
        self._piece = max(16, int(baud / 10 * _PACED_PIECE_S)) if baud else _READ_SIZE

    @property
    def rebooting(self) -> bool:
        """True from a rebooting reply until the banner is queued."""
        return self._going_down is not None

    def on_receive(self, data: bytes) -> None:
        """Bytes arrived from the host."""
        if self.rebooting:  # a rebooting board hears nothing
            return
        outcome = self.agent.receive(self.rx_faults.apply(data))
        self.queue(outcome.frames)
        if outcome.reboot is not None:
            self._going_down = outcome.reboot

    def queue(self, frames: Sequence[Frame]) -> None:
        """Put frames on the transmit queue (through the line faults)."""
        if not self._out:  # an idle line starts sending now, not when it last went quiet
            self._tx_free = max(self._tx_free, time.monotonic())
        for frame in frames:
            self._out += self.tx_faults.apply(encode_frame(frame))
        if len(self._out) > _MAX_BACKLOG:
            excess = len(self._out) - _MAX_BACKLOG
            del self._out[:excess]

    def due(self, now: float) -> float:
        """Advance the reboot sequence; seconds until something is next due (capped)."""
        if self._going_down is not None and self._silent_until is None and not self._out:
            self._silent_until = now + self._reboot_delay
        if self._silent_until is not None and now >= self._silent_until:
            kind = self._going_down
            self._going_down = None
            self._silent_until = None
            assert kind is not None
            self.queue(self.agent.boot_frames(kind))
        wait = _IDLE_WAIT
        if self._silent_until is not None:
            wait = min(wait, self._silent_until - now)
        if self._out and self.baud:
            wait = min(wait, self._piece_arrives() - now)
        return max(0.0, wait)

    def output_ready(self, now: float) -> bool:
        """True if there is output and (paced) the next piece has had its time on the line."""
        return bool(self._out) and (not self.baud or now >= self._piece_arrives())

    def _piece_arrives(self) -> float:
        """When the last byte of the next piece would reach the host on a real line."""
        return self._tx_free + min(len(self._out), self._piece) * 10 / self.baud

    def take_output(self) -> bytes:
        """The next piece to write (call `sent` with how much was written)."""
        return bytes(self._out[: self._piece])

    def sent(self, count: int) -> None:
        """`count` bytes of the last piece went out (a paced line stays busy while output is
        queued, so late pieces catch up rather than idle the line)."""
        del self._out[:count]
        if self.baud:
            self._tx_free += count * 10 / self.baud

    def drop_output(self) -> None:
        """Nobody is listening: what was queued is lost."""
        self._out.clear()
