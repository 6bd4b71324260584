"""`fwmodel` end to end, as a user runs it: real subprocesses on a flash file kept across runs,
a real pty for the emulator backend, real TLS and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware_model.device.provision import KEYSTORE_FILE, ROOT_HASH_FILE, STORE_FILE
from hal.soft.machine import SoftwareMachine
from policy.cli import MEANINGS, ExitCode
from tests.firmware_model.devicelab import Lab
from tests.firmware_model.tlslab import Authority, feed_server, server_context, tls_server

TIMEOUT = 60


def fwmodel(*args: str, hal: str | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "firmware_model"]
    if hal is not None:
        command += ["--hal", hal]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          check=False, cwd=cwd)


def fwmodel_to_a_gone_reader(*args: str, hal: str) -> subprocess.CompletedProcess[str]:
    """fwmodel with stdout a pipe whose reader has already gone (as `| head` leaves it)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "firmware_model", "--hal", hal, *args],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT,
                              check=False)
    finally:
        os.close(write)


def ok_json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fwmodel: error: ") and text in lines[0]
    assert "Traceback" not in result.stderr


def test_help_documents_the_exit_codes() -> None:
    result = fwmodel("--help")
    assert result.returncode == 0
    for code in (ExitCode.OK, ExitCode.REFUSED, ExitCode.BAD_INPUT, ExitCode.UNAVAILABLE,
                 ExitCode.HARDWARE, ExitCode.INTERRUPTED):
        assert f"  {int(code):<4} {MEANINGS[code]}" in result.stdout
    connect = fwmodel("connect", "--help")
    assert connect.returncode == 0
    assert "1: it failed; 2: HOST:PORT is not an address" in " ".join(connect.stdout.split())


def test_a_device_kept_in_a_flash_file_across_runs(device_lab: Lab, tmp_path: Path) -> None:
    hal = f"fake:{tmp_path / 'dev.flash'}"
    SoftwareMachine(tmp_path / "dev.flash").close()  # a blank device: erased flash, no fuses
    blank = fwmodel("status", "--json", hal=hal)  # it says why it does not boot, then exits 2
    assert blank.returncode == 2 and json.loads(blank.stdout)["provisioned"] is False
    one_line_error(fwmodel("update", "--feed", str(device_lab.folder / "feeds"), hal=hal), 2,
                   "not provisioned")
    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    one_line_error(fwmodel("provision", "--images", str(device_lab.folder), hal=hal), 2,
                   "provisioned already")
    before = ok_json(fwmodel("status", "--json", hal=hal))
    assert before["security_versions"] == {"keystore": {"fused": 1, "running": 1},
                                           "store": {"fused": 1, "running": 1}}
    update = ok_json(fwmodel("update", "--feed", str(device_lab.folder / "feeds"), "--channel",
                             "RetailEval", "--defer", "2000", "--json", hal=hal))
    assert (update["outcome"], update["deferred_minutes"]) == ("installed", 1440)
    after = ok_json(fwmodel("status", "--json", hal=hal))
    assert after["last_reset_cause"] == "SOFTWARE"
    assert after["security_versions"] == {"keystore": {"fused": 1, "running": 1},
                                          "store": {"fused": 2, "running": 2}}
    store = after["store"]
    assert isinstance(store, dict)
    assert [c["name"] for c in store["certificates"]] == [
        "DigiCert_Global_Root_G2", "Microsoft_RSA_Root_Certificate_Authority_2017"]
    again = fwmodel("update", "--feed", str(device_lab.feed_dir("Retail")), hal=hal)
    assert again.returncode == 0 and "outcome: no-update" in again.stdout


