"""Benchmark: restoring a software-machine snapshot, the step a power-cut sweep repeats.

Baseline: copying the whole 16 MiB flash back (what a plain bytes snapshot costs). Measured:
the machine's restore, which copies back only the sectors changed since the snapshot. The
work between snapshot and restore is a typical update step: erase 64 KiB, program 64 KiB.

Run: .venv/bin/python -m bench.machine_snapshot
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hal.soft.machine import SoftwareMachine

ROUNDS = 30
STEP_BYTES = 64 * 1024


def best_of(rounds: int, action: Callable[[], object]) -> float:
    """The fastest of `rounds` runs of `action`, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        machine = SoftwareMachine(Path(scratch) / "bench.flash")
        snap = machine.snapshot()
        payload = bytes(STEP_BYTES)

        def update_step() -> None:
            machine.flash.erase(0x10_0000, STEP_BYTES)
            machine.flash.program(0x10_0000, payload)

        def full_copy_restore() -> None:
            update_step()
            machine.flash.load_image(snap.flash, object())  # an unknown token: whole copy

        def machine_restore() -> None:
            update_step()
            machine.restore(snap)

        step = best_of(ROUNDS, update_step)
        machine.restore(snap)
        baseline = best_of(ROUNDS, full_copy_restore) - step
        machine.restore(snap)
        measured = best_of(ROUNDS, machine_restore) - step
        taking = best_of(ROUNDS // 3, machine.snapshot)
        machine.close()
    print(f"snapshot (16 MiB copy):        {taking * 1e3:8.2f} ms")
    print(f"update step (64 KiB e+p):      {step * 1e3:8.2f} ms")
    print(f"restore, whole-flash copy:     {baseline * 1e3:8.2f} ms  (baseline)")
    print(f"restore, dirty sectors only:   {measured * 1e3:8.2f} ms")
    print(f"ratio baseline / dirty-only:   {baseline / max(measured, 1e-9):8.1f}x")


if __name__ == "__main__":
    main()
