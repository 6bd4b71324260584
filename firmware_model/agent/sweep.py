"""The power-cut sweep: an update interrupted at every flash operation, each result booted.

    report = sweep_update(SweepImages.from_build(Path("images/build")))
    report.ok, report.to_json()

On an in-memory software machine: provision the old images, snapshot, run the whole update
once (fetch, verify, write the free slots, commit, reset, boot, confirm, raise counters) to
count its flash operations, then for each operation and each cut mode (before, after, torn):
restore the snapshot, install the update with the power cut there, power up again, boot, and
check

1. the device boots, with a keystore and a store that are exactly the old pair or exactly the
   new pair, authenticated by the boot path and byte-identical in flash to what was committed:
   never none, never a mix;
2. no anti-rollback counter has moved unless, at the moment of the cut, the newest valid boot
   record already confirmed the new image of that component; after the boot, no counter
   exceeds the security version of the image that runs;
3. a run that ends on the old pair changed nothing outside the staging area (the free slots and
   the standby boot-record copy) and blew no fuse.

Each cut point costs a snapshot restore (only the sectors written since are copied back), the
install up to the cut, and one or two boots; nothing is re-provisioned or re-read from disk,
and the update is fetched and accepted once (`Updater.fetch_update`): its checks touch no flash
and depend only on the snapshot's state, so at every cut point they would decide the same.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from firmware_model.agent.feed import MemoryFeed, channel_location
from firmware_model.agent.updater import AcceptedUpdate, Updater
from firmware_model.device.boot import Booted
from firmware_model.device.bootrecord import RecordState
from firmware_model.device.flash_layout import complement
from firmware_model.device.model import Device, DeviceFactory
from firmware_model.device.provision import FactoryImages
from firmware_model.errors import FwModelError
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import floors
from hal.errors import PowerLoss
from hal.interfaces import FlashGeometry
from hal.soft.machine import Snapshot, SoftwareMachine
from hal.soft.power_cuts import CutMode, CutPoint, FlashOp
from policy.errors import UsageError

#: The sweep's flash: big enough for the layout, small enough to hash at every cut point.
SWEEP_GEOMETRY = FlashGeometry(size=1024 * 1024, sector_size=4096, page_size=256)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepImages:
    """What the sweep provisions (the old images) and the feed channel it updates from."""

    factory: FactoryImages
    feed: MemoryFeed

    @classmethod
    def from_build(cls, folder: Path, channel: str = "Retail") -> SweepImages:
        """The factory images and `feeds/<channel>` of a build folder, read into memory once."""
        feed_dir = Path(channel_location(str(folder / "feeds"), channel))
        return cls(FactoryImages.from_build(folder), MemoryFeed.from_directory(feed_dir))


@dataclass(frozen=True)
class Violation:
    """An invariant that did not hold after a cut."""

    point: str
    invariant: int
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"cut": self.point, "invariant": self.invariant, "detail": self.detail}


@dataclass
class SweepReport:
    """Counts of a sweep: flash operations, cut points, outcomes, violations."""

    ops: int
    modes: tuple[str, ...]
    cut_points: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, object]:
        return {
            "flash_ops": self.ops,
            "modes": list(self.modes),
            "cut_points": self.cut_points,
            "outcomes": {"old": self.outcomes["old"], "new": self.outcomes["new"],
                         "none": self.outcomes["none"], "mixed": self.outcomes["mixed"]},
            "violation_count": len(self.violations),
            "violations": [v.to_json() for v in self.violations],
            "seconds": round(self.seconds, 3),
        }


Pair = tuple[bytes, bytes]


@dataclass(frozen=True)
class Baseline:
    """What the checks compare against: the provisioned device and the updated one."""

    old: Pair
    new: Pair
    floors: dict[Component, int]
    otp: tuple[int, ...]
    outside: tuple[tuple[int, int], ...]
    outside_hashes: tuple[bytes, ...]


def _pair(device: Device) -> Pair:
    active = device.running.record.active
    return active.keystore.digest, active.store.digest


def _outside_hashes(
    machine: SoftwareMachine, spans: Iterable[tuple[int, int]]
) -> tuple[bytes, ...]:
    return tuple(machine.flash.hash(start, end - start) for start, end in spans)


class _Checker:
    """The three invariants, for one cut point."""

    def __init__(self, machine: SoftwareMachine, device: Device, base: Baseline) -> None:
        self.machine, self.device, self.base = machine, device, base

    def at_cut(self, where: str) -> list[Violation]:
        """Invariant 2 at the moment of the cut (machine powered, nothing booted yet)."""
        newest = self.device.record_area.read(self.machine.flash)
        found = []
        for index, component in enumerate(Component):
            if floors(self.machine.otp)[component] <= self.base.floors[component]:
                continue
            confirmed = (newest is not None and newest.state is RecordState.CONFIRMED
                         and newest.active[component].digest == self.base.new[index])
            if not confirmed:
                found.append(Violation(where, 2, f"the {component.value} counter moved before "
                                                 "a confirmed record named the new image"))
        return found

    def after_boot(self, where: str) -> tuple[str, list[Violation]]:
        """Invariants 1, 2 and 3 once the device has booted; the outcome (old/new/...)."""
        try:
            self.device.boot()
        except FwModelError as error:
            return "none", [Violation(where, 1, f"the device does not boot: {error}")]
        pair = _pair(self.device)
        outcome = "old" if pair == self.base.old else "new" if pair == self.base.new else "mixed"
        found = []
        if outcome == "mixed":
            found.append(Violation(where, 1, "the device booted a mix of old and new images"))
        found += self._in_flash(where)
        found += self._counters(where)
        if outcome == "old":
            found += self._outside_staging(where)
        return outcome, found

    def _in_flash(self, where: str) -> list[Violation]:
        layout = self.device.flash_layout
        found = []
        for component in Component:
            ref = self.device.running.record.active[component]
            region = layout.slot(component, ref.slot or 0)
            if self.machine.flash.hash(region.offset, ref.length) != ref.digest:
                found.append(Violation(where, 1, f"the {component.value} in flash is not the "
                                                 "image that booted"))
        return found

    def _counters(self, where: str) -> list[Violation]:
        running = self.device.running.loaded.security_versions()
        return [Violation(where, 2, f"the {c.value} counter ({value}) exceeds the running "
                                    f"image's security version ({running[c]})")
                for c, value in floors(self.machine.otp).items() if value > running[c]]

    def _outside_staging(self, where: str) -> list[Violation]:
        found = []
        now = _outside_hashes(self.machine, self.base.outside)
        for (start, end), before, after in zip(self.base.outside, self.base.outside_hashes, now,
                                               strict=True):
            if before != after:
                found.append(Violation(where, 3, f"flash {start:#x}..{end:#x} outside the "
                                                 "staging area changed"))
        if self.machine.otp.words() != self.base.otp:
            found.append(Violation(where, 3, "fuses were blown by an update that did not take"))
        return found


def _describe(point: CutPoint, op: FlashOp | None) -> str:
    """`torn op 12 (program 256 bytes at 0x9000)`: the op counted from the update's start."""
    if op is None:
        return str(point)
    return (f"{point.mode.value} op {point.op} ({op.kind.value} {op.length} bytes "
            f"at {op.offset:#x})")


