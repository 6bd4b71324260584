"""pytest plugin (entry point ``sphere_hal``): run HAL tests on the backend `--hal` names.

- ``--hal fake`` (default): a :class:`hal.soft.machine.SoftwareMachine` on a flash file in tmp_path;
- ``--hal emulator``: ``python -m hal.emulator --flash PATH --pty --exit-with-parent`` is
  started per test (its stdin a pipe from pytest, so it stops if pytest dies) and
  :class:`hal.serial.machine.SerialMachine` talks to it over a real pseudo-terminal;
- ``--hal serial:PORT``: ``SerialMachine`` on a board at PORT (a device path or pyserial URL).

Fixtures: ``machine`` (a :class:`hal.interfaces.Machine` on the chosen backend; fresh except on
a board) and ``hal_backend`` (the parsed choice). Markers:

- ``hil``: needs a board; skipped unless ``--hal serial:PORT``;
- ``fake_only``: needs the in-process software machine (fault injector, snapshots);
  skipped unless ``--hal fake``;
- ``fresh_machine``: needs a machine nobody used before (a fresh reset cause, fuses it may
  blow); skipped on ``--hal serial:PORT``, where the board keeps what earlier runs left.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import pytest

from hal.interfaces import Machine
from hal.soft.machine import SoftwareMachine

BackendKind = Literal["fake", "emulator", "serial"]

#: Seconds the emulator may take to print the line naming its port.
EMULATOR_START_TIMEOUT = 15.0

_MARKERS = {
    "hil": "needs a real board on a serial port (--hal serial:PORT)",
    "fake_only": "needs the in-process software machine (--hal fake)",
    "fresh_machine": "needs a machine nobody used before (not run on a board)",
}


@dataclass(frozen=True)
class HalChoice:
    """The backend `--hal` chose: its kind, and the port for ``serial``."""

    kind: BackendKind
    port: str | None = None

    def __str__(self) -> str:
        return f"serial:{self.port}" if self.kind == "serial" else self.kind


_CHOICE = pytest.StashKey[HalChoice]()


def parse_hal_option(value: str) -> HalChoice:
    """Parse ``fake``, ``emulator`` or ``serial:PORT``; pytest.UsageError otherwise."""
    if value in ("fake", "emulator"):
        return HalChoice(cast(BackendKind, value))
    if value.startswith("serial:") and len(value) > len("serial:"):
        return HalChoice("serial", value[len("serial:") :])
    raise pytest.UsageError(f"--hal {value!r}: expected fake, emulator or serial:PORT")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--hal fake|emulator|serial:PORT`."""
    parser.getgroup("sphere-hal").addoption(
        "--hal",
        default="fake",
        metavar="fake|emulator|serial:PORT",
        help="HAL backend for the `machine` fixture (default: fake)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; check the chosen backend's modules are there."""
    for name, text in _MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    choice = parse_hal_option(str(config.getoption("--hal")))
    needed = {"emulator": ["hal.emulator", "hal.serial.machine"], "serial": ["hal.serial.machine"]}
    for module in needed.get(choice.kind, []):
        if importlib.util.find_spec(module) is None:
            raise pytest.UsageError(
                f"--hal {choice} needs the module {module}, which is not in this tree; "
                "use --hal fake"
            )
    config.stash[_CHOICE] = choice


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip tests whose markers ask for another backend, saying which one to use."""
    choice = item.config.stash[_CHOICE]
    if item.get_closest_marker("hil") and choice.kind != "serial":
        pytest.skip(f"needs a board: run with --hal serial:PORT (this run is --hal {choice})")
    if item.get_closest_marker("fake_only") and choice.kind != "fake":
        pytest.skip(
            "needs the in-process software machine (fault injector, snapshots): "
            f"runs with --hal fake, not --hal {choice}"
        )
    if item.get_closest_marker("fresh_machine") and choice.kind == "serial":
        pytest.skip(
            "needs a fresh machine; a board on a serial port keeps its fuses and reset cause "
            "from earlier runs (runs with --hal fake or emulator)"
        )


@pytest.fixture
def hal_backend(request: pytest.FixtureRequest) -> HalChoice:
    """The backend this run's `machine` fixture uses."""
    return request.config.stash[_CHOICE]


@pytest.fixture
def machine(hal_backend: HalChoice, tmp_path: Path) -> Iterator[Machine]:
    """A Machine on the chosen backend (fresh, except a board on a serial port)."""
    if hal_backend.kind == "fake":
        flash_path = tmp_path / "flash.bin"
        with SoftwareMachine(flash_path) as soft:
            yield soft
        _remove_device_files(flash_path)
    elif hal_backend.kind == "emulator":
        yield from _emulated_machine(tmp_path / "flash.bin")
    else:
        board = _serial_machine(str(hal_backend.port))
        try:
            yield board
        finally:
            board.close()


def _remove_device_files(flash_path: Path) -> None:
    """Delete a test's 16 MiB flash file and its sidecars (pytest keeps tmp dirs around)."""
    for suffix in ("", ".otp", ".reset"):
        flash_path.with_name(flash_path.name + suffix).unlink(missing_ok=True)


def _serial_machine(port_url: str) -> Machine:
    module = importlib.import_module("hal.serial.machine")
    return cast(Machine, module.SerialMachine(port_url))


def _emulated_machine(flash_path: Path) -> Iterator[Machine]:
    # stdin is a pipe this process holds: if pytest dies, even by SIGKILL, the emulator sees
    # the pipe end and stops instead of serving on as an orphan.
    command = [sys.executable, "-m", "hal.emulator", "--flash", str(flash_path), "--pty",
               "--exit-with-parent"]
    stderr_path = flash_path.with_name("emulator.stderr")
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
    try:
        port = _first_line(process, stderr_path).split()[-1]
        board = _serial_machine(port)
        try:
            yield board
        finally:
            board.close()
    finally:
        _stop(process)
        _remove_device_files(flash_path)


def _first_line(process: subprocess.Popen[str], stderr_path: Path) -> str:
    """The emulator's first stdout line (later lines are drained); pytest.fail if none comes."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    got_one = threading.Event()

    def drain() -> None:
        with stdout:
            for line in stdout:
                lines.append(line)
                got_one.set()
        got_one.set()

    threading.Thread(target=drain, daemon=True).start()
    got_one.wait(EMULATOR_START_TIMEOUT)
    if not lines or not lines[0].strip():
        _stop(process)
        stderr = stderr_path.read_text(errors="replace").strip()
        pytest.fail(
            f"the emulator printed no port within {EMULATOR_START_TIMEOUT:g} s "
            f"(exit code {process.returncode}): {stderr[-500:]}"
        )
    return lines[0]


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop the emulator: closing its stdin ends it (--exit-with-parent); else SIGTERM, SIGKILL."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    for ask in (process.terminate, process.kill):
        if process.poll() is not None:
            return
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            ask()
    process.wait()
