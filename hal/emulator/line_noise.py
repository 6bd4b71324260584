"""Line noise for the emulator: bytes corrupted, dropped or duplicated at given rates."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FaultRates:
    """Probability, per byte on the line, of each kind of fault (0 = never)."""

    corrupt: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("corrupt", "drop", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} rate must be in [0, 1), not {value!r}")
        if self.total >= 1.0:
            raise ValueError(f"fault rates add up to {self.total}, which must stay below 1")

    @property
    def total(self) -> float:
        """Probability that a byte suffers some fault."""
        return self.corrupt + self.drop + self.duplicate


@dataclass
class FaultCounts:
    """Faults applied so far, by kind."""

    corrupted: int = 0
    dropped: int = 0
    duplicated: int = 0
    bytes_seen: int = 0


@dataclass
class LineFaults:
    """Applies `rates` to a byte stream, one direction of a line, reproducibly from `rng`.

    Faults are placed by drawing the gap to the next faulty byte (geometric), so a clean run
    costs one slice copy, not a random draw per byte.
    """

    rates: FaultRates
    rng: random.Random
    counts: FaultCounts = field(default_factory=FaultCounts)
    _gap: int = -1

    @property
    def active(self) -> bool:
        """True if any rate is non-zero."""
        return self.rates.total > 0.0

    def apply(self, data: bytes) -> bytes:
        """`data` as it arrives after crossing the noisy line."""
        self.counts.bytes_seen += len(data)
        if not self.active or not data:
            return data
        if self._gap < 0:
            self._gap = self._draw_gap()
        out = bytearray()
        position = 0
        while position + self._gap < len(data):
            out += data[position : position + self._gap]
            position += self._gap
            out += self._fault(data[position])
            position += 1
            self._gap = self._draw_gap()
        out += data[position:]
        self._gap -= len(data) - position
        return bytes(out)

    def _fault(self, byte: int) -> bytes:
        pick = self.rng.random() * self.rates.total
        if pick < self.rates.corrupt:
            self.counts.corrupted += 1
            return bytes([byte ^ self.rng.randrange(1, 256)])
        if pick < self.rates.corrupt + self.rates.drop:
            self.counts.dropped += 1
            return b""
        self.counts.duplicated += 1
        return bytes([byte, byte])

    def _draw_gap(self) -> int:
        """Clean bytes before the next faulty one: geometric with success rate `total`."""
        uniform = 1.0 - self.rng.random()  # in (0, 1]
        return int(math.log(uniform) / math.log1p(-self.rates.total))
