"""The fault injector: counts flash operations and cuts power at a chosen one.

An elementary flash operation is one page program (a `program` call spanning pages is one
operation per page) or one sector erase. Reads and hashes are not operations.

A cut is armed for the `op`-th operation *from the moment of arming* (0 = the very next one)
and fires once:

- ``CutMode.BEFORE``: power goes before the operation touches the flash;
- ``CutMode.AFTER``: the operation completes, then power goes;
- ``CutMode.TORN``: part of the operation reaches the flash, then power goes. By default the
  first half of the bits the operation changes, in address order (so a torn page or sector
  differs from both its old and its new contents whenever two or more bits change); with
  ``torn_bytes=k``, its first k bytes and none after; with ``bit_seed``, a seeded random
  subset of the bits it changes.

The flash raises :class:`hal.errors.PowerLoss` out of the interrupted call and the machine stays
powered off until ``power_on()``. Sweeping every cut point of some work::

    start = machine.faults.op_count
    work(machine)                                   # dry run
    for op in range(machine.faults.op_count - start):
        for mode in CutMode:
            machine.restore(snap); machine.faults.arm(op, mode); ...

(:func:`hal.soft.cut_sweep.sweep_power_cuts` does exactly this.)
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass


class CutMode(enum.Enum):
    """When, relative to the chosen flash operation, the power goes."""

    BEFORE = "before"
    AFTER = "after"
    TORN = "torn"


class OpKind(enum.Enum):
    """The two elementary NOR operations."""

    PROGRAM = "program"
    ERASE = "erase"


@dataclass(frozen=True)
class FlashOp:
    """One elementary flash operation; `index` counts operations since the machine was made."""

    index: int
    kind: OpKind
    offset: int
    length: int

    def __str__(self) -> str:
        return f"flash op #{self.index} ({self.kind.value} {self.length} bytes at {self.offset:#x})"


@dataclass(frozen=True)
class CutPoint:
    """A planned power cut: at the `op`-th flash operation after arming, in `mode`."""

    op: int
    mode: CutMode
    torn_bytes: int | None = None
    bit_seed: int | None = None

    def __post_init__(self) -> None:
        if self.op < 0:
            raise ValueError(f"cut point op must be >= 0, not {self.op}")
        tear_given = self.torn_bytes is not None or self.bit_seed is not None
        if tear_given and self.mode is not CutMode.TORN:
            raise ValueError("torn_bytes and bit_seed only apply to CutMode.TORN")
        if self.torn_bytes is not None and self.bit_seed is not None:
            raise ValueError("a tear is a byte prefix (torn_bytes) or random bits (bit_seed)")
        if self.torn_bytes is not None and self.torn_bytes < 0:
            raise ValueError(f"torn_bytes must be >= 0, not {self.torn_bytes}")

    def __str__(self) -> str:
        return f"cut {self.mode.value} op {self.op}"


def tear(old: bytes, new: bytes, point: CutPoint) -> bytes:
    """What an operation turning `old` into `new` leaves when torn as `point` says.

    Every bit of the result is either its old or its new value.
    """
    if point.torn_bytes is not None:
        done = min(point.torn_bytes, len(new))
        return new[:done] + old[done:]
    was = int.from_bytes(old, "big")
    changed = was ^ int.from_bytes(new, "big")
    if point.bit_seed is not None:
        flipped = random.Random(point.bit_seed).getrandbits(len(old) * 8) & changed
    else:
        flipped = _leading_bits(changed, changed.bit_count() // 2)
    return (was ^ flipped).to_bytes(len(old), "big")


def _leading_bits(bits: int, count: int) -> int:
    """The `count` most significant set bits of `bits` (big-endian: the first in address order)."""
    low, high = 0, bits.bit_length()  # find the least shift leaving at most `count` set bits
    while low < high:
        middle = (low + high) // 2
        if (bits >> middle).bit_count() <= count:
            high = middle
        else:
            low = middle + 1
    return (bits >> low) << low


class FaultInjector:
    """Counts elementary flash operations and holds at most one armed power cut."""

    def __init__(self) -> None:
        self._count = 0
        self._armed: CutPoint | None = None
        self._target = 0
        self.last_op: FlashOp | None = None
        self.fired: tuple[FlashOp, CutPoint] | None = None

    @property
    def op_count(self) -> int:
        """Elementary flash operations begun since the machine was created (cut ones included)."""
        return self._count

    @property
    def armed(self) -> CutPoint | None:
        """The cut waiting to fire, if any."""
        return self._armed

    def arm(
        self,
        op: int,
        mode: CutMode,
        *,
        torn_bytes: int | None = None,
        bit_seed: int | None = None,
    ) -> CutPoint:
        """Cut power at the `op`-th flash operation from now (0 = the next one); see module doc."""
        return self.arm_point(CutPoint(op, mode, torn_bytes, bit_seed))

    def arm_point(self, point: CutPoint) -> CutPoint:
        """Arm `point` (replacing any cut already armed), counting from now."""
        self._armed = point
        self._target = self._count + point.op
        return point

    def disarm(self) -> None:
        """Forget the armed cut, if any."""
        self._armed = None

    def uncut(self, kind: OpKind, spans: Sequence[tuple[int, int]]) -> int:
        """Count the operations `spans` ((offset, length) each, in order) that run without a
        cut: all of them, or those before the one the armed cut falls on (not counted: the
        caller runs that one through `begin`). Returns how many were counted."""
        done = len(spans)
        if self._armed is not None and self._target - self._count < done:
            done = self._target - self._count
        if done:
            self._count += done
            self.last_op = FlashOp(self._count - 1, kind, *spans[done - 1])
        return done

    def begin(self, kind: OpKind, offset: int, length: int) -> tuple[FlashOp, CutPoint | None]:
        """Count one operation; return it and the cut to apply to it (which is then disarmed)."""
        op = FlashOp(self._count, kind, offset, length)
        self._count += 1
        self.last_op = op
        point = self._armed
        if point is None or op.index != self._target:
            return op, None
        self._armed = None
        self.fired = (op, point)
        return op, point
