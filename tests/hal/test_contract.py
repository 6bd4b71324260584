"""The HAL contract: what every backend (fake, emulator, a board) promises the device model.

Only the `machine` fixture and the interfaces of hal.interfaces are used, so the same tests run
under `--hal fake`, `--hal emulator` and `--hal serial:PORT`. Tests that need a machine nobody
used before carry `fresh_machine`; flash tests erase the sectors they use first.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest

from hal.errors import FlashError, HalError, OtpError
from hal.interfaces import (
    Clock,
    Console,
    Flash,
    Machine,
    Otp,
    ResetCause,
    ResetController,
    Watchdog,
)

#: How much longer than asked a sleep may take (a board's sleep is real time over a link).
SLEEP_SLACK_S = 5.0


def scratch(machine: Machine, sectors: int, first: int = 0) -> int:
    """Erase `sectors` sectors in the middle of the flash (away from a board's boot code)."""
    geometry = machine.flash.geometry
    offset = geometry.size // 2 + first * geometry.sector_size
    machine.flash.erase(offset, sectors * geometry.sector_size)
    return offset


def record_boots(machine: Machine) -> list[ResetCause]:
    """Install a boot hook that records the reset cause each boot sees; return the record."""
    boots: list[ResetCause] = []

    def hook(booted: Machine) -> None:
        assert booted is machine
        boots.append(booted.reset.last_cause())

    machine.set_boot_hook(hook)
    return boots


def noise(length: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(length)


# --- the machine as a whole ------------------------------------------------------------


def test_machine_implements_every_protocol(machine: Machine) -> None:
    assert isinstance(machine, Machine)
    parts: list[tuple[object, type]] = [
        (machine.flash, Flash),
        (machine.otp, Otp),
        (machine.reset, ResetController),
        (machine.clock, Clock),
        (machine.console, Console),
        (machine.watchdog, Watchdog),
    ]
    for part, protocol in parts:
        assert isinstance(part, protocol), protocol.__name__


def test_geometry_pages_tile_sectors_and_sectors_tile_flash(machine: Machine) -> None:
    geometry = machine.flash.geometry
    assert geometry.size > 0 and geometry.sector_size > 0 and geometry.page_size > 0
    assert geometry.sector_size % geometry.page_size == 0
    assert geometry.size % geometry.sector_size == 0


# --- flash: erase ------------------------------------------------------------------------


def test_erase_sets_exactly_the_named_sectors_to_ff(machine: Machine) -> None:
    sector = machine.flash.geometry.sector_size
    base = scratch(machine, 3)
    machine.flash.program(base, bytes(3 * sector))
    machine.flash.erase(base + sector, sector)
    assert machine.flash.read(base, sector) == bytes(sector)
    assert machine.flash.read(base + sector, sector) == b"\xff" * sector
    assert machine.flash.read(base + 2 * sector, sector) == bytes(sector)


@pytest.mark.parametrize(
    ("offset_pages", "length_pages"),
    [(1, None), (0, 1), (None, 1)],
    ids=["offset-off-sector", "length-short-of-sector", "both-off"],
)
def test_erase_refuses_what_is_not_sector_aligned(
    machine: Machine, offset_pages: int | None, length_pages: int | None
) -> None:
    geometry = machine.flash.geometry
    base = scratch(machine, 2)
    machine.flash.program(base, bytes(2 * geometry.sector_size))
    offset = base + (offset_pages or 0) * geometry.page_size + (offset_pages is None)
    length = geometry.sector_size if length_pages is None else length_pages * geometry.page_size
    with pytest.raises(FlashError):
        machine.flash.erase(offset, length)
    assert machine.flash.read(base, 2 * geometry.sector_size) == bytes(2 * geometry.sector_size)


@pytest.mark.parametrize("where", ["at-end", "straddling-end", "negative"])
def test_erase_refuses_out_of_range(machine: Machine, where: str) -> None:
    geometry = machine.flash.geometry
    sector = geometry.sector_size
    offset, length = {
        "at-end": (geometry.size, sector),
        "straddling-end": (geometry.size - sector, 2 * sector),
        "negative": (-sector, sector),
    }[where]
    with pytest.raises(FlashError):
        machine.flash.erase(offset, length)


# --- flash: program ----------------------------------------------------------------------


def test_program_reads_back_within_a_page(machine: Machine) -> None:
    base = scratch(machine, 1)
    machine.flash.program(base + 5, b"sphere")
    assert machine.flash.read(base, 12) == b"\xff" * 5 + b"sphere" + b"\xff"


def test_program_may_clear_more_bits_but_never_set_one(machine: Machine) -> None:
    base = scratch(machine, 1)
    machine.flash.program(base, b"\xf0")
    machine.flash.program(base, b"\x30")
    assert machine.flash.read(base, 1) == b"\x30"
    with pytest.raises(FlashError):
        machine.flash.program(base, b"\x0f")
    assert machine.flash.read(base, 1) == b"\x30"
    machine.flash.erase(base, machine.flash.geometry.sector_size)
    machine.flash.program(base, b"\x0f")
    assert machine.flash.read(base, 1) == b"\x0f"


def test_program_across_page_boundaries(machine: Machine) -> None:
    page = machine.flash.geometry.page_size
    base = scratch(machine, 1)
    data = noise(2 * page + 20)
    machine.flash.program(base + page - 10, data)
    assert machine.flash.read(base + page - 10, len(data)) == data
    assert machine.flash.read(base, page - 10) == b"\xff" * (page - 10)
    assert machine.flash.read(base + 3 * page + 10, 16) == b"\xff" * 16


def test_program_across_sector_boundary(machine: Machine) -> None:
    sector = machine.flash.geometry.sector_size
    base = scratch(machine, 2)
    data = noise(100, seed=1)
    machine.flash.program(base + sector - 50, data)
    assert machine.flash.read(base + sector - 50, 100) == data


@pytest.mark.parametrize("where", ["straddling-end", "past-end", "negative"])
def test_program_refuses_out_of_range(machine: Machine, where: str) -> None:
    size = machine.flash.geometry.size
    offset = {"straddling-end": size - 2, "past-end": size, "negative": -1}[where]
    with pytest.raises(FlashError):
        machine.flash.program(offset, b"\x00\x00\x00\x00")


@pytest.mark.parametrize("where", ["straddling-end", "negative"])
def test_read_refuses_out_of_range(machine: Machine, where: str) -> None:
    size = machine.flash.geometry.size
    offset = {"straddling-end": size - 1, "negative": -1}[where]
    with pytest.raises(FlashError):
        machine.flash.read(offset, 2)


def test_read_of_nothing_is_empty(machine: Machine) -> None:
    assert machine.flash.read(machine.flash.geometry.size, 0) == b""


# --- flash: transfers and hashes ---------------------------------------------------------


def test_large_unaligned_transfer_reads_back_and_hashes(machine: Machine) -> None:
    sector = machine.flash.geometry.sector_size
    length = 256 * 1024 - 7
    sectors = -(-(length + 3) // sector)
    base = scratch(machine, sectors)
    data = noise(length, seed=2)
    machine.flash.program(base + 3, data)
    assert machine.flash.read(base + 3, length) == data
    assert machine.flash.hash(base + 3, length) == hashlib.sha256(data).digest()


@pytest.mark.parametrize(("offset", "length"), [(1, 1), (3, 17), (255, 2), (1000, 333), (7, 4093)])
def test_unaligned_small_transfers(machine: Machine, offset: int, length: int) -> None:
    base = scratch(machine, 2)
    data = noise(length, seed=offset)
    machine.flash.program(base + offset, data)
    assert machine.flash.read(base + offset, length) == data
    assert machine.flash.read(base + offset - 1, 1) == b"\xff"
    assert machine.flash.read(base + offset + length, 1) == b"\xff"


def test_hash_equals_sha256_of_read(machine: Machine) -> None:
    sector = machine.flash.geometry.sector_size
    base = scratch(machine, 2)
    machine.flash.program(base + 10, noise(sector, seed=3))
    for offset, length in [(0, 2 * sector), (10, sector), (11, 0), (sector - 1, 2)]:
        expected = hashlib.sha256(machine.flash.read(base + offset, length)).digest()
        assert machine.flash.hash(base + offset, length) == expected
    with pytest.raises(FlashError):
        machine.flash.hash(machine.flash.geometry.size - 1, 2)


# --- OTP -----------------------------------------------------------------------------------


def test_otp_refuses_words_that_do_not_exist(machine: Machine) -> None:
    count = machine.otp.word_count
    assert count > 0
    for index in (count, -1):
        with pytest.raises(OtpError):
            machine.otp.read_word(index)
        with pytest.raises(OtpError):
            machine.otp.blow(index, 1)


@pytest.mark.fresh_machine
def test_fresh_otp_reads_zero(machine: Machine) -> None:
    assert [machine.otp.read_word(i) for i in range(machine.otp.word_count)] == [0] * (
        machine.otp.word_count
    )


@pytest.mark.fresh_machine
def test_otp_bits_only_ever_set(machine: Machine) -> None:
    machine.otp.blow(3, 0b0101)
    machine.otp.blow(3, 0b0011)
    assert machine.otp.read_word(3) == 0b0111
    machine.otp.blow(3, 0)
    assert machine.otp.read_word(3) == 0b0111
    machine.otp.blow(3, 0x8000_0000)
    assert machine.otp.read_word(3) == 0x8000_0007
    assert machine.otp.read_word(2) == 0 and machine.otp.read_word(4) == 0


@pytest.mark.fresh_machine
@pytest.mark.parametrize("bits", [1 << 32, -1])
def test_otp_refuses_bits_outside_a_word(machine: Machine, bits: int) -> None:
    with pytest.raises(OtpError):
        machine.otp.blow(0, bits)
    assert machine.otp.read_word(0) == 0


@pytest.mark.fresh_machine
def test_flash_and_otp_survive_a_reset(machine: Machine) -> None:
    base = scratch(machine, 1)
    machine.flash.program(base, b"kept")
    machine.otp.blow(1, 0x10)
    machine.reset.request_reset()
    assert machine.flash.read(base, 4) == b"kept"
    assert machine.otp.read_word(1) == 0x10


# --- reset -------------------------------------------------------------------------------


@pytest.mark.fresh_machine
def test_fresh_machine_reports_power_on(machine: Machine) -> None:
    assert machine.reset.last_cause() is ResetCause.POWER_ON


def test_software_reset_records_its_cause_and_reruns_boot(machine: Machine) -> None:
    boots = record_boots(machine)
    machine.reset.request_reset()
    assert machine.reset.last_cause() is ResetCause.SOFTWARE
    machine.reset.request_reset()
    assert boots == [ResetCause.SOFTWARE, ResetCause.SOFTWARE]


def test_reset_records_the_cause_asked_for(machine: Machine) -> None:
    boots = record_boots(machine)
    machine.reset.request_reset(ResetCause.WATCHDOG)
    assert machine.reset.last_cause() is ResetCause.WATCHDOG
    assert boots == [ResetCause.WATCHDOG]
    machine.reset.request_reset(ResetCause.SOFTWARE)
    assert machine.reset.last_cause() is ResetCause.SOFTWARE


def test_a_reset_cannot_be_asked_for_as_a_power_on(machine: Machine) -> None:
    boots = record_boots(machine)
    with pytest.raises(HalError, match="only a power-up"):
        machine.reset.request_reset(ResetCause.POWER_ON)
    assert boots == []


def test_boot_hook_can_be_removed(machine: Machine) -> None:
    boots = record_boots(machine)
    machine.set_boot_hook(None)
    machine.reset.request_reset()
    assert boots == []
    assert machine.reset.last_cause() is ResetCause.SOFTWARE


def test_flash_survives_a_reset(machine: Machine) -> None:
    base = scratch(machine, 1)
    machine.flash.program(base + 1, b"still here")
    machine.reset.request_reset()
    assert machine.flash.read(base + 1, 10) == b"still here"


# --- boot count and uptime ----------------------------------------------------------------


def known_uptime(machine: Machine) -> float:
    """The machine's uptime; the test is skipped on a board too old to report it."""
    uptime = machine.reset.uptime()
    if uptime is None:
        pytest.skip("this board does not say when it booted (an older board's 38-byte HELLO, "
                    "docs/serial-protocol.md §6.1)")
    return uptime


@pytest.mark.fresh_machine
def test_fresh_machine_has_booted_once(machine: Machine) -> None:
    assert machine.reset.boot_count() == 1


def test_every_reset_is_one_more_boot_and_the_boot_hook_sees_it(machine: Machine) -> None:
    seen: list[int] = []
    machine.set_boot_hook(lambda booted: seen.append(booted.reset.boot_count()))
    before = machine.reset.boot_count()
    machine.reset.request_reset()
    machine.reset.request_reset(ResetCause.WATCHDOG)
    assert machine.reset.boot_count() == before + 2
    assert seen == [before + 1, before + 2]


def test_a_watchdog_bite_is_one_more_boot(machine: Machine) -> None:
    before = machine.reset.boot_count()

    def body() -> None:
        machine.watchdog.start(1.0)
        machine.clock.sleep(1.5)

    guarded(machine, body)
    assert machine.reset.boot_count() == before + 1
    assert known_uptime(machine) < 1.5


def test_uptime_grows_with_the_monotonic_clock_and_starts_again_at_a_reset(
    machine: Machine,
) -> None:
    machine.clock.sleep(1.0)  # QEMU's clock reads up to 84 ms back just after power-up
    start = known_uptime(machine)
    machine.clock.sleep(3.0)
    up, mono = known_uptime(machine), machine.clock.monotonic()
    assert 3.0 <= up - start < 3.0 + SLEEP_SLACK_S
    machine.reset.request_reset()
    after = known_uptime(machine)
    assert 0.0 <= after < up and machine.clock.monotonic() >= mono  # monotonic goes on
    machine.clock.sleep(2.0)
    assert 2.0 <= known_uptime(machine) - after < 2.0 + SLEEP_SLACK_S


# --- clock and console ---------------------------------------------------------------------


def test_sleep_moves_wall_and_monotonic_time(machine: Machine) -> None:
    wall, mono = machine.clock.wall(), machine.clock.monotonic()
    machine.clock.sleep(2.0)
    assert 2.0 <= machine.clock.wall() - wall < 2.0 + SLEEP_SLACK_S
    assert 2.0 <= machine.clock.monotonic() - mono < 2.0 + SLEEP_SLACK_S


def test_monotonic_time_never_goes_back(machine: Machine) -> None:
    readings = []
    for _ in range(5):
        readings.append(machine.clock.monotonic())
        machine.clock.sleep(0.01)
    assert readings == sorted(readings)
    assert readings[-1] > readings[0]


def test_console_gives_back_logged_lines_in_order(machine: Machine) -> None:
    machine.console.log("contract: first")
    machine.console.log("contract: second")
    assert machine.console.lines()[-2:] == ["contract: first", "contract: second"]


def test_console_splits_lines_on_newline_only(machine: Machine) -> None:
    machine.console.log("contract: a\rb\u2028c\nd")
    machine.console.log("")
    assert machine.console.lines()[-3:] == ["contract: a\rb\u2028c", "d", ""]


# --- watchdog ------------------------------------------------------------------------------


def guarded(machine: Machine, body: Callable[[], None]) -> None:
    """Run `body`, then make sure the watchdog is stopped whatever happened."""
    try:
        body()
    finally:
        machine.watchdog.stop()


def test_watchdog_that_is_not_kicked_resets_with_cause_watchdog(machine: Machine) -> None:
    boots = record_boots(machine)

    def body() -> None:
        machine.watchdog.start(1.0)
        machine.clock.sleep(1.5)

    guarded(machine, body)
    assert boots == [ResetCause.WATCHDOG]
    assert machine.reset.last_cause() is ResetCause.WATCHDOG


def test_kicked_watchdog_does_not_bite(machine: Machine) -> None:
    boots = record_boots(machine)

    def body() -> None:
        machine.watchdog.start(1.0)
        for _ in range(3):
            machine.clock.sleep(0.6)
            machine.watchdog.kick()

    guarded(machine, body)
    assert boots == []


def test_stopped_watchdog_does_not_bite(machine: Machine) -> None:
    boots = record_boots(machine)
    machine.watchdog.start(1.0)
    machine.watchdog.stop()
    machine.clock.sleep(1.5)
    assert boots == []


def test_reset_stops_the_watchdog(machine: Machine) -> None:
    boots = record_boots(machine)

    def body() -> None:
        machine.watchdog.start(1.0)
        machine.reset.request_reset()
        machine.clock.sleep(1.5)

    guarded(machine, body)
    assert boots == [ResetCause.SOFTWARE]
