"""The pytest plugin: the --hal option, the machine fixture and the backend markers.

Runs pytest in a subprocess on a small test file, the way a user would.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hal.backends import HalSpec
from hal.pytest_plugin import parse_hal_option

SAMPLE = textwrap.dedent(
    """
    import pytest
    from hal.soft.machine import SoftwareMachine

    def test_machine_is_a_fresh_software_machine(machine, hal_backend):
        assert isinstance(machine, SoftwareMachine) and str(hal_backend) == "fake"
        assert machine.reset.last_cause().name == "POWER_ON"
        machine.flash.program(0, b"\\x00")

    @pytest.mark.hil
    def test_on_a_board():
        pass

    @pytest.mark.fake_only
    def test_in_process_only():
        pass

    @pytest.mark.fresh_machine
    def test_fresh_only():
        pass
    """
)


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (directory / "test_sample.py").write_text(SAMPLE)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "--strict-markers"]
    command += ["-p", "no:cacheprovider", *args, "test_sample.py"]
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("value", "choice"),
    [
        ("fake", HalSpec("fake")),
        ("emulator", HalSpec("emulator")),
        ("serial:/dev/ttyUSB0", HalSpec("serial", "/dev/ttyUSB0")),
        ("serial:socket://127.0.0.1:5000", HalSpec("serial", "socket://127.0.0.1:5000")),
    ],
)
def test_hal_option_values(value: str, choice: HalSpec) -> None:
    assert parse_hal_option(value) == choice
    assert str(choice) == value


@pytest.mark.parametrize("value", ["", "bogus", "serial:", "serial"])
def test_hal_option_refuses_other_values(value: str) -> None:
    with pytest.raises(pytest.UsageError, match=r"expected fake\[:FLASH\]\|emulator"):
        parse_hal_option(value)


@pytest.mark.parametrize("value", ["fake:dev.flash", "emulator:/tmp/x.flash"])
def test_hal_option_refuses_a_flash_file(value: str) -> None:
    with pytest.raises(pytest.UsageError, match="fresh device in its tmp_path"):
        parse_hal_option(value)


def test_fake_run_gives_a_machine_and_skips_board_tests_saying_why(tmp_path: Path) -> None:
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed, 1 skipped" in done.stdout
    assert "needs a board: run with --hal serial:PORT (this run is --hal fake)" in done.stdout
    assert list(tmp_path.rglob("flash.bin")) == []


def test_board_run_skips_in_process_and_fresh_machine_tests(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "--hal", "serial:loop://", "-k", "not machine_is")
    if importlib.util.find_spec("hal.serial.machine") is None:
        assert done.returncode == 4
        assert "--hal serial:loop:// needs the module hal.serial.machine" in done.stderr
        return
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped, 1 deselected" in done.stdout
    assert "needs the in-process software machine" in done.stdout
    assert "keeps its fuses and reset cause" in done.stdout


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "--hal", "bogus")
    assert done.returncode == 4
    assert "--hal 'bogus': expected fake[:FLASH]|emulator[:FLASH]|native" in done.stderr


SMALL_BOARD = textwrap.dedent(
    """
    def test_the_board_takes_4_kib(machine):
        assert machine.hello.max_payload == 4096 and machine.hello.window == 2
    """
)


def test_agent_options_reach_the_emulator_the_machine_runs_on(tmp_path: Path) -> None:
    (tmp_path / "test_small.py").write_text(SMALL_BOARD)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hal",
               "emulator", "--agent-option=--max-payload", "--agent-option=4096",
               "--agent-option=--window", "--agent-option=2", "test_small.py"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


HANGS_ON_THE_EMULATOR = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    def test_holds_the_emulator(machine):
        Path("pytest.pid").write_text(str(os.getpid()))
        time.sleep(60)  # until the outer test kills this pytest
    """
)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if int(parent) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")
def test_an_emulator_started_by_a_killed_pytest_stops(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text(HANGS_ON_THE_EMULATOR)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hal",
               "emulator", "test_hang.py"]
    inner = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "pytest.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        emulators = children(inner.pid)
        assert len(emulators) == 1, "the machine fixture runs one emulator"
    finally:
        inner.kill()
        inner.wait()
    deadline = time.monotonic() + 5
    while not gone(emulators[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not gone(emulators[0]):
        os.kill(emulators[0], signal.SIGKILL)
        pytest.fail("the emulator served on after the pytest that started it was killed")
