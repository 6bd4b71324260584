"""`fwmodel update --app MANIFEST[:defer=...][:resume-after=...]` end to end: apps described by
their own app_manifest.json files, told of the update and deferring it as their capabilities let
them; bad manifests and specs refused in one line with the device untouched (every refusal of
a manifest or a spec is in tests/firmware_model/device/test_appmanifest.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.e2e.test_fwmodel_cli import fwmodel, ok_json, one_line_error
from tests.firmware_model.devicelab import Lab


def manifest(folder: Path, name: str, **capabilities: object) -> Path:
    """An app_manifest.json like Microsoft's samples, with these Capabilities added."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps({
        "SchemaVersion": 1, "Name": name, "ComponentId": "541fc56d-1da1-452b-b0d3-dcac70700f59",
        "EntryPoint": "/bin/app", "CmdArgs": [],
        "Capabilities": {"AllowedConnections": ["example.com"], **capabilities},
        "ApplicationType": "Default"}, indent=2))
    return path


BOTH = {"SystemEventNotifications": True, "SoftwareUpdateDeferral": True}


def provisioned(device_lab: Lab, folder: Path) -> str:
    hal = f"fake:{folder / 'dev.flash'}"
    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    return hal


def test_two_apps_with_their_own_manifests_defer_as_documented(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal = provisioned(device_lab, tmp_path)
    a = manifest(tmp_path, "Thermostat", **BOTH)
    b = manifest(tmp_path, "Logger", **BOTH)
    told = manifest(tmp_path, "Display", SystemEventNotifications=True)
    deaf = manifest(tmp_path, "Pump", SoftwareUpdateDeferral=True)
    update = ok_json(fwmodel(
        "update", "--feed", str(device_lab.folder / "feeds"), "--json",
        "--app", f"{a}:defer=60,60", "--app", f"{b}:resume-after=0",
        "--app", f"{told}:defer=30", "--app", f"{deaf}:defer=30", hal=hal))
    assert update["outcome"] == "installed" and update["deferred_minutes"] == 120
    deferral = update["deferral"]
    assert isinstance(deferral, dict) and deferral["allowance_minutes"] == 1440
    # Final 10 s after the third Pending (at 120 minutes), the reboot 10 s after Final
    assert deferral["final_at"] - deferral["learned_at"] == 120 * 60 + 10
    assert deferral["install_at"] - deferral["final_at"] == 10
    apps = {app["name"]: app for app in update["apps"]}  # type: ignore[union-attr]
    thermostat, logger, display, pump = (apps[n] for n in ("Thermostat", "Logger", "Display",
                                                           "Pump"))
    assert [(c["call"], c["granted_minutes"]) for c in thermostat["calls"]] == [
        ("DeferEvent", 60), ("DeferEvent", 60)]
    assert [(c["call"], c["errno"]) for c in logger["calls"]] == [("ResumeEvent", "EINVAL")]
    assert [(c["call"], c["errno"]) for c in display["calls"]] == [("DeferEvent", "EACCES")]
    statuses = [(e["status"], e["time"]) for e in display["events"]
                if e["event"] == "UpdateReadyForInstall"]
    assert statuses == [
        ("Pending", "2025-02-01T00:00:00Z"), ("Deferred", "2025-02-01T00:00:00Z"),
        ("Pending", "2025-02-01T01:00:00Z"), ("Deferred", "2025-02-01T01:00:00Z"),
        ("Pending", "2025-02-01T02:00:00Z"), ("Final", "2025-02-01T02:00:10Z")]
    assert pump["registered"] is False and pump["events"] == []
    assert pump["registration"]["errno"] == "EACCES"
    assert all(e["status"] != "Complete" for e in update["events"])  # type: ignore[union-attr]
    status = ok_json(fwmodel("status", "--json", hal=hal))
    assert status["device_time"] == "2025-02-01T02:00:20Z"


def test_the_update_text_lists_each_apps_events_and_calls(device_lab: Lab, tmp_path: Path) -> None:
    hal = provisioned(device_lab, tmp_path)
    a = manifest(tmp_path, "Thermostat", **BOTH)
    deaf = manifest(tmp_path, "Pump")
    run = fwmodel("update", "--feed", str(device_lab.folder / "feeds"),
                  "--app", f"{a}:defer=2000", "--app", str(deaf), hal=hal)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "app Thermostat [SystemEventNotifications, SoftwareUpdateDeferral]:" in lines
    assert ("  2025-02-01T00:00:00Z DeferEvent 2000 min: granted 1440 min (truncated to the "
            "1440 minutes left)") in lines
    assert "  2025-02-02T00:00:00Z told UpdateReadyForInstall (Final)" in lines
    assert ("app Pump [no SysEvent capability]: told nothing (2025-02-01T00:00:00Z "
            "RegisterForEventNotifications: refused, EACCES (no SystemEventNotifications "
            "capability))") in lines
    assert ("install deferred by 1440 minutes in all (allowance 1440 minutes from "
            "2025-02-01T00:00:00Z, when the device learned of the update)") in lines
    assert "Final at 2025-02-02T00:00:00Z; install at 2025-02-02T00:00:10Z" in lines


def test_update_help_documents_apps_and_the_rules() -> None:
    text = " ".join(fwmodel("update", "--help").stdout.split())
    for words in ("--app MANIFEST[:defer=MIN[,MIN...]][:resume-after=MIN]",
                  '"SystemEventNotifications": true', '"SoftwareUpdateDeferral": true', "EACCES",
                  "EINVAL", "1440 minutes in all", "10 seconds", "no Complete"):
        assert words in text, words


@pytest.fixture(scope="module")
def bad_input_device(device_lab: Lab, tmp_path_factory: pytest.TempPathFactory
                     ) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("bad-apps")
    return provisioned(device_lab, folder), folder


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("dev.flash*"))}


@pytest.mark.parametrize(("content", "spec", "error"), [
    (None, "{m}", "No such file or directory"),
    ('{"Name": "x", "Capabilities": {"SoftwareUpdateDeferral": "yes"}}', "{m}",
     'Capabilities.SoftwareUpdateDeferral must be true or false, not "yes"'),
    ('{"Name": "x"}', "{m}:defre=5", "unknown app option 'defre'"),
])
def test_a_bad_app_is_one_line_exit_2_and_the_device_untouched(
    bad_input_device: tuple[str, Path], tmp_path: Path, content: str | None, spec: str,
    error: str,
) -> None:
    hal, folder = bad_input_device
    path = tmp_path / "app_manifest.json"
    if content is not None:
        path.write_text(content)
    before = _files(folder)
    one_line_error(fwmodel("update", "--feed", str(tmp_path), "--app", spec.format(m=path),
                           hal=hal), 2, error)
    assert _files(folder) == before


def test_two_apps_of_one_name_and_a_fractional_defer_are_refused(
    bad_input_device: tuple[str, Path], tmp_path: Path, device_lab: Lab
) -> None:
    hal, folder = bad_input_device
    before = _files(folder)
    path = manifest(tmp_path, "Same", **BOTH)
    feed = str(device_lab.folder / "feeds")
    one_line_error(fwmodel("update", "--feed", feed, "--app", str(path), "--app", str(path),
                           hal=hal), 2, "two apps are named 'Same'")
    one_line_error(fwmodel("update", "--feed", feed, "--defer", "1.5", hal=hal), 2,
                   "'1.5' is not a whole number of minutes")
    assert _files(folder) == before
