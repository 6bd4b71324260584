"""Which machine a device model runs on, from a `--hal` choice (the CLI's hardware edge).

    fake[:FLASH]        the software machine on the flash file FLASH (default ./device.flash;
                        fuses, reset cause and wall clock in FLASH.otp, FLASH.reset and
                        FLASH.clock beside it), so a device keeps its state, and its time
                        moves on, from one run to the next; only provisioning creates these
                        files
    emulator[:FLASH]    the same software machine served by the board emulator on a
                        pseudo-terminal in this process, driven over the serial protocol
    serial:PORT         a board on a serial port (a device path or a pyserial URL)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from firmware_model.errors import FwModelError, NotProvisionedError
from hal.errors import StateFileError
from hal.interfaces import Machine
from hal.soft.machine import SoftwareMachine, sidecar

DEFAULT_FLASH = "device.flash"


@dataclass(frozen=True)
class HalSpec:
    """A parsed `--hal` value."""

    kind: str  # "fake", "emulator" or "serial"
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_hal(text: str) -> HalSpec:
    """Parse `fake[:FLASH]`, `emulator[:FLASH]` or `serial:PORT`; FwModelError (usage)."""
    kind, _, target = text.partition(":")
    if kind in ("fake", "emulator"):
        return HalSpec(kind, target or DEFAULT_FLASH)
    if kind == "serial" and target:
        return HalSpec(kind, target)
    raise FwModelError(f"--hal {text!r}: expected fake[:FLASH], emulator[:FLASH] or serial:PORT")


def _serial(port: str) -> Machine:
    from hal.serial.machine import SerialMachine  # pyserial is imported only when a board is used

    return SerialMachine(port)


@contextlib.contextmanager
def open_machine(
    spec: HalSpec, wall: datetime | None = None, *, create: bool = False
) -> Iterator[Machine]:
    """The machine `spec` names, closed (and its emulator stopped) on exit.

    A software machine's wall clock resumes where the last run left it (FLASH.clock, saved
    on exit); `wall` sets it first (FwModelError, usage, for a board: its clock is its own).
    A software machine's flash file must exist (NotProvisionedError "no device at
    FLASH (run provision first)") unless `create`: then a device that does not exist yet is
    created, and the files made for it are removed again if the body fails before anything
    was written to the device. A state file of the wrong size or content is a FwModelError.
    """
    if spec.kind == "serial":
        if wall is not None:
            raise FwModelError("--at needs a software machine (fake or emulator); a board "
                               "keeps its own time")
        board = _serial(spec.target)
        try:
            yield board
        finally:
            board.close()
        return
    with _software(Path(spec.target), create) as soft:
        if wall is not None:
            soft.clock.set_wall(wall)
        if spec.kind == "fake":
            yield soft
            return
        from hal.emulator.server import start_emulator

        with start_emulator(soft, transport="pty") as emulator:
            board = _serial(emulator.url)
            try:
                yield board
            finally:
                board.close()


@contextlib.contextmanager
def _software(flash: Path, create: bool) -> Iterator[SoftwareMachine]:
    """The software machine on `flash`, created only if absent and `create` (see open_machine)."""
    new = not flash.exists()
    if new and not create:
        raise NotProvisionedError(f"no device at {flash} (run provision first)")
    made = [path for path in _state_files(flash) if not path.exists()] if new else []
    try:
        soft = SoftwareMachine(flash, create=new, keep_clock=True)
    except StateFileError as error:
        _remove(made)
        raise FwModelError(str(error)) from None
    try:
        with soft:
            yield soft
    except BaseException:
        if _untouched(soft):
            _remove(made)
        raise


def _state_files(flash: Path) -> list[Path]:
    """The files a software machine on `flash` keeps its state in."""
    files = (flash, *(sidecar(flash, suffix) for suffix in (".otp", ".reset", ".clock")))
    return [path for path in files if path is not None]


def _untouched(soft: SoftwareMachine) -> bool:
    """True if no flash operation was begun and no fuse blown on `soft`."""
    return soft.faults.op_count == 0 and not any(soft.otp.words())


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
