"""`fwmodel run` and what `status` says of boots, uptime and the OS version, end to end: real
subprocesses on one device file, each attaching to the device as the last one left it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_model.device.flash_layout import FlashLayout
from firmware_model.trust.components import Component
from hal.soft.machine import SoftwareMachine
from policy.cli import ExitCode
from tests.e2e.test_fwmodel_cli import fwmodel, ok_json
from tests.firmware_model.devicelab import Lab

HOUR = 3600.0


def provisioned(lab: Lab, folder: Path) -> str:
    hal = f"fake:{folder / 'dev.flash'}"
    done = fwmodel("provision", "--images", str(lab.folder), hal=hal)
    assert done.returncode == 0, done.stderr
    return hal


def test_boots_and_uptime_carry_across_commands_and_the_os_version_never_changes(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, feed = provisioned(device_lab, tmp_path), str(device_lab.folder / "feeds")
    first = ok_json(fwmodel("status", "--json", hal=hal))
    assert (first["os_version"], first["boot_count"], first["uptime_s"]) == ("24.03", 1, 0.0)
    assert ok_json(fwmodel("update", "--feed", feed, "--defer", "60", "--json",
                           hal=hal))["outcome"] == "installed"
    after = ok_json(fwmodel("status", "--json", hal=hal))
    assert (after["os_version"], after["boot_count"], after["uptime_s"]) == ("24.03", 2, 0.0)
    assert after["device_time"] == "2025-02-01T01:00:20Z"  # the deferral passed, then the reset
    run = ok_json(fwmodel("run", "--feed", feed, "--hours", "25", "--json", hal=hal))
    assert [(c["time"], c["reason"], c["outcome"], c["boot_count"]) for c in run["checks"]] == [
        ("2025-02-01T01:00:20Z", "first-connection", "no-update", 2),
        ("2025-02-01T21:00:20Z", "interval", "no-update", 2)]
    assert (run["boot_count"], run["uptime_s"], run["os_version"]) == (2, 25 * HOUR, "24.03")
    later = ok_json(fwmodel("status", "--json", hal=hal))
    assert (later["boot_count"], later["uptime_s"]) == (2, 25 * HOUR)
    moved = ok_json(fwmodel("--at", "2024-07-10T00:00:00Z", "status", "--json", hal=hal))
    assert moved["device_time"] == "2024-07-10T00:00:00Z" and moved["uptime_s"] == 25 * HOUR


def test_run_prints_each_check_with_its_device_time_and_outcome(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal = provisioned(device_lab, tmp_path)
    done = fwmodel("run", "--feed", str(device_lab.folder / "feeds"), "--hours", "45",
                   "--defer", "90", hal=hal)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("2025-02-01T00:00:00Z boot 1, up 0 s: check (first connection "
                               "since the device booted): installed keystore-2025-02")
    assert "install deferred by 90 minutes; the device reset (cause SOFTWARE)" in lines[0]
    assert lines[1:4] == [
        "2025-02-01T01:30:20Z boot 2, up 0 s: check (first connection since the device "
        "booted): no update available",
        "2025-02-01T21:30:20Z boot 2, up 20 h 0 min 0 s: check (20 h after the previous "
        "check): no update available",
        "2025-02-02T17:30:20Z boot 2, up 1 d 16 h 0 min 0 s: check (20 h after the previous "
        "check): no update available"]
    assert lines[4].startswith("ran 45 h of device time, 2025-02-01T00:00:00Z to "
                               "2025-02-02T21:00:00Z: 4 checks")
    assert lines[5] == "now: OS version 24.03, boot 2 since power-up, up 1 d 19 h 29 min 40 s"


def test_a_run_whose_feed_serves_nothing_exits_3_after_every_check_failed(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal = provisioned(device_lab, tmp_path)
    (tmp_path / "empty" / "Retail").mkdir(parents=True)
    done = fwmodel("run", "--feed", str(tmp_path / "empty"), "--hours", "20", hal=hal)
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    checks = done.stdout.splitlines()[:2]
    assert [line.split(": check ")[0] for line in checks] == [
        "2025-02-01T00:00:00Z boot 1, up 0 s", "2025-02-01T20:00:00Z boot 1, up 20 h 0 min 0 s"]
    assert all("failed (FeedError)" in line for line in checks)


def test_status_json_keeps_last_boot_when_the_device_does_not_boot(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal = provisioned(device_lab, tmp_path)
    with SoftwareMachine(tmp_path / "dev.flash", create=False) as machine:  # the store rots
        start = FlashLayout.for_geometry(machine.flash.geometry).slot(Component.STORE, 0).offset
        head = machine.flash.read(start, 256)
        at = next(i for i, byte in enumerate(head) if byte)  # NOR: clear one bit that is set
        machine.flash.program(start + at, bytes([head[at] & (head[at] - 1)]))
    done = fwmodel("status", "--json", hal=hal)
    assert done.returncode == ExitCode.REFUSED, done.stderr
    status = json.loads(done.stdout)
    assert status["booted"] is False and status["boot_count"] == 1
    last = status["last_boot"]
    assert (last["used"], last["cause"], last["record_sequence"]) == ("none", "POWER_ON", 1)
    assert last["problem"].startswith("BootError: record 1: active set fails")
    assert last["problem"].removeprefix("BootError: ") == status["problem"]


@pytest.mark.parametrize(("args", "text"), [
    (["--hours", "-1"], "hours must be 0..100000"),
    (["--hours", "30", "--interval-hours", "0"], "more than 0 hours"),
    (["--hours", "100000", "--interval-hours", "0.001"], "at most 10,000 checks a run"),
])
def test_a_run_that_cannot_be_run_is_bad_usage_and_changes_nothing(
    device_lab: Lab, tmp_path: Path, args: list[str], text: str
) -> None:
    hal = provisioned(device_lab, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    done = fwmodel("run", "--feed", str(device_lab.folder / "feeds"), *args, hal=hal)
    assert done.returncode == ExitCode.BAD_INPUT and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and text in done.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
