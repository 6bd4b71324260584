"""`fwmodel` against a hostile feed, a second process and a Ctrl-C (issue 9), as a user meets
them: real subprocesses on device files kept on disk, feeds served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_model.agent.feed import MANIFEST_NAME, image_file_name
from firmware_model.image.package import parse_package
from hal.soft.files import device_files
from hal.soft.machine import SoftwareMachine
from policy.cli import MEANINGS, ExitCode
from tests.firmware_model.devicelab import Lab
from tests.firmware_model.tlslab import FeedFaults, feed_server

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60
OLD_STORE, NEW_STORE = "certstore-2024", "certstore-2025-02"


def fwmodel(*args: str, hal: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware_model", "--hal", hal, *args],
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def start(*args: str, hal: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "firmware_model", "--hal", hal, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def provisioned(lab: Lab, folder: Path, hal_kind: str = "fake") -> tuple[str, Path]:
    """A device provisioned with the 2024 images, in its own folder; its --hal and FLASH."""
    folder.mkdir(parents=True, exist_ok=True)
    flash = folder / "dev.flash"
    hal = f"{hal_kind}:{flash}"
    done = fwmodel("provision", "--images", str(lab.folder), hal=hal)
    assert done.returncode == 0, done.stderr
    return hal, flash


def files_of(flash: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in device_files(flash) if path.exists()}


def store_of(hal: str) -> str:
    done = fwmodel("status", "--json", hal=hal)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    return str(status["slots"]["store"]["image"]["name"])


# --- a hostile feed: refused updates leave the five device files byte-identical -------------


def write_feed(folder: Path, manifest: bytes, images: list[bytes],
               served: dict[str, bytes] | None = None) -> Path:
    channel = folder / "Retail"
    channel.mkdir(parents=True)
    (channel / MANIFEST_NAME).write_bytes(manifest)
    for data in images:
        (channel / image_file_name(parse_package(data).image_id)).write_bytes(data)
    for name, data in (served or {}).items():
        (channel / name).write_bytes(data)
    return folder


def hostile_feeds(lab: Lab, root: Path) -> dict[str, tuple[Path, int, str]]:
    """Feeds on disk that an attacker (or a mistake) serves: where, exit code, reason."""
    from tests.firmware_model.agent import test_device_rejections as attacks

    feeds = {}
    for case, code, reason in [
        (attacks.keystore_minted_by_the_image_signing_key, 1, "keystore-signing role"),
        (attacks.store_that_is_not_a_filesystem, 2, "no cramfs magic"),
        (attacks.store_version_past_the_counter, 1, "holds at most 64"),
        (attacks.keystore_that_drops_the_running_stores_signer, 1, "may not sign"),
        (attacks.image_with_an_unknown_section, 2, "unknown section"),
        (attacks.store_with_no_root_valid_now, 1, "no root valid"),
        (attacks.signed_image_swapped_under_another_guid, 1, "SHA-256 differs"),
    ]:
        memory = case(lab, None)  # type: ignore[arg-type]  (these cases need no device)
        channel = root / case.__name__ / "Retail"
        channel.mkdir(parents=True)
        for name, data in memory.files.items():
            (channel / name).write_bytes(data)
        feeds[case.__name__] = (channel.parent, code, reason)
    return feeds


def test_every_refused_update_leaves_the_device_files_byte_identical(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, flash = provisioned(device_lab, tmp_path / "dev")
    before = files_of(flash)
    assert len(before) == 5  # FLASH, .otp, .reset, .boot, .clock
    for name, (feed, code, reason) in hostile_feeds(device_lab, tmp_path / "feeds").items():
        done = fwmodel("update", "--feed", str(feed), hal=hal)
        assert done.returncode == code, (name, done.stderr)
        assert reason in done.stderr and done.stderr.count("\n") == 1, (name, done.stderr)
        assert files_of(flash) == before, name


def test_a_feed_that_trickles_ends_the_check_at_its_deadline(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, flash = provisioned(device_lab, tmp_path / "dev")
    before = files_of(flash)
    faults = FeedFaults(trickle=0.05)  # one byte every 50 ms: 364 bytes of manifest take 18 s
    with feed_server(device_lab.folder / "feeds", faults=faults) as url:
        started = time.monotonic()
        done = fwmodel("update", "--feed", url + "Retail", "--deadline", "1.5", hal=hal)
        took = time.monotonic() - started
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    assert "deadline passed while fetching manifest.imagepackage" in done.stderr
    assert took < 8, took  # the deadline, plus the start-up of the interpreter
    assert files_of(flash) == before


# --- one device, one user -------------------------------------------------------------------


def test_a_second_command_on_a_device_in_use_is_busy_not_interleaved(
    device_lab: Lab, tmp_path: Path
) -> None:
    hal, flash = provisioned(device_lab, tmp_path / "dev")
    holder = SoftwareMachine(flash, keep_clock=True)  # another process has the device
    try:
        done = fwmodel("--wait", "0", "status", hal=hal)
        assert done.returncode == ExitCode.BUSY, done.stderr
        assert done.stderr == (f"fwmodel: error: {flash}: device busy (another process is "
                               "using it)\n")
        served = subprocess.run([sys.executable, "-m", "hal.emulator", "--flash", str(flash),
                                 "--pty"], capture_output=True, text=True, timeout=TIMEOUT)
        assert served.returncode == ExitCode.BUSY and "device busy" in served.stderr
        emulated = fwmodel("--wait", "0", "status", hal=f"emulator:{flash}")
        assert emulated.returncode == ExitCode.BUSY, emulated.stderr
        assert "device busy" in emulated.stderr
        waiting = start("--wait", "10", "status", "--json", hal=hal)
        time.sleep(0.5)
        assert waiting.poll() is None  # it waits for the device
    finally:
        holder.close()
    out, err = waiting.communicate(timeout=TIMEOUT)
    assert waiting.returncode == 0, err
    assert json.loads(out)["booted"] is True


def test_two_updates_at_once_leave_a_device_that_boots(device_lab: Lab, tmp_path: Path) -> None:
    hal, _flash = provisioned(device_lab, tmp_path / "dev")
    feed = str(device_lab.folder / "feeds")
    runs = [start("update", "--feed", feed, hal=hal) for _ in range(2)]
    results = [(run.wait(timeout=TIMEOUT), run.communicate()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, ExitCode.BUSY]), results
    outcomes = [out for code, (out, _) in results if code == 0]
    assert any("outcome: installed" in out for out in outcomes)
    for _, (_, err) in results:
        assert "Traceback" not in err
    assert store_of(hal) == NEW_STORE


# --- Ctrl-C and SIGTERM at any moment -------------------------------------------------------

STATE = re.compile(r"^fwmodel: interrupted: (unchanged|not installed|installed)")
#: When to interrupt: after the feed was asked for its Nth file (1: the manifest, 3: the last
#: image), and how many seconds later. The feed waits 0.15 s before each answer, so the last
#: offsets land in the install (verify, stage, commit, reset, boot) of a run that got that far.
POINTS = [(1, 0.0), (1, 0.1), (2, 0.05), (3, 0.0), (3, 0.15), (3, 0.155), (3, 0.16), (3, 0.17),
          (3, 0.19), (3, 0.24), (3, 0.45)]


def interrupt_update(lab: Lab, folder: Path, hal_kind: str, point: tuple[int, float],
                     signum: int) -> tuple[str, str, int]:
    """Provision, start an update from a slow feed, send `signum` at `point`; the last stderr
    line, the store the device then boots, and the exit code."""
    hal, _flash = provisioned(lab, folder, hal_kind)
    faults = FeedFaults(delay=0.15)
    with feed_server(lab.folder / "feeds", faults=faults) as url:
        run = start("update", "--feed", url + "Retail", hal=hal)
        deadline = time.monotonic() + TIMEOUT
        while len(faults.served) < point[0] and run.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(point[1])
        run.send_signal(signum)
        _, err = run.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    if run.returncode == ExitCode.INTERRUPTED:
        assert lines and STATE.match(lines[-1]), err
    else:
        assert run.returncode == 0, (run.returncode, err)
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    return (lines[-1] if lines else ""), store_of(hal), run.returncode


@pytest.mark.parametrize(("hal_kind", "points"), [("fake", POINTS), ("emulator", POINTS[::2])])
def test_an_interrupted_update_is_a_power_cut_and_says_where_it_left_the_device(
    device_lab: Lab, tmp_path: Path, hal_kind: str, points: list[tuple[int, float]]
) -> None:
    """SIGINT (Ctrl-C) or SIGTERM while fetching, installing and after: never a traceback,
    the device boots the old or the new store, and an interrupted run's last line says which
    (`unchanged`, `installed, trial pending`, ...)."""
    states = []
    for index, point in enumerate(points):
        signum = signal.SIGINT if index % 2 == 0 else signal.SIGTERM
        line, store, code = interrupt_update(device_lab, tmp_path / f"run{index}", hal_kind,
                                             point, signum)
        assert store in (OLD_STORE, NEW_STORE)
        if code == ExitCode.INTERRUPTED and "interrupted: unchanged" in line:
            assert store == OLD_STORE, line
        if code == ExitCode.INTERRUPTED and "interrupted: installed" in line:
            assert store == NEW_STORE, line
        states.append(line.partition("interrupted: ")[2].partition(":")[0] or "finished")
        shutil.rmtree(tmp_path / f"run{index}")
    assert "unchanged" in states, states  # the fetch phase is wide: it is always caught


def handlers_installed(pid: int) -> bool:
    """True once the process catches SIGTERM (`policy.entry` installs its handlers when it is
    imported; before that only Python's start-up runs, which no program can guard)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # it has ended already
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)  # type: ignore[union-attr]
    return bool(caught >> (signal.SIGTERM - 1) & 1)


