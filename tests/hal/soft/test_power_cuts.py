"""The fault injector: operation counting, cuts before/after/torn, power loss, sweeps."""

from __future__ import annotations

import pytest

from hal.errors import HalError, PowerLoss
from hal.interfaces import FlashGeometry, Machine, ResetCause
from hal.soft.cut_sweep import cut_points, sweep_power_cuts
from hal.soft.machine import SoftwareMachine
from hal.soft.power_cuts import CutMode, CutPoint, OpKind, tear

SMALL = FlashGeometry(size=8 * 4096, sector_size=4096, page_size=256)
PAGE = SMALL.page_size
SECTOR = SMALL.sector_size


def fresh() -> SoftwareMachine:
    return SoftwareMachine(None, SMALL, otp_words=4)


def cut_program(machine: SoftwareMachine, offset: int, data: bytes) -> str:
    """Program `data`, expecting the armed cut to fire; return the PowerLoss message."""
    with pytest.raises(PowerLoss) as cut:
        machine.flash.program(offset, data)
    return str(cut.value)


# --- counting ------------------------------------------------------------------------------


def test_each_page_program_and_each_sector_erase_is_one_operation() -> None:
    machine = fresh()
    counts = []
    for action in (
        lambda: machine.flash.program(10, b"x"),
        lambda: machine.flash.program(PAGE - 1, b"ab"),
        lambda: machine.flash.program(2 * SECTOR + 5, bytes(3 * PAGE)),
        lambda: machine.flash.program(0, b""),
        lambda: machine.flash.erase(0, 2 * SECTOR),
        lambda: machine.flash.read(0, SMALL.size),
        lambda: machine.flash.hash(0, SMALL.size),
    ):
        before = machine.faults.op_count
        action()
        counts.append(machine.faults.op_count - before)
    assert counts == [1, 2, 4, 0, 2, 0, 0]
    last = machine.faults.last_op
    assert last is not None
    assert (last.kind, last.offset, last.length) == (OpKind.ERASE, SECTOR, SECTOR)


# --- cuts ----------------------------------------------------------------------------------


def test_cut_before_leaves_the_flash_untouched_and_the_power_off() -> None:
    machine = fresh()
    machine.faults.arm(0, CutMode.BEFORE)
    message = cut_program(machine, 0, b"\x00" * 4)
    assert "before" in message and "program 4 bytes at 0x0" in message
    assert not machine.powered
    machine.power_on()
    assert machine.flash.read(0, 4) == b"\xff" * 4


def test_cut_after_completes_that_operation_and_no_other() -> None:
    machine = fresh()
    machine.faults.arm(1, CutMode.AFTER)
    cut_program(machine, 0, bytes(3 * PAGE))
    machine.power_on()
    assert machine.flash.read(0, 2 * PAGE) == bytes(2 * PAGE)
    assert machine.flash.read(2 * PAGE, PAGE) == b"\xff" * PAGE


