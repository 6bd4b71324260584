"""The boot record's two copies, the flash layout and the fuse map."""

from __future__ import annotations

import itertools

import pytest

from firmware_model.device.bootrecord import (
    RECORD_SIZE,
    RecordArea,
    RecordState,
    SlotRef,
    SlotSet,
    decode_record,
    encode_record,
    first_record,
)
from firmware_model.device.flash_layout import FlashLayout, complement, staging_regions
from firmware_model.errors import FwModelError, ProvisioningError
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import (
    MAX_SECURITY_VERSION,
    floors,
    fuse_root_hash,
    raise_floor,
    read_root_hash,
    security_floor,
)
from hal.errors import PowerLoss
from hal.interfaces import FlashGeometry
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode

GEOMETRY = FlashGeometry(size=1024 * 1024, sector_size=4096, page_size=256)
LAYOUT = FlashLayout.for_geometry(GEOMETRY)


def ref(slot: int, fill: int) -> SlotRef:
    return SlotRef(slot, 100 + fill, bytes([fill]) * 32)


FIRST = first_record(SlotSet(ref(0, 1), ref(0, 2)))


def fresh() -> tuple[SoftwareMachine, RecordArea]:
    return SoftwareMachine(None, GEOMETRY), RecordArea(LAYOUT)


# --- the record format ---------------------------------------------------------------------


def test_a_record_round_trips_and_every_single_bit_flip_invalidates_it() -> None:
    record = FIRST.trial({Component.STORE: ref(1, 3)})
    raw = encode_record(record)
    assert len(raw) == RECORD_SIZE
    assert decode_record(raw) == record
    for bit in range(0, 8 * len(raw), 7):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert decode_record(bytes(flipped)) is None, bit


def test_erased_and_zeroed_copies_are_not_records() -> None:
    assert decode_record(b"\xff" * RECORD_SIZE) is None
    assert decode_record(bytes(RECORD_SIZE)) is None


def test_trial_confirm_and_revert_move_the_sequence_and_the_sets() -> None:
    trial = FIRST.trial({Component.STORE: ref(1, 3)})
    assert (trial.sequence, trial.state) == (2, RecordState.TRIAL)
    assert trial.active == SlotSet(ref(0, 1), ref(1, 3)) and trial.fallback == FIRST.active
    confirmed = trial.confirmed()
    assert (confirmed.sequence, confirmed.state, confirmed.active) == (
        3, RecordState.CONFIRMED, trial.active)
    reverted = trial.reverted()
    assert (reverted.sequence, reverted.state, reverted.active) == (
        3, RecordState.CONFIRMED, FIRST.active)


# --- the two copies ------------------------------------------------------------------------


def test_commits_alternate_between_the_copies_and_the_newest_wins() -> None:
    machine, area = fresh()
    assert area.read(machine.flash) is None
    area.commit(machine.flash, FIRST)
    trial = FIRST.trial({Component.STORE: ref(1, 3)})
    area.commit(machine.flash, trial)
    assert area.read_copies(machine.flash) == [FIRST, trial]
    confirmed = trial.confirmed()
    area.commit(machine.flash, confirmed)
    assert area.read_copies(machine.flash) == [confirmed, trial]
    assert area.newest(machine.flash) == (confirmed, 0)


def test_a_commit_must_supersede_the_newest_record() -> None:
    machine, area = fresh()
    area.commit(machine.flash, FIRST)
    with pytest.raises(ValueError, match="does not supersede"):
        area.commit(machine.flash, FIRST)


@pytest.mark.parametrize("op", [0, 1])
@pytest.mark.parametrize("mode", list(CutMode))
def test_a_cut_commit_leaves_exactly_the_old_or_the_new_record(op: int, mode: CutMode) -> None:
    machine, area = fresh()
    area.commit(machine.flash, FIRST)
    trial = FIRST.trial({Component.STORE: ref(1, 3)})
    machine.faults.arm(op, mode)  # op 0: the erase of the standby copy, op 1: its program
    with pytest.raises(PowerLoss):
        area.commit(machine.flash, trial)
    machine.set_boot_hook(None)
    machine.power_on()
    expected = trial if (op, mode) == (1, CutMode.AFTER) else FIRST
    assert area.read(machine.flash) == expected


# --- layout --------------------------------------------------------------------------------


def test_the_layout_regions_are_sector_aligned_and_disjoint() -> None:
    regions = LAYOUT.regions()
    for region in regions:
        assert region.offset % GEOMETRY.sector_size == 0 == region.size % GEOMETRY.sector_size
    for before, after in itertools.pairwise(regions):
        assert before.end <= after.offset
    assert regions[-1].end <= GEOMETRY.size


def test_a_flash_too_small_for_the_layout_is_refused() -> None:
    with pytest.raises(FwModelError, match="needs"):
        FlashLayout.for_geometry(FlashGeometry(size=64 * 1024, sector_size=4096, page_size=256))


def test_staging_is_the_inactive_slots_and_the_standby_record_copy() -> None:
    staging = staging_regions(LAYOUT, {Component.KEYSTORE: 0, Component.STORE: 1}, 0)
    assert staging == sorted([LAYOUT.slot(Component.KEYSTORE, 1), LAYOUT.slot(Component.STORE, 0),
                              LAYOUT.record_copies[1]], key=lambda r: r.offset)
    spans = complement(GEOMETRY.size, staging)
    covered = sum(end - start for start, end in spans) + sum(r.size for r in staging)
    assert covered == GEOMETRY.size


# --- fuses ---------------------------------------------------------------------------------


def test_counters_are_thermometers_that_only_rise() -> None:
    machine = SoftwareMachine(None, GEOMETRY)
    assert floors(machine.otp) == {Component.KEYSTORE: 0, Component.STORE: 0}
    assert raise_floor(machine.otp, Component.STORE, 2)
    assert not raise_floor(machine.otp, Component.STORE, 1)
    assert security_floor(machine.otp, Component.STORE) == 2
    assert raise_floor(machine.otp, Component.STORE, 40)  # crosses into the second word
    assert security_floor(machine.otp, Component.STORE) == 40
    assert security_floor(machine.otp, Component.KEYSTORE) == 0
    with pytest.raises(FwModelError, match="does not fit"):
        raise_floor(machine.otp, Component.STORE, MAX_SECURITY_VERSION + 1)


def test_the_root_hash_fuses_once() -> None:
    machine = SoftwareMachine(None, GEOMETRY)
    assert read_root_hash(machine.otp) is None
    fuse_root_hash(machine.otp, b"\x5a" * 32)
    assert read_root_hash(machine.otp) == b"\x5a" * 32
    fuse_root_hash(machine.otp, b"\x5a" * 32)  # the same hash again is harmless
    with pytest.raises(ProvisioningError, match="another root-key hash"):
        fuse_root_hash(machine.otp, b"\xa5" * 32)
    with pytest.raises(ProvisioningError, match="32 bytes"):
        fuse_root_hash(machine.otp, b"\x01" * 31)
