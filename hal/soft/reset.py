"""The reset controller, its cause register and its boot register, which survive resets (and,
on disk, processes)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from hal.errors import HalError, StateFileError
from hal.interfaces import ResetCause
from hal.soft.files import read_state
from hal.soft.power import PowerRail
from policy.files import open_regular

_REGISTER_BYTES = 4
_NAME_WIDTH = 15


class ResetCauseRegister:
    """Holds the cause of the most recent reset; POWER_ON when new.

    With a `path`, the cause is kept in that file (its name, padded to a fixed width, one
    line) written in place on every change, and re-read on open. StateFileError if the file
    does not hold a cause; with `create` False also if it is absent (nothing is created).
    """

    def __init__(self, path: Path | None = None, *, create: bool = True) -> None:
        self._cause = ResetCause.POWER_ON
        self._fd: int | None = None
        if path is not None:
            text = read_state(path)
            if text is not None:
                self._cause = _parse_cause(path, text)
            elif not create:
                raise StateFileError(f"{path}: no reset-cause file")
            self._fd = open_regular(path, os.O_RDWR | os.O_CREAT)
            self._save()

    @property
    def cause(self) -> ResetCause:
        """The cause of the most recent reset."""
        return self._cause

    def record(self, cause: ResetCause) -> None:
        """Remember `cause` (and write it through to the file, if any)."""
        if cause is not self._cause:
            self._cause = ResetCause(cause)
            self._save()

    def read_mapped(self, offset: int, length: int) -> bytes:
        """The register as a little-endian u32, for the memory map."""
        return int(self._cause).to_bytes(_REGISTER_BYTES, "little")[offset : offset + length]

    def close(self) -> None:
        """Close the backing file, if any."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _save(self) -> None:
        if self._fd is not None:
            line = f"{self._cause.name:<{_NAME_WIDTH}}\n".encode("ascii")
            os.pwrite(self._fd, line, 0)
            os.ftruncate(self._fd, len(line))


def _parse_cause(path: Path, name: str) -> ResetCause:
    try:
        return ResetCause[name]
    except KeyError:
        raise StateFileError(f"{path}: {name!r} is not a reset cause") from None


_BOOT_LINE = re.compile(r"boot_count=([1-9][0-9]{0,9}) uptime_s=([0-9]{1,12}(?:\.[0-9]{1,9})?)")


class BootRegister:
    """Boots since power-up, and when the last one was on the monotonic clock `monotonic`.

    A new register counts 1 boot that happened now. With a `path`, the count and the uptime
    are kept in that file, one line ``boot_count=N uptime_s=S`` (S with 6 decimals), written
    in place at every boot and by `save`, and re-read on open: the uptime then goes on from
    where the last process left it, whatever the wall clock says. A missing file (a device
    made before the file existed) is a device that has just booted once; a file that does not
    hold such a line is a StateFileError.
    """

    def __init__(self, monotonic: Callable[[], float], path: Path | None = None) -> None:
        self._monotonic = monotonic
        self._count, self._booted_at = 1, monotonic()
        self._fd: int | None = None
        if path is not None:
            text = read_state(path)
            if text is not None:
                self._count, uptime = _parse_boots(path, text)
                self._booted_at -= uptime
            self._fd = open_regular(path, os.O_RDWR | os.O_CREAT)
            self.save()

    @property
    def count(self) -> int:
        """Boots since power-up."""
        return self._count

    def uptime(self) -> float:
        """Seconds on the monotonic clock since the last boot."""
        return max(0.0, self._monotonic() - self._booted_at)

    def state(self) -> tuple[int, float]:
        """The count and the monotonic time of the last boot, for a snapshot."""
        return self._count, self._booted_at

    def load(self, state: tuple[int, float]) -> None:
        """Put back what `state` captured (written through if it differs: a sweep restores a
        snapshot at every cut point)."""
        if state != (self._count, self._booted_at):
            self._count, self._booted_at = state
            self.save()

    def booted(self, *, power_up: bool = False) -> None:
        """Count a boot happening now: the first since power-up if `power_up`."""
        self._count = 1 if power_up else self._count + 1
        self._booted_at = self._monotonic()
        self.save()

    def save(self) -> None:
        """Write the count and the uptime reached to the file, if any."""
        if self._fd is not None:
            line = f"boot_count={self._count} uptime_s={self.uptime():.6f}\n".encode("ascii")
            os.pwrite(self._fd, line, 0)
            os.ftruncate(self._fd, len(line))

    def close(self) -> None:
        """Save, then close the backing file, if any."""
        if self._fd is not None:
            self.save()
            os.close(self._fd)
            self._fd = None


def _parse_boots(path: Path, text: str) -> tuple[int, float]:
    match = _BOOT_LINE.fullmatch(text)
    if match is None:
        raise StateFileError(f"{path}: {text[:40]!r} is not 'boot_count=N uptime_s=S'")
    return int(match[1]), float(match[2])


class SoftResetController:
    """Resets the machine through `perform`; reports the last cause, the boot count and the
    uptime from the registers."""

    def __init__(
        self,
        rail: PowerRail,
        register: ResetCauseRegister,
        perform: Callable[[ResetCause], None],
        boots: BootRegister,
    ) -> None:
        self._rail = rail
        self._register = register
        self._perform = perform
        self._boots = boots

    def request_reset(self, cause: ResetCause = ResetCause.SOFTWARE) -> None:
        """Reset now: flash and OTP kept, RAM lost, the cause recorded, the boot hook re-run.
        HalError for cause POWER_ON, which only a power-up records."""
        cause = ResetCause(cause)
        if cause is ResetCause.POWER_ON:
            raise HalError("a reset cannot be asked for with cause POWER_ON: only a power-up "
                           "records it")
        self._rail.require("reset request")
        self._perform(cause)

    def last_cause(self) -> ResetCause:
        """The cause of the most recent reset (POWER_ON on a fresh machine)."""
        self._rail.require("reset cause read")
        return self._register.cause

    def boot_count(self) -> int:
        """Boots since power-up (1 on a fresh machine)."""
        self._rail.require("boot count read")
        return self._boots.count

    def uptime(self) -> float:
        """Seconds on the machine's monotonic clock since its last boot."""
        self._rail.require("uptime read")
        return self._boots.uptime()