def sweep_update(
    images: SweepImages,
    *,
    geometry: FlashGeometry = SWEEP_GEOMETRY,
    modes: Iterable[CutMode] = tuple(CutMode),
    device_factory: DeviceFactory = Device,
    agent_factory: Callable[[Device], Updater] = Updater,
    progress: Progress | None = None,
) -> SweepReport:
    """Cut the power at every flash operation of a full update; see the module doc.

    `device_factory` builds the device model on the sweep's machine, `agent_factory` its update
    agent (tests pass broken ones to show the sweep catches them). `progress(done, total)` is
    called after each cut point. Each mode is swept once however often `modes` names it;
    UsageError if it names none.
    """
    started = time.perf_counter()
    mode_list = tuple(dict.fromkeys(modes))
    if not mode_list:
        raise UsageError("a sweep needs at least one cut mode (before, after, torn)")
    machine = SoftwareMachine(None, geometry)
    device = device_factory(machine)
    device.provision(images.factory)
    spans = tuple(complement(geometry.size, device.staging()))
    snap, ram = machine.snapshot(), device.ram
    base_floors, base_otp = floors(machine.otp), machine.otp.words()
    old_pair, outside_hashes = _pair(device), _outside_hashes(machine, spans)
    start = machine.faults.op_count
    agent = agent_factory(device)
    accepted = agent.fetch_update(images.feed)
    if accepted is not None:
        agent.install(accepted)
    ops = machine.faults.op_count - start
    base = Baseline(old_pair, _pair(device), base_floors, base_otp, spans, outside_hashes)
    report = SweepReport(ops, tuple(m.value for m in mode_list))
    run = _CutRun(machine, device, agent, _Checker(machine, device, base), accepted, snap, ram)
    total = ops * len(mode_list)
    try:
        for op in range(ops):
            for mode in mode_list:
                run.cut(CutPoint(op, mode), report)
                if progress is not None:
                    progress(report.cut_points, total)
    finally:
        machine.faults.disarm()
        machine.close()
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _CutRun:
    """Installs the accepted update from the snapshot with one cut armed, then powers up and
    checks."""

    machine: SoftwareMachine
    device: Device
    agent: Updater
    checker: _Checker
    update: AcceptedUpdate | None
    snap: Snapshot
    ram: Booted | None

    def cut(self, point: CutPoint, report: SweepReport) -> None:
        machine, device = self.machine, self.device
        machine.restore(self.snap)
        device.ram = self.ram
        device.bus.sent.clear()
        machine.faults.arm_point(point)
        with contextlib.suppress(PowerLoss):
            if self.update is not None:
                self.agent.install(self.update)
        report.cut_points += 1
        if machine.powered:
            machine.faults.disarm()
            report.violations.append(Violation(str(point), 0, "the cut never fired: the "
                                                              "update is not deterministic"))
            return
        fired = machine.faults.fired
        where = _describe(point, fired[0] if fired is not None else None)
        machine.set_boot_hook(None)  # power up without booting, to look at the cut's state
        machine.power_on()
        machine.set_boot_hook(device.on_reset)
        found = self.checker.at_cut(where)
        outcome, after = self.checker.after_boot(where)
        report.outcomes[outcome] += 1
        report.violations += found + after
