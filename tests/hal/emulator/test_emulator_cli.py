"""The emulator's command line: bad usage and bad input are one line and exit code 2, and leave
no file behind; a runtime failure before serving is exit code 4 and leaves none either."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hal.emulator.cli import main
from policy.cli import ExitCode

EXIT_USAGE, EXIT_PORT = ExitCode.BAD_INPUT, ExitCode.HARDWARE

SMALL = ["--size", str(64 * 1024), "--sector-size", "4096", "--page-size", "256"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hal.emulator", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def one_line(text: str) -> str:
    assert text.count("\n") == 1 and text.startswith("hal.emulator: error: "), text
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tcp", "127.0.0.1:99999"], "0..65535"),
        (["--tcp", "192.0.2.1:80"], "loopback only"),
        (["--tcp", "127.0.0.1"], "HOST:PORT"),
        (["--pty", "--baud", "-5"], "--baud -5"),
        (["--pty", "--baud", "0"], "--baud 0"),
        (["--pty", "--reboot-delay", "-1"], "--reboot-delay"),
        (["--pty", "--reboot-delay", "inf"], "--reboot-delay"),
        (["--pty", "--otp-words", "0"], "--otp-words 0"),
        (["--pty", "--size", "1000"], "bad flash geometry"),
        (["--pty", "--size", str(1 << 33)], "at most"),
        (["--pty", "--corrupt", "0.7", "--drop", "0.7"], "line faults"),
        (["--pty", "--max-payload", "511"], "--max-payload 511: expected 512..65600"),
        (["--pty", "--max-payload", "65601"], "--max-payload 65601"),
        (["--pty", "--window", "0"], "--window 0: expected 1..65535"),
        (["--pty", "--window", "65536"], "--window 65536"),
    ],
)
def test_a_bad_argument_is_refused_before_anything_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["--flash", str(tmp_path / "dev.flash"), *args]) == EXIT_USAGE
    assert says in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_bad_syntax_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    done = run_cli("--flash", str(tmp_path / "dev.flash"), "--pty", "--otp-words", "many")
    assert done.returncode == EXIT_USAGE
    assert "--otp-words" in one_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


def test_the_16_mib_flash_file_is_not_made_for_a_bad_fuse_count(tmp_path: Path) -> None:
    done = run_cli("--flash", str(tmp_path / "dev.flash"), "--pty", "--otp-words", "0")
    assert done.returncode == EXIT_USAGE
    one_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("problem", ["directory", "wrong size", "wrong fuse file", "no folder"])
def test_a_flash_or_state_file_it_cannot_use_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    flash = tmp_path / "dev.flash"
    if problem == "directory":
        flash.mkdir()
    elif problem == "wrong size":
        flash.write_bytes(b"\xff" * 100)
    elif problem == "wrong fuse file":
        (tmp_path / "dev.flash.otp").write_bytes(b"\0" * 3)
    else:
        flash = tmp_path / "missing" / "dev.flash"
    before = sorted(tmp_path.iterdir())
    assert main(["--flash", str(flash), "--pty", *SMALL]) == EXIT_USAGE
    assert str(flash) in one_line(capsys.readouterr().err)
    assert sorted(tmp_path.iterdir()) == before


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield int(taken.getsockname()[1])


def test_a_port_it_cannot_open_is_a_runtime_error_and_leaves_no_new_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], busy_port: int
) -> None:
    args = ["--flash", str(tmp_path / "dev.flash"), "--tcp", f"127.0.0.1:{busy_port}", *SMALL]
    assert main(args) == EXIT_PORT
    assert "cannot listen" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_help_documents_the_exit_codes() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    codes = done.stdout[done.stdout.index("exit codes:"):]
    for expected in ("0    success (stopped by", "2    bad input", "4    hardware"):
        assert expected in codes


# --- an emulator whose launcher dies -------------------------------------------------------------

LAUNCHER = """
import subprocess, sys
flash, errors, *flags = sys.argv[1:]
command = [sys.executable, "-m", "hal.emulator", "--flash", flash, "--pty",
           "--size", "65536", *flags]
emulator = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(errors, "w"))
emulator.stdout.readline()  # serving
print(emulator.pid, flush=True)
sys.stdin.read()  # until the test kills this process
"""


def alive(pid: int) -> bool:
    """True while process `pid` runs (an unreaped zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def orphan(tmp_path: Path, *flags: str) -> tuple[int, Path]:
    """Start the emulator under a launcher, SIGKILL the launcher; the emulator's pid and
    stderr file."""
    errors = tmp_path / "emulator.stderr"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path / "dev.flash"), str(errors), *flags],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert launcher.stdout is not None
    ready, _, _ = select.select([launcher.stdout], [], [], 30)
    line = launcher.stdout.readline() if ready else ""
    launcher.kill()
    launcher.communicate()
    assert line.strip().isdigit(), f"the launcher printed {line!r}"
    return int(line), errors


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_emulator_whose_launcher_is_killed_stops_with_exit_with_parent(
    tmp_path: Path,
) -> None:
    pid, errors = orphan(tmp_path, "--exit-with-parent")
    try:
        assert wait_gone(pid, 5.0)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert errors.read_text() == ""  # stopped cleanly: no error, no traceback


def test_without_the_flag_an_orphaned_emulator_serves_on(tmp_path: Path) -> None:
    pid, _errors = orphan(tmp_path)
    try:
        assert not wait_gone(pid, 1.0)  # what --exit-with-parent is for
    finally:
        os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid, 5.0)


@pytest.mark.parametrize("stdin", ["devnull", "file"])
def test_exit_with_parent_refuses_a_stdin_that_ends_at_once(tmp_path: Path, stdin: str) -> None:
    source = tmp_path / "input"
    source.write_text("")
    command = [sys.executable, "-m", "hal.emulator", "--flash", str(tmp_path / "dev.flash"),
               "--pty", "--exit-with-parent"]
    with (open(os.devnull) if stdin == "devnull" else source.open()) as given:
        done = subprocess.run(command, stdin=given, capture_output=True, text=True, timeout=30)
    assert done.returncode == EXIT_USAGE
    assert "stdin" in one_line(done.stderr)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["input"]