def test_torn_page_program_applies_half_by_default_or_the_bytes_asked() -> None:
    machine = fresh()
    machine.faults.arm(0, CutMode.TORN)
    cut_program(machine, 0, bytes(PAGE))
    machine.power_on()
    assert machine.flash.read(0, PAGE) == bytes(PAGE // 2) + b"\xff" * (PAGE // 2)
    machine.faults.arm(0, CutMode.TORN, torn_bytes=3)
    cut_program(machine, PAGE, bytes(PAGE))
    machine.power_on()
    assert machine.flash.read(PAGE, PAGE) == bytes(3) + b"\xff" * (PAGE - 3)


def test_default_tear_applies_the_first_half_of_the_changing_bits() -> None:
    machine = fresh()
    machine.flash.program(0, b"\xf0")
    machine.faults.arm(0, CutMode.TORN)
    cut_program(machine, 0, b"\x00\x00")
    machine.power_on()
    assert machine.flash.read(0, 2) == b"\x00\x3f"  # 4 + 8 bits change; the first 6 did


def test_torn_sector_erase_erases_only_its_first_part() -> None:
    machine = fresh()
    machine.flash.program(0, bytes(2 * SECTOR))
    machine.faults.arm(1, CutMode.TORN, torn_bytes=100)
    with pytest.raises(PowerLoss, match="erase"):
        machine.flash.erase(0, 2 * SECTOR)
    machine.power_on()
    assert machine.flash.read(0, SECTOR) == b"\xff" * SECTOR
    assert machine.flash.read(SECTOR, SECTOR) == b"\xff" * 100 + bytes(SECTOR - 100)


def test_torn_bits_lie_between_old_and_new_and_follow_the_seed() -> None:
    old, new = b"\xff" * PAGE, bytes(range(256))
    torn = tear(old, new, CutPoint(0, CutMode.TORN, bit_seed=7))
    assert torn == tear(old, new, CutPoint(0, CutMode.TORN, bit_seed=7))
    assert torn != tear(old, new, CutPoint(0, CutMode.TORN, bit_seed=8))
    assert torn not in (old, new)
    for was, want, got in zip(old, new, torn, strict=True):
        assert got & ~(was | want) == 0 and (was & want) & ~got == 0
    machine = fresh()
    machine.faults.arm(0, CutMode.TORN, bit_seed=7)
    cut_program(machine, 0, new)
    machine.power_on()
    assert machine.flash.read(0, PAGE) == torn


def test_cut_counts_from_arming_and_fires_once() -> None:
    machine = fresh()
    machine.flash.program(0, bytes(PAGE))
    point = machine.faults.arm(0, CutMode.BEFORE)
    assert machine.faults.armed == point
    cut_program(machine, PAGE, b"\x00")
    fired = machine.faults.fired
    assert fired is not None and fired[0].index == 1 and fired[1] == point
    assert machine.faults.armed is None
    machine.power_on()
    machine.flash.program(PAGE, b"\x00")
    assert machine.flash.read(PAGE, 1) == b"\x00"


def test_disarmed_cut_does_not_fire() -> None:
    machine = fresh()
    machine.faults.arm(0, CutMode.BEFORE)
    machine.faults.disarm()
    machine.flash.program(0, b"\x00")
    assert machine.powered


@pytest.mark.parametrize(
    "kwargs",
    [
        {"op": -1, "mode": CutMode.BEFORE},
        {"op": 0, "mode": CutMode.AFTER, "torn_bytes": 4},
        {"op": 0, "mode": CutMode.TORN, "torn_bytes": 4, "bit_seed": 1},
        {"op": 0, "mode": CutMode.TORN, "torn_bytes": -4},
    ],
)
def test_cut_points_that_make_no_sense_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CutPoint(**kwargs)  # type: ignore[arg-type]


# --- power loss ----------------------------------------------------------------------------


def test_without_power_every_operation_raises_power_loss() -> None:
    machine = fresh()
    machine.power_off()
    for action in (
        lambda: machine.flash.read(0, 1),
        lambda: machine.flash.program(0, b"\x00"),
        lambda: machine.flash.erase(0, SECTOR),
        lambda: machine.flash.hash(0, 1),
        lambda: machine.otp.read_word(0),
        lambda: machine.otp.blow(0, 1),
        lambda: machine.reset.request_reset(),
        lambda: machine.reset.last_cause(),
        lambda: machine.watchdog.start(1.0),
    ):
        with pytest.raises(PowerLoss, match="powered off"):
            action()


def test_power_on_reboots_with_cause_power_loss() -> None:
    machine = fresh()
    boots: list[ResetCause] = []
    machine.set_boot_hook(lambda m: boots.append(m.reset.last_cause()))
    machine.faults.arm(0, CutMode.AFTER)
    cut_program(machine, 0, b"\x00")
    assert boots == []
    machine.power_on()
    assert boots == [ResetCause.POWER_LOSS]
    assert machine.console.lines()[-1] == "[hal] reset: cause POWER_LOSS"


def test_cut_during_boot_leaves_the_machine_off_again() -> None:
    machine = fresh()
    machine.set_boot_hook(lambda m: m.flash.program(0, b"\x00"))
    machine.power_off()
    machine.faults.arm(0, CutMode.BEFORE)
    with pytest.raises(PowerLoss):
        machine.power_on()
    assert not machine.powered
    machine.power_on()
    assert machine.flash.read(0, 1) == b"\x00"


def test_power_cut_stops_the_watchdog() -> None:
    machine = fresh()
    machine.watchdog.start(1.0)
    machine.faults.arm(0, CutMode.BEFORE)
    cut_program(machine, 0, b"\x00")
    machine.power_on()
    machine.clock.advance(5.0)
    assert machine.reset.last_cause() is ResetCause.POWER_LOSS


@pytest.mark.fake_only
def test_fake_backend_machine_takes_injected_cuts(machine: Machine) -> None:
    assert isinstance(machine, SoftwareMachine)
    machine.faults.arm(0, CutMode.BEFORE)
    with pytest.raises(PowerLoss):
        machine.flash.erase(0, machine.flash.geometry.sector_size)
    machine.power_on()
    assert machine.reset.last_cause() is ResetCause.POWER_LOSS


# --- sweeps --------------------------------------------------------------------------------


def write_record(machine: SoftwareMachine) -> None:
    """Work for the sweep: erase a sector, program two pages and a byte elsewhere."""
    machine.flash.erase(SECTOR, SECTOR)
    machine.flash.program(SECTOR, b"\x11" * (2 * PAGE))
    machine.flash.program(0, b"\x00")


def test_sweep_visits_every_operation_in_every_mode() -> None:
    machine = fresh()
    machine.flash.program(SECTOR, bytes(SECTOR))
    boots: list[ResetCause] = []
    machine.set_boot_hook(lambda m: boots.append(m.reset.last_cause()))
    seen: dict[CutPoint | None, bytes] = {}

    def check(m: SoftwareMachine, point: CutPoint | None) -> None:
        seen[point] = m.flash.read(0, 2 * SECTOR)

    result = sweep_power_cuts(machine, write_record, check)
    assert result.ops == 4
    assert result.points == tuple(cut_points(4))
    assert len(set(result.points)) == 12 and set(seen) == {None, *result.points}
    assert boots == [ResetCause.POWER_LOSS] * 12
    blank, record = b"\xff" * SECTOR, b"\x11" * PAGE
    states = [  # the two sectors after 0, 1, 2, 3 and 4 whole operations
        blank + bytes(SECTOR),
        blank + blank,
        blank + record + blank[PAGE:],
        blank + 2 * record + blank[2 * PAGE :],
        b"\x00" + blank[1:] + 2 * record + blank[2 * PAGE :],
    ]
    for op in range(4):
        assert seen[CutPoint(op, CutMode.BEFORE)] == states[op]
        assert seen[CutPoint(op, CutMode.AFTER)] == states[op + 1]
        assert seen[CutPoint(op, CutMode.TORN)] not in (states[op], states[op + 1])
    assert seen[None] == states[4]
    assert machine.flash.read(0, 2 * SECTOR) == states[0]


def test_sweep_refuses_work_that_is_not_repeatable() -> None:
    machine = fresh()
    runs = []

    def shrinking(m: SoftwareMachine) -> None:
        runs.append(1)
        if len(runs) == 1:
            m.flash.program(0, bytes(2 * PAGE))

    with pytest.raises(HalError, match="never fired"):
        sweep_power_cuts(machine, shrinking, lambda m, p: None)
    assert machine.faults.armed is None
