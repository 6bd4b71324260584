"""The machines a device can run on, named by one `--hal` grammar (fwmodel and the pytest plugin):

    fake[:FLASH]        the software machine on the flash file FLASH, in this process (fuses,
                        reset cause, boot count and uptime, and wall clock in FLASH.otp,
                        FLASH.reset, FLASH.boot and FLASH.clock beside it), so a device keeps
                        its state, and its time moves on, from one run to the next
    emulator[:FLASH]    the same device served by the Python board agent in a process of its
                        own (`python -m hal.emulator`), driven over the serial protocol on a pty
    native[:FLASH]      the same, served by the C board agent built for this host
    qemu[:FLASH]        the same, served by the C board agent as Cortex-M4 firmware on QEMU
    serial:PORT         a board on a serial port (a device path or a pyserial URL)

FLASH defaults to `device.flash` (fwmodel) or a file the caller names (the pytest plugin).
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hal.errors import DeviceBusyError, NoDeviceError
from hal.interfaces import FlashProgress, Machine
from hal.soft.files import device_files
from hal.soft.machine import SoftwareMachine
from policy.errors import UsageError
from policy.files import read_regular

DEFAULT_FLASH = "device.flash"
#: The software device in this process, the board agents that serve one (`hal.emulator.boards`
#: by their own names, `emulator` being the Python one), and a board on a port.
AGENTS = {"emulator": "python", "native": "native", "qemu": "qemu"}
KINDS = ("fake", *AGENTS, "serial")
GRAMMAR = "fake[:FLASH]|emulator[:FLASH]|native[:FLASH]|qemu[:FLASH]|serial:PORT"


@dataclass(frozen=True)
class HalSpec:
    """A parsed `--hal` value: the kind of machine, and its flash file or port (None: the
    caller's default)."""

    kind: str
    target: str | None = None

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"

    @property
    def is_board(self) -> bool:
        """True when the machine is a board this process does not own (no clock to set)."""
        return self.kind == "serial"

    def flash(self, default: str | Path = DEFAULT_FLASH) -> Path:
        """The flash file of a software device (`target`, else `default`)."""
        return Path(self.target or default)


def parse_hal(text: str) -> HalSpec:
    """Parse a `--hal` value (see the module doc); UsageError for anything else."""
    kind, _, target = text.partition(":")
    if kind == "fake" or kind in AGENTS:
        if target and (Path(target).name in ("", "..") or target.endswith("/")):
            raise UsageError(f"--hal {text!r}: {target!r} names a folder, not a flash file")
        return HalSpec(kind, target or None)
    if kind == "serial" and target:
        return HalSpec(kind, target)
    raise UsageError(f"--hal {text!r}: expected {GRAMMAR}")


@contextlib.contextmanager
def open_machine(spec: HalSpec, wall: datetime | None = None, *, create: bool = False,
                 default_flash: str | Path = DEFAULT_FLASH,
                 agent_options: Sequence[str] = (), lock_wait: float = 0.0,
                 progress: FlashProgress | None = None,
                 console: Callable[[str], None] | None = None) -> Iterator[Machine]:
    """The machine `spec` names, closed (and its agent stopped) on exit.

    A software device's wall clock resumes where the last run left it (FLASH.clock); `wall`
    sets it first (UsageError for a board: its clock is its own). A software device's flash
    file must exist (NoDeviceError "no device at FLASH (run provision first)") unless
    `create`: then the files made for a new device are removed again if the body fails before
    anything was written to the device. `agent_options` go to a board agent this opens (the
    emulator's command line: `--max-payload 4096`, say). A software device is one process's at
    a time: DeviceBusyError if another holds it for longer than `lock_wait` seconds.
    `progress` hears how long flash transfers go on a board (the software machine's are
    instant: it says nothing); `console` hears each console line as the device logs it.
    """
    if spec.is_board:
        if wall is not None:
            raise UsageError("--at needs a software device (fake, emulator, native or qemu); "
                             "a board keeps its own time")
        with _serial(str(spec.target), progress, console, lock_wait) as board:
            yield board
        return
    flash = spec.flash(default_flash)
    new = not flash.exists()
    if new and not create:
        raise NoDeviceError(f"no device at {flash} (run provision first)")
    if not create and spec.kind != "fake" and _empty(flash):  # an agent would fill it in
        raise NoDeviceError(f"{flash}: an empty flash file holds no device (run provision "
                            "first)")
    made = [path for path in device_files(flash) if not path.exists()]
    try:
        if spec.kind == "fake":
            with SoftwareMachine(flash, create=new, keep_clock=True,
                                 lock_wait=lock_wait, echo=console) as soft:
                if wall is not None:
                    soft.clock.set_wall(wall)
                yield soft
        else:
            options = [*agent_options, *(["--wait", str(lock_wait)] if lock_wait else [])]
            with _emulated(flash, wall, options, AGENTS[spec.kind], progress,
                           console) as board:
                yield board
    except DeviceBusyError:
        raise  # the device is another process's: none of its files are this one's to remove
    except BaseException:
        if made and _untouched(flash):
            for path in made:
                path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _emulated(flash: Path, wall: datetime | None, extra: Sequence[str], board: str,
              progress: FlashProgress | None,
              console: Callable[[str], None] | None) -> Iterator[Machine]:
    from hal.emulator.launcher import launch_board  # a process: imported only when used

    options = ["--at", wall.astimezone(UTC).isoformat()] if wall is not None else []
    options += extra
    with launch_board(flash, options=options, board=board) as agent, \
            _serial(agent.url, progress, console) as machine:
        yield machine


def _serial(port: str, progress: FlashProgress | None = None,
            console: Callable[[str], None] | None = None, lock_wait: float = 0.0
            ) -> contextlib.AbstractContextManager[Machine]:
    from hal.serial.machine import SerialMachine  # pyserial is imported only when used

    return SerialMachine(port, on_progress=progress, on_console=console, lock_wait=lock_wait)


def _empty(path: Path) -> bool:
    try:
        status = path.stat()
        return stat.S_ISREG(status.st_mode) and status.st_size == 0
    except OSError:
        return False  # the agent's own checks say what is wrong with it


def _untouched(flash: Path) -> bool:
    """True if the device at `flash` is as new: its flash erased and its fuses all zero."""
    files = device_files(flash)
    try:
        if read_regular(files[0]).strip(b"\xff") or read_regular(files[1]).strip(b"\0"):
            return False
    except FileNotFoundError:
        pass
    return True
