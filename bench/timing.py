"""Timing shared by the benches: interleaved best-of rounds, and how a ratio is reported."""

from __future__ import annotations

import timeit
from collections.abc import Callable

ROUNDS = 41


def per_op(
    ops: dict[str, Callable[[], object]], budget: float, rounds: int = ROUNDS
) -> dict[str, float]:
    """Seconds per call of each op: the best of `rounds` timeit runs, the ops interleaved
    round by round so that a change in machine load hits all of them alike. `budget` is
    roughly how many seconds the whole measurement takes."""
    numbers = {}
    for name, op in ops.items():
        once = max(timeit.timeit(op, number=1), 1e-9)
        numbers[name] = max(1, int(budget / len(ops) / rounds / once))
    best = dict.fromkeys(ops, float("inf"))
    for _ in range(rounds):
        for name, op in ops.items():
            best[name] = min(best[name], timeit.timeit(op, number=numbers[name]) / numbers[name])
    return best


def met(ok: bool) -> str:
    """How every bench says whether a target held: `met` or `MISSED`."""
    return "met" if ok else "MISSED"


def verdict(ratio: float, target: float) -> str:
    """A lower-is-better ratio against its target, e.g. ` 1.12x  (target <= 1.15x: met)`."""
    return f"{ratio:5.2f}x  (target <= {target:.2f}x: {met(ratio <= target)})"
