"""pytest plugin (entry point ``sphere_hal``): run HAL tests on the backend `--hal` names.

`--hal` takes the grammar of `hal.backends` (as `fwmodel --hal` does), without a FLASH: each
test gets a fresh device in its tmp_path.

- ``--hal fake`` (default): a :class:`hal.soft.machine.SoftwareMachine` on a flash file;
- ``--hal emulator``: the Python board agent in a process of its own (`hal.emulator.launcher`,
  which stops it even if pytest dies), driven by :class:`hal.serial.machine.SerialMachine` over
  a real pseudo-terminal; ``--hal native`` and ``--hal qemu``: the C board agent, built for the
  host or as firmware under QEMU (skipped, saying why, where it is not built);
- ``--hal serial:PORT``: ``SerialMachine`` on a board at PORT (a device path or pyserial URL).

Fixtures: ``machine`` (a :class:`hal.interfaces.Machine` on the chosen backend; fresh except on
a board) and ``hal_backend`` (the parsed `hal.backends.HalSpec`). Markers:

- ``hil``: needs a board; skipped unless ``--hal serial:PORT``;
- ``fake_only``: needs the in-process software machine (fault injector, snapshots);
  skipped unless ``--hal fake``;
- ``fresh_machine``: needs a machine nobody used before (a fresh reset cause, fuses it may
  blow); skipped on ``--hal serial:PORT``, where the board keeps what earlier runs left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hal.backends import AGENTS, HalSpec, open_machine, parse_hal
from hal.emulator.boards import missing
from hal.interfaces import Machine
from hal.soft.files import device_files
from policy.errors import UsageError

_MARKERS = {
    "hil": "needs a real board on a serial port (--hal serial:PORT)",
    "fake_only": "needs the in-process software machine (--hal fake)",
    "fresh_machine": "needs a machine nobody used before (not run on a board)",
}


_CHOICE = pytest.StashKey[HalSpec]()


def parse_hal_option(value: str) -> HalSpec:
    """Parse ``fake``, ``emulator`` or ``serial:PORT``; pytest.UsageError otherwise (a FLASH is
    refused: every test gets a fresh device of its own)."""
    try:
        spec = parse_hal(value)
    except UsageError as error:
        raise pytest.UsageError(str(error)) from None
    if not spec.is_board and spec.target is not None:
        raise pytest.UsageError(f"--hal {value!r}: the plugin gives each test a fresh device in "
                                f"its tmp_path; use --hal {spec.kind}")
    return spec


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--hal fake|emulator|serial:PORT`."""
    parser.getgroup("sphere-hal").addoption(
        "--hal",
        default="fake",
        metavar="fake|emulator|serial:PORT",
        help="HAL backend for the `machine` fixture (default: fake)",
    )
    parser.getgroup("sphere-hal").addoption(
        "--agent-option", action="append", default=[], metavar="ARG",
        help="an argument for the board agent --hal emulator starts (repeat it: "
             "--agent-option=--max-payload --agent-option=4096)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; parse the chosen backend."""
    for name, text in _MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.stash[_CHOICE] = parse_hal_option(str(config.getoption("--hal")))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip tests whose markers ask for another backend, saying which one to use."""
    choice = item.config.stash[_CHOICE]
    if item.get_closest_marker("hil") and not choice.is_board:
        pytest.skip(f"needs a board: run with --hal serial:PORT (this run is --hal {choice})")
    if item.get_closest_marker("fake_only") and choice.kind != "fake":
        pytest.skip(
            "needs the in-process software machine (fault injector, snapshots): "
            f"runs with --hal fake, not --hal {choice}"
        )
    if item.get_closest_marker("fresh_machine") and choice.is_board:
        pytest.skip(
            "needs a fresh machine; a board on a serial port keeps its fuses and reset cause "
            "from earlier runs (runs with --hal fake or emulator)"
        )


@pytest.fixture
def hal_backend(request: pytest.FixtureRequest) -> HalSpec:
    """The backend this run's `machine` fixture uses."""
    return request.config.stash[_CHOICE]


@pytest.fixture
def machine(hal_backend: HalSpec, tmp_path: Path, request: pytest.FixtureRequest
            ) -> Iterator[Machine]:
    """A Machine on the chosen backend (fresh, except a board on a serial port)."""
    if hal_backend.is_board:
        with open_machine(hal_backend) as board:
            yield board
        return
    agent = AGENTS.get(hal_backend.kind)
    reason = None if agent is None else missing(agent)
    if reason is not None:
        pytest.skip(f"--hal {hal_backend}: {reason}")
    flash = tmp_path / "flash.bin"
    try:
        options = request.config.getoption("--agent-option")
        with open_machine(HalSpec(hal_backend.kind, str(flash)), create=True,
                          agent_options=options) as fresh:
            yield fresh
    finally:  # pytest keeps tmp folders: do not keep a 16 MiB flash per test
        for path in device_files(flash):
            path.unlink(missing_ok=True)
