"""The software machine itself: files, memory map, clock, console, watchdog, snapshots."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hal.errors import (
    FlashError,
    FlashFileError,
    HalError,
    OtpError,
    OtpFileError,
    PowerLoss,
    StateFileError,
)
from hal.interfaces import FlashGeometry, ResetCause
from hal.soft.clock import DEFAULT_WALL_START
from hal.soft.console import LineConsole
from hal.soft.machine import FLASH_BASE, OTP_BASE, RESET_CAUSE_BASE, SoftwareMachine
from hal.soft.memory_map import MemoryMap
from hal.soft.power_cuts import CutMode

SMALL = FlashGeometry(size=16 * 4096, sector_size=4096, page_size=256)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[SoftwareMachine]:
    """A 64 KiB machine on a file, with 8 fuse words."""
    with SoftwareMachine(tmp_path / "small.flash", SMALL, otp_words=8) as machine:
        yield machine


# --- files ---------------------------------------------------------------------------------


def test_default_machine_is_mt3620_like_and_its_file_starts_erased(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with SoftwareMachine(path) as machine:
        assert machine.flash.geometry == FlashGeometry(16 << 20, 4096, 256)
    raw = path.read_bytes()
    assert len(raw) == 16 << 20 and raw.count(0xFF) == len(raw)
    assert (tmp_path / "dev.flash.otp").read_bytes() == bytes(64 * 4)
    assert (tmp_path / "dev.flash.reset").read_text().strip() == "POWER_ON"


def test_flash_otp_and_reset_cause_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with SoftwareMachine(path, SMALL, otp_words=8) as machine:
        machine.flash.program(4096 + 3, b"persist")
        machine.otp.blow(7, 0xA5)
        machine.reset.request_reset(ResetCause.WATCHDOG)
    with SoftwareMachine(path, SMALL, otp_words=8) as again:
        assert again.flash.read(4096 + 3, 7) == b"persist"
        assert again.otp.read_word(7) == 0xA5
        assert again.reset.last_cause() is ResetCause.WATCHDOG
        assert again.console.lines() == ["[hal] power on: last reset cause WATCHDOG"]


def test_another_process_sees_and_extends_the_same_device(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with SoftwareMachine(path, SMALL, otp_words=8) as machine:
        machine.flash.program(0, b"from parent")
        machine.otp.blow(0, 1)
    child = textwrap.dedent(
        f"""
        import sys
        from hal.interfaces import FlashGeometry, ResetCause
        from hal.soft.machine import SoftwareMachine
        with SoftwareMachine({str(path)!r}, FlashGeometry({SMALL.size}, 4096, 256), 8) as m:
            if m.flash.read(0, 11) != b"from parent" or m.otp.read_word(0) != 1:
                sys.exit(3)
            m.flash.program(8192, b"from child")
            m.otp.blow(0, 2)
            m.reset.request_reset(ResetCause.SOFTWARE)
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with SoftwareMachine(path, SMALL, otp_words=8) as machine:
        assert machine.flash.read(8192, 10) == b"from child"
        assert machine.otp.read_word(0) == 3
        assert machine.reset.last_cause() is ResetCause.SOFTWARE


