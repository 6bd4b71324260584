"""Power-cut sweeps: run some work once per cut point, from the same starting snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hal.errors import HalError, PowerLoss
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode, CutPoint

Work = Callable[[SoftwareMachine], None]
Check = Callable[[SoftwareMachine, CutPoint | None], None]


@dataclass(frozen=True)
class SweepResult:
    """How many flash operations the work did uninterrupted, and every cut point visited."""

    ops: int
    points: tuple[CutPoint, ...]


def cut_points(ops: int, modes: Iterable[CutMode] = tuple(CutMode)) -> Iterator[CutPoint]:
    """Every (operation, mode) pair for work of `ops` operations: 0..ops-1 x modes."""
    mode_list = list(modes)
    for op in range(ops):
        for mode in mode_list:
            yield CutPoint(op, mode)


def sweep_power_cuts(
    machine: SoftwareMachine,
    work: Work,
    check: Check,
    *,
    modes: Iterable[CutMode] = tuple(CutMode),
) -> SweepResult:
    """Run `work` uninterrupted, then once per cut point; `check` the machine after each.

    Each run starts from a snapshot taken on entry. After a cut the machine is powered on
    again (its boot hook runs, cause POWER_LOSS) before `check(machine, point)`; the
    uninterrupted run is checked with point None. On return the machine is back at the
    snapshot. HalError if a cut never fires (the work is not deterministic).
    """
    snap = machine.snapshot()
    start = machine.faults.op_count
    work(machine)
    check(machine, None)
    ops = machine.faults.op_count - start
    visited = []
    try:
        for point in cut_points(ops, modes):
            machine.restore(snap)
            machine.faults.arm_point(point)
            try:
                work(machine)
            except PowerLoss:
                machine.power_on()
            else:
                raise HalError(f"{point} never fired: the work did fewer than {ops} operations")
            check(machine, point)
            visited.append(point)
    finally:
        machine.faults.disarm()
        machine.restore(snap)
    return SweepResult(ops, tuple(visited))