def test_only_provision_creates_a_device(device_lab: Lab, tmp_path: Path) -> None:
    flash = tmp_path / "typo.flash"
    feed = str(device_lab.folder / "feeds")
    for command in (["status"], ["update", "--feed", feed], ["connect", "127.0.0.1:443"],
                    ["revoke", "store", "2"]):
        one_line_error(fwmodel(*command, hal=f"fake:{flash}"), 2,
                       f"no device at {flash} (run provision first)")
        one_line_error(fwmodel(*command, cwd=tmp_path), 2,  # the default --hal
                       "no device at device.flash (run provision first)")
    one_line_error(fwmodel("status", hal=f"emulator:{flash}"), 2, f"no device at {flash}")
    assert list(tmp_path.iterdir()) == []
    assert fwmodel("provision", "--images", str(device_lab.folder), cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "device.flash", "device.flash.boot", "device.flash.clock", "device.flash.otp",
        "device.flash.reset"]
    assert ok_json(fwmodel("status", "--json", cwd=tmp_path))["provisioned"] is True


def test_a_refused_provision_leaves_no_new_files_behind(device_lab: Lab, tmp_path: Path) -> None:
    hal = f"fake:{tmp_path / 'dev' / 'new.flash'}"
    (tmp_path / "dev").mkdir()
    other_root = "00" * 32
    one_line_error(fwmodel("provision", "--images", str(device_lab.folder), "--root-hash",
                           other_root, hal=hal), 1, "keystore")
    one_line_error(fwmodel("provision", "--images", str(tmp_path / "no-build"), hal=hal), 2,
                   "root.hash")
    one_line_error(fwmodel("provision", "--images", str(device_lab.folder), "--root-hash", "zz",
                           hal=hal), 2, "not hex")
    assert list((tmp_path / "dev").iterdir()) == []


@pytest.mark.parametrize(("suffix", "size"), [("", 0), ("", 4096), (".otp", 0), (".otp", 12),
                                              (".reset", 0)])
def test_a_device_file_of_the_wrong_size_is_bad_input(
    device_lab: Lab, tmp_path: Path, suffix: str, size: int
) -> None:
    flash = tmp_path / "dev.flash"
    SoftwareMachine(flash).close()
    wrong = tmp_path / f"dev.flash{suffix}"
    wrong.write_bytes(b"\xff" * size)
    for command in (["status"], ["provision", "--images", str(device_lab.folder)]):
        one_line_error(fwmodel(*command, hal=f"fake:{flash}"), 2, str(wrong))
    assert wrong.stat().st_size == size  # neither filled in nor removed


def test_provision_takes_the_root_hash_and_images_named_on_the_command_line(
    device_lab: Lab, tmp_path: Path
) -> None:
    work, empty = tmp_path / "work", tmp_path / "no-build"
    work.mkdir()
    empty.mkdir()
    shutil.copy(device_lab.folder / KEYSTORE_FILE, work / "ks.imagepackage")
    shutil.copy(device_lab.folder / STORE_FILE, work / "st.imagepackage")
    root_hash = (device_lab.folder / ROOT_HASH_FILE).read_text().strip()
    named = ("--keystore", "ks.imagepackage", "--store", "st.imagepackage")  # relative to cwd
    one_line_error(fwmodel("provision", "--images", str(empty), *named, hal="fake:dev.flash",
                           cwd=work), 2, str(empty / ROOT_HASH_FILE))
    done = fwmodel("provision", "--images", str(empty), "--root-hash", root_hash, *named,
                   hal="fake:dev.flash", cwd=work)
    assert done.returncode == 0 and "keystore keystore-2024, store certstore-2024" in done.stdout


