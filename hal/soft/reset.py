"""The reset controller and its cause register, which survives resets (and, on disk, processes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hal.errors import HalError, StateFileError
from hal.interfaces import ResetCause
from hal.soft.power import PowerRail

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
            if path.exists():
                self._cause = _parse_cause(path)
            elif not create:
                raise StateFileError(f"{path}: no reset-cause file")
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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


def _parse_cause(path: Path) -> ResetCause:
    name = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        return ResetCause[name]
    except KeyError:
        raise StateFileError(f"{path}: {name!r} is not a reset cause") from None


class SoftResetController:
    """Resets the machine through `perform` and reports the last cause from the register."""

    def __init__(
        self,
        rail: PowerRail,
        register: ResetCauseRegister,
        perform: Callable[[ResetCause], None],
    ) -> None:
        self._rail = rail
        self._register = register
        self._perform = perform

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
