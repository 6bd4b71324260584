"""What `status` says of the device beyond its slots: the OS version (a constant of the model:
no update installs an OS image), the boot count and the uptime from the HAL, and the last boot's
report, kept when the boot fails (docs/device.md, "OS version, boot count and uptime")."""

from __future__ import annotations

import pytest
from packaging.version import Version

from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.model import Device
from firmware_model.device.status import OS_VERSION, device_status
from firmware_model.errors import BootError, NotProvisionedError
from firmware_model.trust.components import Component
from hal.interfaces import ResetCause
from tests.firmware_model.device.test_device_boot import corrupt, hook_before_boot
from tests.firmware_model.devicelab import Lab, small_device


def test_the_os_version_is_azure_sphere_24_03_and_parses_as_a_version(device: Device) -> None:
    status = device_status(device)
    assert status["os_version"] == OS_VERSION == "24.03"
    assert Version(str(status["os_version"])) == Version("24.3")  # what the REST client parses


def test_status_reports_the_boot_count_and_the_uptime_on_the_monotonic_clock(
    device_lab: Lab,
) -> None:
    device = small_device(device_lab)
    assert (device_status(device)["boot_count"], device_status(device)["uptime_s"]) == (1, 0.0)
    device.machine.clock.sleep(2 * 3600 + 0.25)
    assert device_status(device)["uptime_s"] == 7200.25


def test_a_store_update_reboots_the_boot_count_rises_and_the_os_version_stays(
    device_lab: Lab,
) -> None:
    device = small_device(device_lab)
    device.machine.clock.sleep(5 * 3600)
    before = device_status(device)
    result = Updater(device).check_for_update(device_lab.feed())
    after = device_status(device)
    assert result.outcome is UpdateOutcome.INSTALLED
    assert after["slots"]["store"]["image"]["name"] == "certstore-2025-02"  # type: ignore[index]
    assert (before["boot_count"], after["boot_count"]) == (1, 2)
    assert before["uptime_s"] == 5 * 3600 and after["uptime_s"] == 0.0
    assert after["os_version"] == before["os_version"] == OS_VERSION
    assert after["last_reset_cause"] == "SOFTWARE"


def test_a_device_whose_boot_fails_still_reports_that_boot_and_why(device_lab: Lab) -> None:
    device = small_device(device_lab)

    def break_both() -> None:
        corrupt(device, Component.STORE)
        corrupt(device, Component.KEYSTORE, "fallback")

    hook_before_boot(device, break_both)
    with pytest.raises(BootError):
        Updater(device).check_for_update(device_lab.feed())
    status = device_status(device)
    assert status["booted"] is False and status["boot_count"] == 2
    last = status["last_boot"]
    assert isinstance(last, dict)
    assert (last["cause"], last["used"], last["record_sequence"]) == ("SOFTWARE", "none", 2)
    assert str(last["problem"]).startswith("BootError: record 2: active set fails")
    assert "fallback fails" in str(last["problem"]) and last["time"] == status["device_time"]


def test_an_unprovisioned_device_reports_the_boot_that_found_nothing(device_lab: Lab) -> None:
    device = small_device()
    with pytest.raises(NotProvisionedError):
        device.start()
    status = device_status(device)
    last = status["last_boot"]
    assert status["provisioned"] is False and status["boot_count"] == 1
    assert isinstance(last, dict) and (last["used"], last["record_sequence"]) == ("none", None)
    assert str(last["problem"]).startswith("NotProvisionedError") and last["cause"] == (
        ResetCause.POWER_ON.name)


def test_a_time_in_year_one_is_written_with_four_digits_of_year() -> None:
    from datetime import UTC, datetime

    from firmware_model.device.tls import iso

    assert iso(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert iso(datetime(2025, 2, 26, 12, tzinfo=UTC)) == "2025-02-26T12:00:00Z"