#: Seconds after the handlers are installed: importing, opening the device, booting it,
#: reading its status, closing it, exiting.
INSTANTS = [0.0, 0.005, 0.02, 0.05, 0.1, 0.15, 0.25, 0.4]


@pytest.mark.parametrize("instant", INSTANTS)
def test_an_interrupt_at_any_instant_of_a_command_is_one_line_and_a_code(
    device_lab: Lab, tmp_path: Path, instant: float
) -> None:
    """From the first instant the program can guard to its exit: exit 0 (it had finished) or
    130 with one last line `fwmodel: interrupted...`; never a traceback, never Python's
    "Exception ignored" report, never death by the signal."""
    hal, flash = provisioned(device_lab, tmp_path)
    before = files_of(flash)
    run = start("status", hal=hal)
    deadline = time.monotonic() + TIMEOUT
    while not handlers_installed(run.pid):
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    time.sleep(instant)
    run.send_signal(signal.SIGINT if INSTANTS.index(instant) % 2 else signal.SIGTERM)
    out, err = run.communicate(timeout=TIMEOUT)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert run.returncode in (0, ExitCode.INTERRUPTED), (run.returncode, err)
    if run.returncode == ExitCode.INTERRUPTED:
        assert err.strip().splitlines()[-1].startswith("fwmodel: interrupted"), err
    else:
        assert "device time" in out
    assert {k: v for k, v in files_of(flash).items() if not k.endswith(".clock")} == {
        k: v for k, v in before.items() if not k.endswith(".clock")}


# --- the exit codes are one table --------------------------------------------------------------


def test_the_readme_has_the_one_table_of_exit_codes() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Exit codes"):]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.M))
    assert rows == {str(int(code)): text for code, text in MEANINGS.items()}


def test_fwmodel_help_lists_every_code_of_the_table() -> None:
    done = subprocess.run([sys.executable, "-m", "firmware_model", "--help"],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200"})
    for code, text in MEANINGS.items():
        assert f"  {int(code):<4} {text}" in done.stdout