def test_the_device_clock_goes_on_from_one_run_to_the_next(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal = f"fake:{tmp_path / 'dev.flash'}"

    def device_time() -> object:
        return ok_json(fwmodel("status", "--json", hal=hal))["device_time"]

    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    assert device_time() == "2025-02-01T00:00:00Z"
    update = ok_json(fwmodel("update", "--feed", str(device_lab.folder / "feeds"), "--defer",
                             "120", "--json", hal=hal))
    # 120 minutes deferred, Pending again, Final 10 s later, the reboot 10 s after Final
    events = update["events"]
    assert isinstance(events, list) and events[-1]["time"] == "2025-02-01T02:00:10Z"
    assert events[-1]["status"] == "Final"
    assert device_time() == "2025-02-01T02:00:20Z"
    assert (tmp_path / "dev.flash.clock").read_text().startswith("2025-02-01T02:00:20")
    moved = ok_json(fwmodel("--at", "2025-06-01T12:00:00Z", "status", "--json", hal=hal))
    assert moved["device_time"] == "2025-06-01T12:00:00Z"
    assert device_time() == "2025-06-01T12:00:00Z"


def test_a_reader_that_goes_away_does_not_turn_success_into_an_error(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal = f"fake:{tmp_path / 'dev.flash'}"
    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    for command in (["update", "--feed", str(device_lab.folder / "feeds"), "--json"],
                    ["status"], ["sweep", "--images", str(device_lab.folder), "--modes", "torn"]):
        result = fwmodel_to_a_gone_reader(*command, hal=hal)
        assert (result.returncode, result.stderr) == (0, ""), command
    versions = ok_json(fwmodel("status", "--json", hal=hal))["security_versions"]
    assert isinstance(versions, dict) and versions["store"] == {"fused": 2, "running": 2}
    empty = tmp_path / "empty-channel" / "Retail"
    empty.mkdir(parents=True)
    one_line_error(fwmodel_to_a_gone_reader("update", "--feed", str(empty), hal=hal), 3,
                   "has no manifest.imagepackage")


def test_errors_are_one_line_with_the_exit_code_of_their_kind(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal = f"fake:{tmp_path / 'dev.flash'}"
    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    tampered = tmp_path / "tampered" / "Retail"
    tampered.mkdir(parents=True)
    for source in device_lab.feed_dir().iterdir():
        data = bytearray(source.read_bytes())
        if len(data) > 4000:
            data[200] ^= 1
        (tampered / source.name).write_bytes(bytes(data))
    before = ok_json(fwmodel("status", "--json", hal=hal))
    one_line_error(fwmodel("update", "--feed", str(tampered), hal=hal), 1,
                   "not the one the manifest lists (its SHA-256 differs)")
    one_line_error(fwmodel("update", "--feed", str(tmp_path / "nowhere"), hal=hal), 2,
                   "no feed at")
    one_line_error(fwmodel("update", "--feed", "ftp://127.0.0.1/feeds", hal=hal), 2,
                   "unsupported scheme")
    one_line_error(fwmodel("connect", "not-an-address", hal=hal), 2, "is not HOST:PORT")
    for port in ("99999", "0"):
        one_line_error(fwmodel("connect", f"127.0.0.1:{port}", hal=hal), 2,
                       "the port must be 1..65535")
    missing_ca = tmp_path / "missing-ca.pem"
    one_line_error(fwmodel("update", "--feed", "https://127.0.0.1:1/", "--feed-ca",
                           str(missing_ca), hal=hal), 2, str(missing_ca))
    one_line_error(fwmodel("--at", "2025-06-01", "status", hal=f"serial:{tmp_path / 'no-tty'}"),
                   2, "--at needs a software device")
    one_line_error(fwmodel("revoke", "store", "5", hal=hal), 1, "would revoke the running image")
    one_line_error(fwmodel("status", hal="bogus"), 2, "expected fake")
    assert ok_json(fwmodel("status", "--json", hal=hal)) == before
    verbose = fwmodel("-v", "update", "--feed", str(tampered), hal=hal)
    assert "[agent] update from" in verbose.stderr
    assert "refused (ManifestMismatchError)" in verbose.stderr


def test_connect_exits_0_or_1_judged_at_the_device_clock(device_lab: Lab, tmp_path: Path) -> None:
    expiry = dt.datetime(2025, 5, 12, tzinfo=dt.UTC)
    root = Authority.root("Lab Baltimore stand-in", not_after=expiry)
    store = tmp_path / "lab-store.imagepackage"
    store.write_bytes(device_lab.store([("LabBaltimore", root.certificate)], 1))
    hal = f"fake:{tmp_path / 'dev.flash'}"
    assert fwmodel("provision", "--images", str(device_lab.folder), "--store", str(store),
                   hal=hal).returncode == 0
    key, leaf = root.server()
    with tls_server(server_context(tmp_path / "tls", key, [leaf])) as port:
        connected = fwmodel("connect", f"127.0.0.1:{port}", hal=hal)
        late = fwmodel("--at", "2025-06-01", "connect", f"127.0.0.1:{port}", hal=hal)
        late_json = fwmodel("connect", f"127.0.0.1:{port}", "--json", hal=hal)
    assert connected.returncode == 0 and "store root LabBaltimore" in connected.stdout
    one_line_error(late, 1, "unable to get local issuer certificate")
    # --json answers in JSON on a failure too (and still says it in one line on stderr)
    assert late_json.returncode == 1 and late_json.stderr.count("\n") == 1
    answer = json.loads(late_json.stdout)
    assert answer["connected"] is False and answer["port"] == port
    assert answer["error"]["type"] == "TlsError" and "local issuer" in answer["error"]["message"]


def test_sweep_json_prints_only_the_json(device_lab: Lab) -> None:
    result = fwmodel("sweep", "--json", "--images", str(device_lab.folder))
    report = ok_json(result)
    assert result.stderr == ""
    assert report["violation_count"] == 0 and report["cut_points"] == 3 * int(
        str(report["flash_ops"]))
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict) and outcomes["old"] + outcomes["new"] == report["cut_points"]
    text = fwmodel("sweep", "--images", str(device_lab.folder), "--modes", "torn, torn")
    assert text.returncode == 0 and "violations: 0" in text.stdout
    ops = int(str(report["flash_ops"]))
    assert f"{ops} flash operations x 1 mode (torn) = {ops} cut points" in text.stdout
    assert re.search(r"booted the old set \(.*\): \d+ times", text.stdout)
    assert re.search(r"booted the new set \(the update's\): \d+ times?", text.stdout)
    for empty in (",", "", " , "):
        one_line_error(fwmodel("sweep", "--images", str(device_lab.folder), "--modes", empty),
                       2, "name at least one of before, after, torn")
    one_line_error(fwmodel("sweep", "--images", str(device_lab.folder), "--modes", "torn,late"),
                   2, "expected before, after, torn")


@pytest.mark.timeout(90)
def test_the_same_commands_over_the_serial_protocol(device_lab: Lab, tmp_path: Path) -> None:
    hal = f"emulator:{tmp_path / 'board.flash'}"
    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    update = ok_json(fwmodel("update", "--feed", str(device_lab.folder / "feeds"), "--defer",
                             "30", "--json", hal=hal))
    assert update["outcome"] == "installed" and update["deferred_minutes"] == 30
    status = ok_json(fwmodel("status", "--json", hal=hal))
    # each command starts the emulator afresh: a power-up (docs/serial-protocol.md §9)
    assert status["last_reset_cause"] == "POWER_ON"
    slots = status["slots"]
    assert isinstance(slots, dict) and slots["store"]["active"] == "B"
    # the deferral's half hour and the two 10-second warnings, kept
    assert status["device_time"] == "2025-02-01T00:30:20Z"


def test_an_https_feed_with_its_own_ca_or_through_the_device_store(
    device_lab: Lab, tmp_path: Path
) -> None:
    feed_root = Authority.root("Lab Feed Root")
    key, leaf = feed_root.server()
    ca = tmp_path / "feed-ca.pem"
    ca.write_bytes(feed_root.certificate.public_bytes(serialization.Encoding.PEM))
    hal = f"fake:{tmp_path / 'dev.flash'}"
    assert fwmodel("provision", "--images", str(device_lab.folder), hal=hal).returncode == 0
    context = server_context(tmp_path / "tls", key, [leaf])
    with feed_server(device_lab.folder / "feeds", context) as url:
        untrusted = fwmodel("update", "--feed", url, hal=hal)
        trusted = fwmodel("update", "--feed", url + "RetailEval", "--feed-ca", str(ca), hal=hal)
    one_line_error(untrusted, 3, "certificate verify failed")
    assert trusted.returncode == 0 and "outcome: installed" in trusted.stdout
