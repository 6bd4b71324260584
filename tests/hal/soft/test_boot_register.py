"""The software machine's boot count and uptime (hal.soft.reset.BootRegister, FLASH.boot): a
device that a new process opens is still powered, so both go on from where the last one left
them; the wall clock (`--at`) never moves the uptime."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hal.errors import PowerLoss, StateFileError
from hal.interfaces import FlashGeometry, ResetCause
from hal.soft.machine import SoftwareMachine

SMALL = FlashGeometry(size=64 * 1024, sector_size=4096, page_size=256)


def machine(path: Path | None, **options: object) -> SoftwareMachine:
    return SoftwareMachine(path, SMALL, keep_clock=path is not None, **options)  # type: ignore[arg-type]


def test_a_new_device_has_booted_once_and_been_up_no_time(tmp_path: Path) -> None:
    with machine(tmp_path / "dev.flash") as soft:
        assert (soft.reset.boot_count(), soft.reset.uptime()) == (1, 0.0)
    assert (tmp_path / "dev.flash.boot").read_text() == "boot_count=1 uptime_s=0.000000\n"


def test_every_reset_bite_and_power_loss_is_one_more_boot_and_restarts_the_uptime() -> None:
    with machine(None) as soft:
        soft.clock.advance(100.0)
        soft.reset.request_reset(ResetCause.SOFTWARE)
        assert (soft.reset.boot_count(), soft.reset.uptime()) == (2, 0.0)
        soft.watchdog.start(30.0)
        soft.clock.advance(50.0)  # bites at 30 s, then 20 s more pass
        assert (soft.reset.boot_count(), soft.reset.uptime()) == (3, 20.0)
        soft.power_off()
        soft.power_on()
        assert (soft.reset.boot_count(), soft.reset.uptime()) == (4, 0.0)


def test_boot_count_and_uptime_go_on_in_the_next_process(tmp_path: Path) -> None:
    flash = tmp_path / "dev.flash"
    with machine(flash) as soft:
        soft.reset.request_reset()
        soft.reset.request_reset()
        soft.clock.advance(3600.25)
    assert (tmp_path / "dev.flash.boot").read_text() == "boot_count=3 uptime_s=3600.250000\n"
    with machine(flash, create=False) as again:
        assert (again.reset.boot_count(), again.reset.uptime()) == (3, 3600.25)
        again.clock.advance(20 * 3600)
        assert again.reset.uptime() == 3600.25 + 20 * 3600


def test_setting_the_wall_clock_does_not_move_the_uptime(tmp_path: Path) -> None:
    flash = tmp_path / "dev.flash"
    with machine(flash) as soft:
        soft.clock.advance(90.0)
        soft.clock.set_wall(datetime(2024, 7, 10, tzinfo=UTC))  # back seven months
        assert soft.reset.uptime() == 90.0
    with machine(flash, create=False) as again:
        again.clock.set_wall(datetime(2030, 1, 1, tzinfo=UTC))  # what `--at` does
        assert (again.reset.boot_count(), again.reset.uptime()) == (1, 90.0)


def test_an_agent_starting_to_serve_the_device_is_a_power_up(tmp_path: Path) -> None:
    with machine(tmp_path / "dev.flash") as soft:
        soft.reset.request_reset()
        soft.clock.advance(10.0)
        soft.record_power_on()
        assert (soft.reset.boot_count(), soft.reset.uptime()) == (1, 0.0)


def test_a_snapshot_puts_back_the_boot_count_and_uptime() -> None:
    with machine(None) as soft:
        soft.clock.advance(5.0)
        snap = soft.snapshot()
        soft.reset.request_reset()
        soft.clock.advance(1.0)
        soft.restore(snap)
        assert (soft.reset.boot_count(), soft.reset.uptime()) == (1, 5.0)


def test_a_restored_snapshot_is_written_to_the_boot_file(tmp_path: Path) -> None:
    with machine(tmp_path / "dev.flash") as soft:
        snap = soft.snapshot()
        soft.reset.request_reset()
        assert (tmp_path / "dev.flash.boot").read_text().startswith("boot_count=2 ")
        soft.restore(snap)
        assert (tmp_path / "dev.flash.boot").read_text().startswith("boot_count=1 ")


def test_a_device_without_a_boot_file_has_booted_once(tmp_path: Path) -> None:
    flash = tmp_path / "dev.flash"
    machine(flash).close()
    (tmp_path / "dev.flash.boot").unlink()  # a device made before the file existed
    with machine(flash, create=False) as soft:
        assert (soft.reset.boot_count(), soft.reset.uptime()) == (1, 0.0)


@pytest.mark.parametrize("text", ["", "3", "boot_count=0 uptime_s=1.0",
                                  "boot_count=2 uptime_s=-1.0", "boot_count=2 uptime_s=nan",
                                  "\xff\xfe"])
def test_a_garbled_boot_file_is_refused_and_left_as_it_was(tmp_path: Path, text: str) -> None:
    flash = tmp_path / "dev.flash"
    machine(flash).close()
    (tmp_path / "dev.flash.boot").write_bytes(text.encode("latin-1"))
    with pytest.raises(StateFileError, match="boot_count=N uptime_s=S"):
        machine(flash, create=False)
    assert (tmp_path / "dev.flash.boot").read_bytes() == text.encode("latin-1")


def test_the_registers_need_power() -> None:
    with machine(None) as soft:
        soft.power_off()
        with pytest.raises(PowerLoss, match="boot count read"):
            soft.reset.boot_count()
        with pytest.raises(PowerLoss, match="uptime read"):
            soft.reset.uptime()
