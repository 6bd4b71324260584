"""Reading an app's manifest (app_manifest.json) and an `--app` spec: what is accepted, and every
refusal with the words it says (the CLI turns these into one line and exit 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from firmware_model.cli.feeds import app_spec
from firmware_model.device.appmanifest import (
    MANIFEST_LIMIT,
    AppManifest,
    parse_app_manifest,
    read_app_manifest,
)
from firmware_model.errors import AppManifestError
from policy.errors import BadInput

SAMPLE = {  # the DeferredUpdate sample's manifest, as Microsoft ships it
    "SchemaVersion": 1, "Name": "DeferredUpdate",
    "ComponentId": "541fc56d-1da1-452b-b0d3-dcac70700f59", "EntryPoint": "/bin/app",
    "CmdArgs": [], "Capabilities": {"Gpio": ["$SAMPLE_BUTTON_1"],
                                    "SystemEventNotifications": True,
                                    "SoftwareUpdateDeferral": True},
    "ApplicationType": "Default", "MallocVersion": 2}


def test_microsofts_sample_manifest_has_both_capabilities() -> None:
    manifest = parse_app_manifest(json.dumps(SAMPLE).encode(), "sample")
    assert manifest == AppManifest("DeferredUpdate", True, True) == AppManifest.deferring(
        "DeferredUpdate")
    assert manifest.capabilities == ["SystemEventNotifications", "SoftwareUpdateDeferral"]


@pytest.mark.parametrize(("capabilities", "notifications", "deferral"), [
    ({}, False, False),
    ({"SystemEventNotifications": True}, True, False),
    ({"SoftwareUpdateDeferral": True}, False, True),
    ({"SystemEventNotifications": False, "SoftwareUpdateDeferral": False}, False, False),
])
def test_a_capability_missing_or_false_is_not_held(
    capabilities: dict[str, bool], notifications: bool, deferral: bool
) -> None:
    data = json.dumps({"Name": "x", "Capabilities": capabilities}).encode("utf-8-sig")
    manifest = parse_app_manifest(data, "m")
    assert (manifest.system_event_notifications, manifest.software_update_deferral) == (
        notifications, deferral)


@pytest.mark.parametrize(("data", "error"), [
    (b"{not json", "m: not a JSON app manifest"),
    (b"\xff\xfe", "m: not a JSON app manifest"),
    (b"[1, 2]", "m: an app manifest is a JSON object"),
    (b'{"Capabilities": {}}', "m: the app manifest has no Name"),
    (b'{"Name": "  "}', "m: the app manifest has no Name"),
    (b'{"Name": "a\\nb"}', 'm: the app\'s Name "a\\nb" holds control characters'),
    (b'{"Name": "x", "Capabilities": []}', "m: Capabilities must be a JSON object"),
    (b'{"Name": "x", "Capabilities": {"SoftwareUpdateDeferral": "yes"}}',
     'm: Capabilities.SoftwareUpdateDeferral must be true or false, not "yes"'),
    (b'{"Name": "x", "Capabilities": {"SystemEventNotifications": 1}}',
     "m: Capabilities.SystemEventNotifications must be true or false, not 1"),
])
def test_a_manifest_that_cannot_be_read_as_one_is_bad_input(data: bytes, error: str) -> None:
    with pytest.raises(AppManifestError) as raised:
        parse_app_manifest(data, "m")
    assert str(raised.value).startswith(error) and isinstance(raised.value, BadInput)


def test_a_file_larger_than_any_manifest_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * MANIFEST_LIMIT + b'{"Name": "x"}')
    with pytest.raises(AppManifestError, match="larger than 65536 bytes"):
        read_app_manifest(big)


def test_an_app_spec_names_a_manifest_and_the_apps_wishes(tmp_path: Path) -> None:
    folder = tmp_path / "a=b:c"  # a folder whose name holds ':' and '='
    folder.mkdir()
    path = folder / "app_manifest.json"
    path.write_text(json.dumps(SAMPLE))
    assert app_spec(str(path)).defers == ()
    spec = app_spec(f"{path}:defer=60,0,30:resume-after=1.5")
    assert (spec.manifest.name, spec.defers, spec.resume_after) == (
        "DeferredUpdate", (60, 0, 30), 1.5)


@pytest.mark.parametrize(("suffix", "error"), [
    (":defre=5", "unknown app option 'defre' (expected defer=MIN[,MIN...] or resume-after=MIN)"),
    (":defer=1.5", "'1.5' is not a whole number of minutes"),
    (":defer=60,,60", "'' is not a whole number of minutes"),
    (":defer=-5", "'-5': minutes must be 0..4294967295"),
    (":defer=4294967296", "minutes must be 0..4294967295"),
    (":defer=5:defer=6", "defer= given twice"),
    (":resume-after=soon", "'soon' is not a number of minutes"),
    (":resume-after=inf", "minutes must be >= 0"),
])
def test_a_bad_app_spec_says_what_is_wrong(tmp_path: Path, suffix: str, error: str) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"Name": "x"}')
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        app_spec(f"{path}{suffix}")
    assert error in str(raised.value)


@pytest.mark.parametrize(("spec", "error"), [
    (":defer=5", "name the app's manifest first"),
    ("{d}/absent.json", "absent.json: No such file or directory"),
    ("{d}", "not a regular file"),
])
def test_an_app_spec_without_a_readable_manifest_is_refused(
    tmp_path: Path, spec: str, error: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        app_spec(spec.format(d=tmp_path))
    assert error in str(raised.value)
