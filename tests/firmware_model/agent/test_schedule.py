"""The update schedule (firmware_model.agent.schedule): Microsoft's "when they first connect to
the internet after powering on or after the Reset button is pressed. Thereafter, checks occur at
regular intervals (currently 20 hours)", run on the device's virtual clock."""

from __future__ import annotations

import pytest

from firmware_model.agent.schedule import (
    MAX_RUN_HOURS,
    MAX_SCHEDULED_CHECKS,
    Reason,
    RunReport,
    run_schedule,
)
from firmware_model.agent.updater import CHECK_INTERVAL_HOURS, AgentSettings, Updater
from firmware_model.device.deferral import DeferringApp
from firmware_model.device.model import Device
from firmware_model.errors import BootError, UntrustedSignerError
from firmware_model.trust.components import Component
from tests.firmware_model.device.test_device_boot import corrupt, hook_before_boot
from tests.firmware_model.devicelab import Lab, feed_of, small_device, stranger

HOUR = 3600.0


#: Hours an install takes on the device's clock beyond any deferral: Pending's and Final's
#: 10-second warnings (SysEvent).
WARNINGS = 20 / 3600


def hours_into(report: RunReport) -> list[float]:
    """When each check of `report` was, in hours after the run started."""
    return [(check.at - report.started) / HOUR for check in report.checks]


def up_to_date(lab: Lab) -> Device:
    """A device that installed what the lab's Retail feed offers: nothing left to install."""
    device = small_device(lab)
    Updater(device).check_for_update(lab.feed())
    return device


def test_the_documented_interval_is_20_hours() -> None:
    assert CHECK_INTERVAL_HOURS == AgentSettings().check_interval_hours == 20.0


def test_a_device_checks_at_its_first_connection_then_every_20_hours(device_lab: Lab) -> None:
    device = up_to_date(device_lab)
    report = run_schedule(Updater(device), device_lab.feed(), hours=45)
    assert hours_into(report) == [0.0, 20.0, 40.0]
    assert [c.reason for c in report.checks] == [Reason.FIRST_CONNECTION, Reason.INTERVAL,
                                                 Reason.INTERVAL]
    assert [c.outcome for c in report.checks] == ["no-update"] * 3
    assert report.ended - report.started == 45 * HOUR and report.first_failure is None


def test_a_check_due_at_the_end_of_the_run_is_made(device_lab: Lab) -> None:
    device = up_to_date(device_lab)
    assert hours_into(run_schedule(Updater(device), device_lab.feed(), hours=40)) == [
        0.0, 20.0, 40.0]
    assert hours_into(run_schedule(Updater(device), device_lab.feed(), hours=39.99)) == [
        0.0, 20.0]
    assert hours_into(run_schedule(Updater(device), device_lab.feed(), hours=0)) == [0.0]


def test_an_installed_update_resets_the_device_and_it_checks_again_at_once(
    device_lab: Lab,
) -> None:
    device = small_device(device_lab)
    device.machine.clock.sleep(3 * HOUR)
    report = run_schedule(Updater(device), device_lab.feed(), hours=45)
    assert [c.outcome for c in report.checks] == ["installed", "no-update", "no-update",
                                                  "no-update"]
    assert hours_into(report) == pytest.approx([0.0, WARNINGS, 20 + WARNINGS, 40 + WARNINGS])
    assert [c.boot_count for c in report.checks] == [1, 2, 2, 2]
    assert [c.uptime_s for c in report.checks] == [3 * HOUR, 0.0, 20 * HOUR, 40 * HOUR]
    assert [c.reason for c in report.checks][:3] == [
        Reason.FIRST_CONNECTION, Reason.FIRST_CONNECTION, Reason.INTERVAL]


def test_a_deferred_install_moves_the_following_checks_by_the_deferral(device_lab: Lab) -> None:
    device = small_device(device_lab)
    device.bus.register(DeferringApp(90))
    report = run_schedule(Updater(device), device_lab.feed(), hours=45)
    assert hours_into(report) == pytest.approx(
        [0.0, 1.5 + WARNINGS, 21.5 + WARNINGS, 41.5 + WARNINGS])
    result = report.checks[0].result
    assert result is not None and result.deferred_minutes == 90


def test_a_refused_check_is_recorded_and_the_next_comes_20_hours_later(
    device_lab: Lab,
) -> None:
    device = small_device(device_lab)
    image = device_lab.image("certstore-2025-02")
    forged = feed_of(device_lab.manifest([image], signer=stranger()), [image])
    report = run_schedule(Updater(device), forged, hours=45)
    assert hours_into(report) == [0.0, 20.0, 40.0]
    assert all(isinstance(c.error, UntrustedSignerError) for c in report.checks)
    assert isinstance(report.first_failure, UntrustedSignerError)
    assert device.running.loaded.store_image.name == "certstore-2024"


def test_an_update_that_failed_its_trial_is_tried_again_only_at_the_next_interval(
    device_lab: Lab,
) -> None:
    device = small_device(device_lab)
    hook_before_boot(device, lambda: corrupt(device, Component.STORE))  # the first reset only
    report = run_schedule(Updater(device), device_lab.feed(), hours=45)
    assert [c.outcome for c in report.checks] == ["reverted", "installed", "no-update",
                                                  "no-update"]
    assert hours_into(report) == pytest.approx([0.0, 20.0 + WARNINGS, 20 + 2 * WARNINGS,
                                                40 + 2 * WARNINGS])
    assert [c.boot_count for c in report.checks] == [1, 2, 3, 3]


def test_a_device_that_does_not_come_back_from_the_reset_ends_the_run(device_lab: Lab) -> None:
    device = small_device(device_lab)

    def break_both() -> None:
        corrupt(device, Component.STORE)
        corrupt(device, Component.KEYSTORE, "fallback")

    hook_before_boot(device, break_both)
    report = run_schedule(Updater(device), device_lab.feed(), hours=45)
    assert len(report.checks) == 1 and isinstance(report.halted, BootError)
    # the run stops there: no more device time than the install's warnings
    assert report.ended == report.started + WARNINGS * HOUR


def test_an_older_24_hour_interval_is_a_setting(device_lab: Lab) -> None:
    device = up_to_date(device_lab)
    report = run_schedule(Updater(device, AgentSettings(check_interval_hours=24)),
                          device_lab.feed(), hours=50)
    assert hours_into(report) == [0.0, 24.0, 48.0]


@pytest.mark.parametrize("hours", [-1.0, MAX_RUN_HOURS + 1, float("nan")])
def test_a_run_of_no_sensible_length_is_refused(device_lab: Lab, hours: float) -> None:
    with pytest.raises(ValueError, match="hours"):
        run_schedule(Updater(small_device(device_lab)), device_lab.feed(), hours)


def test_a_run_of_more_than_10000_checks_is_refused_before_it_starts(device_lab: Lab) -> None:
    device = small_device(device_lab)
    tiny = Updater(device, AgentSettings(check_interval_hours=0.001))
    with pytest.raises(ValueError, match="at most 10,000 checks"):
        run_schedule(tiny, device_lab.feed(), hours=MAX_SCHEDULED_CHECKS * 0.001 + 1)
    assert device.machine.clock.monotonic() == 0.0 and device.bus.sent == []