def test_what_is_programmed_is_in_the_file_and_the_mapping_at_once(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with SoftwareMachine(path, SMALL) as machine:
        machine.flash.program(5, b"abc" * 200)  # three pages in one go
        machine.faults.arm(0, CutMode.TORN, torn_bytes=2)
        with pytest.raises(PowerLoss):
            machine.flash.program(4096, b"xyz")
        machine.power_on()
        on_disk = path.read_bytes()  # before close: the file holds it already
        assert on_disk[5:605] == b"abc" * 200 and on_disk[4096:4099] == b"xy\xff"
        assert machine.flash.read(0, SMALL.size) == on_disk
        assert machine.flash.hash(0, SMALL.size) == hashlib.sha256(on_disk).digest()
        machine.flash.erase(0, 4096)
        assert path.read_bytes()[:4096] == b"\xff" * 4096


def test_flash_file_of_another_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    path.write_bytes(b"\xff" * 4096)
    with pytest.raises(FlashError, match=r"dev\.flash.*4096 bytes"):
        SoftwareMachine(path, SMALL)


def test_otp_file_of_another_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    (tmp_path / "dev.flash.otp").write_bytes(bytes(12))
    with pytest.raises(OtpError, match="12 bytes"):
        SoftwareMachine(path, SMALL, otp_words=8)


def test_garbled_reset_cause_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    (tmp_path / "dev.flash.reset").write_text("BROWNOUT\n")
    with pytest.raises(HalError, match="BROWNOUT"):
        SoftwareMachine(path, SMALL)


def test_a_wrong_size_state_file_is_a_state_file_error(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    path.write_bytes(b"\xff" * 4096)
    with pytest.raises(FlashFileError) as flash_error:
        SoftwareMachine(path, SMALL)
    path.unlink()
    (tmp_path / "dev.flash.otp").write_bytes(bytes(12))
    with pytest.raises(OtpFileError) as otp_error:
        SoftwareMachine(path, SMALL, otp_words=8)
    assert isinstance(flash_error.value, StateFileError)
    assert isinstance(otp_error.value, StateFileError)


def test_without_create_only_an_existing_device_opens(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with pytest.raises(FlashFileError, match=r"dev\.flash: no flash file"):
        SoftwareMachine(path, SMALL, otp_words=8, create=False)
    assert list(tmp_path.iterdir()) == []
    with SoftwareMachine(path, SMALL, otp_words=8) as machine:
        machine.flash.program(0, b"kept")
    with SoftwareMachine(path, SMALL, otp_words=8, create=False) as again:
        assert again.flash.read(0, 4) == b"kept"


@pytest.mark.parametrize(
    ("suffix", "error", "message"),
    [("", FlashFileError, "holds 0 bytes"), (".otp", OtpFileError, "holds 0 bytes"),
     (".reset", StateFileError, "is not a reset cause")],
)
def test_without_create_an_empty_state_file_is_refused_and_left_as_it_is(
    tmp_path: Path, suffix: str, error: type[StateFileError], message: str
) -> None:
    path = tmp_path / "dev.flash"
    SoftwareMachine(path, SMALL, otp_words=8).close()
    (tmp_path / f"dev.flash{suffix}").write_bytes(b"")
    with pytest.raises(error, match=message):
        SoftwareMachine(path, SMALL, otp_words=8, create=False)
    assert (tmp_path / f"dev.flash{suffix}").stat().st_size == 0


@pytest.mark.parametrize(("suffix", "error"), [(".otp", OtpFileError),
                                               (".reset", StateFileError)])
def test_without_create_a_missing_sidecar_is_refused_and_not_created(
    tmp_path: Path, suffix: str, error: type[StateFileError]
) -> None:
    path = tmp_path / "dev.flash"
    SoftwareMachine(path, SMALL, otp_words=8).close()
    (tmp_path / f"dev.flash{suffix}").unlink()
    with pytest.raises(error, match=f"dev\\.flash\\{suffix}: no "):
        SoftwareMachine(path, SMALL, otp_words=8, create=False)
    assert not (tmp_path / f"dev.flash{suffix}").exists()


@pytest.mark.parametrize(
    "geometry",
    [
        FlashGeometry(size=4096 * 3 + 1, sector_size=4096, page_size=256),
        FlashGeometry(size=8192, sector_size=4096, page_size=300),
        FlashGeometry(size=0, sector_size=4096, page_size=256),
    ],
    ids=["size-not-sectors", "sector-not-pages", "empty"],
)
def test_bad_geometry_is_refused(geometry: FlashGeometry) -> None:
    with pytest.raises(FlashError, match="bad flash geometry"):
        SoftwareMachine(None, geometry)


def test_machine_without_a_path_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with SoftwareMachine(None, SMALL) as machine:
        machine.flash.program(0, b"ram only")
        machine.otp.blow(0, 1)
        machine.reset.request_reset()
        assert machine.flash.read(0, 8) == b"ram only"
    assert list(tmp_path.iterdir()) == []


# --- flash errors --------------------------------------------------------------------------


def test_flash_errors_name_the_offset(small: SoftwareMachine) -> None:
    small.flash.program(0x1234, b"\x00")
    with pytest.raises(FlashError, match="0x1234"):
        small.flash.program(0x1230, b"\xff\xff\xff\xff\x01")
    with pytest.raises(FlashError, match="0x1100"):
        small.flash.erase(0x1100, 4096)
    with pytest.raises(FlashError, match="0x10000"):
        small.flash.read(0x10000, 1)


def test_refused_program_writes_no_page(small: SoftwareMachine) -> None:
    small.flash.program(0x2000 + 600, b"\x00")
    before = small.faults.op_count
    with pytest.raises(FlashError, match=hex(0x2000 + 600)):
        small.flash.program(0x2000, bytes(600) + b"\x01")
    assert small.flash.read(0x2000, 600) == b"\xff" * 600
    assert small.faults.op_count == before


# --- memory map ----------------------------------------------------------------------------


def test_memory_map_names_every_device(small: SoftwareMachine) -> None:
    regions = {region.name: region for region in small.memory_map.regions()}
    assert set(regions) == {"flash", "otp", "reset_cause"}
    assert regions["flash"].base == FLASH_BASE and regions["flash"].size == SMALL.size
    assert small.memory_map.region("otp").size == 8 * 4


def test_memory_map_reads_reach_the_devices(small: SoftwareMachine) -> None:
    small.flash.program(0x40, b"mapped")
    small.otp.blow(1, 0x01020304)
    small.reset.request_reset(ResetCause.WATCHDOG)
    assert small.memory_map.read(FLASH_BASE + 0x40, 6) == b"mapped"
    assert small.memory_map.read(OTP_BASE + 4, 4) == bytes([4, 3, 2, 1])
    watchdog = int(ResetCause.WATCHDOG).to_bytes(4, "little")
    assert small.memory_map.read(RESET_CAUSE_BASE, 4) == watchdog


def test_memory_map_refuses_holes_crossings_and_overlaps(small: SoftwareMachine) -> None:
    with pytest.raises(HalError, match="nothing is mapped at 0x0"):
        small.memory_map.read(0, 4)
    with pytest.raises(HalError, match="past the end of 'otp'"):
        small.memory_map.read(OTP_BASE + 30, 4)
    with pytest.raises(HalError, match="overlaps 'flash'"):
        small.memory_map.add("shadow", FLASH_BASE + 16, 16, small.flash)
    with pytest.raises(HalError, match="already has"):
        small.memory_map.add("otp", 0, 4, small.otp)
    with pytest.raises(HalError, match="no region called 'rom'"):
        MemoryMap().region("rom")


# --- clock, console, watchdog --------------------------------------------------------------


def test_clock_starts_at_the_given_wall_time_and_can_be_set(tmp_path: Path) -> None:
    assert SoftwareMachine(None, SMALL).clock.wall() == DEFAULT_WALL_START.timestamp()
    start = datetime(2025, 5, 12, 12, 0, tzinfo=UTC)
    machine = SoftwareMachine(None, SMALL, wall_start=start)
    machine.clock.advance(24 * 3600)
    assert machine.clock.wall() == start.timestamp() + 24 * 3600
    assert machine.clock.monotonic() == 24 * 3600
    machine.clock.set_wall(0.0)
    assert machine.clock.wall() == 0.0 and machine.clock.monotonic() == 24 * 3600
    with pytest.raises(ValueError, match="timezone"):
        machine.clock.set_wall(datetime(2025, 1, 1))  # naive: refused


def test_a_kept_clock_moves_on_from_one_run_to_the_next(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with SoftwareMachine(path, SMALL, keep_clock=True) as machine:
        assert machine.clock.wall() == DEFAULT_WALL_START.timestamp()  # nothing saved yet
        machine.clock.advance(7200.5)
    assert (tmp_path / "dev.flash.clock").read_text() == "2025-02-01T02:00:00.500000+00:00\n"
    start = datetime(2025, 6, 1, tzinfo=UTC)
    with SoftwareMachine(path, SMALL, keep_clock=True, wall_start=start) as again:
        assert again.clock.wall() == DEFAULT_WALL_START.timestamp() + 7200.5  # saved time wins
        assert again.clock.monotonic() == 0.0
        again.clock.set_wall(start)
    with SoftwareMachine(path, SMALL, keep_clock=True) as third:
        assert third.clock.wall() == start.timestamp()
    with SoftwareMachine(path, SMALL) as unkept:  # without keep_clock: not read, not written
        assert unkept.clock.wall() == DEFAULT_WALL_START.timestamp()
        unkept.clock.advance(60)
    assert SoftwareMachine(path, SMALL, keep_clock=True).clock.wall() == start.timestamp()


def test_a_clock_is_kept_only_with_keep_clock_and_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    SoftwareMachine(None, SMALL, keep_clock=True).close()
    SoftwareMachine(tmp_path / "dev.flash", SMALL).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dev.flash", "dev.flash.boot", "dev.flash.otp", "dev.flash.reset"]


@pytest.mark.parametrize("text", ["", "yesterday", "2025-02-01T00:00:00", "\xff\xfe"])
def test_a_garbled_clock_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dev.flash"
    (tmp_path / "dev.flash.clock").write_bytes(text.encode("latin-1"))
    with pytest.raises(StateFileError, match=r"dev\.flash\.clock: .* time zone"):
        SoftwareMachine(path, SMALL, keep_clock=True)
    assert not path.exists()  # refused before any other file was made


def test_a_clock_past_year_9999_is_not_saved_but_the_files_are_closed(tmp_path: Path) -> None:
    machine = SoftwareMachine(tmp_path / "dev.flash", SMALL, keep_clock=True)
    machine.clock.set_wall(datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    machine.clock.advance(3600)
    with pytest.raises(StateFileError, match=r"outside years 1\.\.9999"):
        machine.close()
    assert not (tmp_path / "dev.flash.clock").exists()
    machine.close()  # already closed: nothing more to do


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_clock_refuses_to_move_back_or_to_infinity(seconds: float) -> None:
    with pytest.raises(ValueError):
        SoftwareMachine(None, SMALL).clock.advance(seconds)


def test_watchdog_bites_at_its_deadline_even_in_one_long_advance() -> None:
    machine = SoftwareMachine(None, SMALL)
    seen: list[float] = []
    machine.set_boot_hook(lambda m: seen.append(m.clock.monotonic()))
    machine.clock.advance(10.0)
    machine.watchdog.start(5.0)
    machine.clock.advance(3.0)
    machine.watchdog.kick()
    machine.clock.advance(3600.0)
    assert seen == [18.0]
    assert machine.clock.monotonic() == 3613.0
    assert not machine.watchdog.running


def test_boot_hook_that_sleeps_during_a_bite_does_not_turn_time_back() -> None:
    machine = SoftwareMachine(None, SMALL)
    machine.set_boot_hook(lambda m: m.clock.sleep(100.0))
    machine.watchdog.start(1.0)
    machine.clock.advance(2.0)
    assert machine.clock.monotonic() == 101.0
    assert machine.reset.last_cause() is ResetCause.WATCHDOG


def test_a_bite_ends_a_sleep_at_the_deadline_but_time_passing_goes_on() -> None:
    machine = SoftwareMachine(None, SMALL)
    machine.watchdog.start(2.0)
    machine.clock.sleep(10.0)  # the code that slept is reset at the bite
    assert machine.clock.monotonic() == 2.0
    assert machine.reset.last_cause() is ResetCause.WATCHDOG
    machine.watchdog.start(2.0)
    machine.clock.advance(10.0)  # the whole machine lives through the time
    assert machine.clock.monotonic() == 12.0


def test_a_bounded_console_keeps_its_last_lines_and_numbers_every_one() -> None:
    console = LineConsole(keep=3)
    for n in range(10):
        console.log(f"line {n}")
    assert console.total == 10 and console.lines() == ["line 7", "line 8", "line 9"]
    assert console.since(0) == (7, ["line 7", "line 8", "line 9"])
    assert console.since(9) == (9, ["line 9"]) and console.since(12) == (10, [])
    console.truncate(8)  # a snapshot taken at 8 lines being restored
    assert console.total == 8 and console.lines()[-1] == "line 7"
    console.truncate(2)  # back past the oldest kept line: none left, numbering goes on there
    assert console.total == 2 and console.lines() == []
    console.log("a\rb\nc")
    assert console.since(0) == (2, ["a\rb", "c"])


def test_watchdog_refuses_a_timeout_that_is_not_positive() -> None:
    with pytest.raises(HalError, match="positive"):
        SoftwareMachine(None, SMALL).watchdog.start(0)


def test_console_echoes_splits_and_logs_boot_banners() -> None:
    echoed: list[str] = []
    machine = SoftwareMachine(None, SMALL, echo=echoed.append)
    machine.console.log("one\ntwo")
    machine.reset.request_reset()
    expected = [
        "[hal] power on: last reset cause POWER_ON",
        "one",
        "two",
        "[hal] reset: cause SOFTWARE",
    ]
    assert machine.console.lines() == expected
    assert echoed == expected


# --- snapshots -----------------------------------------------------------------------------


def test_restore_puts_every_part_back(small: SoftwareMachine) -> None:
    small.flash.program(0, b"before")
    small.watchdog.start(50.0)
    snap = small.snapshot()
    lines = small.console.lines()
    small.flash.erase(0, 4096)
    small.flash.program(0x3000, b"after")
    small.otp.blow(2, 0xFF)
    small.clock.advance(10.0)
    small.reset.request_reset(ResetCause.SOFTWARE)
    small.restore(snap)
    assert small.flash.read(0, 6) == b"before"
    assert small.flash.read(0x3000, 5) == b"\xff" * 5
    assert small.otp.read_word(2) == 0
    assert small.reset.last_cause() is ResetCause.POWER_ON
    assert small.clock.monotonic() == 0.0
    assert small.console.lines() == lines
    assert small.watchdog.running
    small.clock.advance(49.0)
    assert small.reset.last_cause() is ResetCause.POWER_ON
    small.clock.advance(1.0)
    assert small.reset.last_cause() is ResetCause.WATCHDOG


def test_restoring_an_older_snapshot_copies_the_whole_flash(small: SoftwareMachine) -> None:
    first = small.snapshot()
    small.flash.program(0x100, b"A")
    second = small.snapshot()
    small.flash.program(0x5000, b"B")
    small.restore(first)
    assert small.flash.read(0x100, 1) == b"\xff" and small.flash.read(0x5000, 1) == b"\xff"
    small.restore(second)
    assert small.flash.read(0x100, 1) == b"A" and small.flash.read(0x5000, 1) == b"\xff"
    small.flash.program(0x5000, b"C")
    small.restore(second)
    assert small.flash.read(0x5000, 1) == b"\xff"
    assert small.flash.read(0, SMALL.size) == second.flash


def test_restore_reaches_the_flash_file(tmp_path: Path) -> None:
    path = tmp_path / "dev.flash"
    with SoftwareMachine(path, SMALL) as machine:
        snap = machine.snapshot()
        machine.flash.program(0, b"gone")
        machine.restore(snap)
    assert path.read_bytes() == b"\xff" * SMALL.size


def test_snapshot_of_a_machine_without_power_restores_it_without_power(
    small: SoftwareMachine,
) -> None:
    live = small.snapshot()
    small.power_off()
    dead = small.snapshot()
    small.restore(live)
    assert small.powered and small.flash.read(0, 1) == b"\xff"
    small.restore(dead)
    assert not small.powered
    with pytest.raises(PowerLoss):
        small.flash.read(0, 1)
