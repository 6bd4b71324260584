"""The power-cut sweep: zero violations for the real update, and each invariant's check shown
to catch a device built to break it."""

from __future__ import annotations

import math

import pytest

from firmware_model.agent.decisions import StagedImage
from firmware_model.agent.sweep import SWEEP_GEOMETRY, SweepImages, sweep_update
from firmware_model.agent.updater import Updater
from firmware_model.device.bootrecord import BootRecord, RecordArea, SlotRef, encode_record
from firmware_model.device.flash_layout import FlashLayout
from firmware_model.device.model import Device
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import raise_floor
from hal.interfaces import Flash, Machine
from hal.soft.power_cuts import CutMode
from policy.errors import UsageError
from tests.firmware_model.devicelab import Lab

RECORD_OPS = 2  # a commit erases the standby copy's sector and programs one page
CONFIRMED_CUTS = 1 + 3 * RECORD_OPS  # after the trial's program, and every cut in the confirm


def update_ops(lab: Lab) -> int:
    """Flash operations of the Retail update: erase + page programs per image, two commits."""
    sector, page = SWEEP_GEOMETRY.sector_size, SWEEP_GEOMETRY.page_size
    images = [lab.image("keystore-2025-02"), lab.image("certstore-2025-02")]
    writes = sum(math.ceil(len(i) / sector) + math.ceil(len(i) / page) for i in images)
    return writes + 2 * RECORD_OPS


def test_every_cut_of_the_update_boots_old_or_new_and_keeps_the_invariants(
    device_lab: Lab,
) -> None:
    seen: list[tuple[int, int]] = []
    report = sweep_update(SweepImages.from_build(device_lab.folder),
                          progress=lambda done, total: seen.append((done, total)))
    ops = update_ops(device_lab)
    assert report.ok and report.violations == []
    assert (report.ops, report.cut_points) == (ops, 3 * ops)
    assert dict(report.outcomes) == {"old": 3 * ops - CONFIRMED_CUTS, "new": CONFIRMED_CUTS}
    assert seen[-1] == (3 * ops, 3 * ops) and len(seen) == 3 * ops
    summary = report.to_json()
    assert summary["violation_count"] == 0 and summary["modes"] == ["before", "after", "torn"]


def test_the_retail_eval_channel_sweeps_clean_with_torn_cuts_only(device_lab: Lab) -> None:
    report = sweep_update(SweepImages.from_build(device_lab.folder, "RetailEval"),
                          modes=[CutMode.TORN])
    assert report.ok and report.cut_points == report.ops == update_ops(device_lab)
    assert report.outcomes["new"] == RECORD_OPS  # the two torn confirm operations


def test_a_sweep_needs_a_cut_mode_and_sweeps_each_mode_once(device_lab: Lab) -> None:
    images = SweepImages.from_build(device_lab.folder)
    with pytest.raises(UsageError, match="at least one cut mode"):
        sweep_update(images, modes=[])
    report = sweep_update(images, modes=[CutMode.BEFORE, CutMode.BEFORE])
    assert report.modes == ("before",) and report.cut_points == report.ops


# --- devices built to break an invariant -----------------------------------------------------


class InPlaceRecord(RecordArea):
    """One boot-record copy, rewritten in place: erase, then program. Not atomic."""

    def read_copies(self, flash: Flash) -> list[BootRecord | None]:
        return super().read_copies(flash)[:1]

    def commit(self, flash: Flash, record: BootRecord) -> None:
        target = self.layout.record_copies[0]
        flash.erase(target.offset, target.size)
        flash.program(target.offset, encode_record(record))


def in_place_device(machine: Machine) -> Device:
    return Device(machine, records=InPlaceRecord(FlashLayout.for_geometry(machine.flash.geometry)))


class EagerCounters(Updater):
    """Raises the anti-rollback counters as soon as the new images are written."""

    def _stage(self, staged: list[StagedImage]) -> dict[Component, SlotRef]:
        refs = super()._stage(staged)
        for image in staged:
            raise_floor(self.device.machine.otp, image.component, image.image.security_version)
        return refs


class Scribbler(Updater):
    """Keeps a download log in flash outside the staging area."""

    def _stage(self, staged: list[StagedImage]) -> dict[Component, SlotRef]:
        layout, flash = self.device.flash_layout, self.device.machine.flash
        log_at = layout.regions()[-1].end
        flash.erase(log_at, layout.geometry.sector_size)
        flash.program(log_at, b"downloaded")
        return super()._stage(staged)


def test_the_sweep_catches_a_boot_record_written_in_place(device_lab: Lab) -> None:
    report = sweep_update(SweepImages.from_build(device_lab.folder),
                          device_factory=in_place_device)
    assert not report.ok and report.outcomes["none"] > 0
    assert {v.invariant for v in report.violations} == {1}
    assert any("erase" in v.point and "does not boot" in v.detail for v in report.violations)


def test_the_sweep_catches_counters_raised_before_the_confirm(device_lab: Lab) -> None:
    report = sweep_update(SweepImages.from_build(device_lab.folder), agent_factory=EagerCounters)
    assert not report.ok
    assert 2 in {v.invariant for v in report.violations}
    assert any("store counter moved before" in v.detail for v in report.violations)


def test_the_sweep_catches_writes_outside_the_staging_area(device_lab: Lab) -> None:
    report = sweep_update(SweepImages.from_build(device_lab.folder), agent_factory=Scribbler)
    assert not report.ok and {v.invariant for v in report.violations} == {3}
    assert report.outcomes["old"] > 0 and report.outcomes["none"] == 0
