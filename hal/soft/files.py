"""The files a software machine keeps a device in, beside its flash file FLASH: one list of them.

    FLASH           the flash bytes (erased = 0xFF)
    FLASH.otp       the fuse words, little-endian u32 each
    FLASH.reset     the last reset cause's name, left-justified to 15 characters, then a newline
    FLASH.clock     the wall clock, ISO 8601 UTC (`datetime.isoformat()`), then a newline
    FLASH.boot      `boot_count=N uptime_s=S` and a newline: boots since power-up, and seconds
                    on the monotonic clock since the last one (hal.soft.reset.BootRegister)

The board agents in C read and write the same files but FLASH.boot (docs/board.md), so any
agent can serve any device; a board agent counts boots in its own RAM from its start, which is
a power-up (docs/serial-protocol.md §9), and leaves FLASH.boot as it was.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

from hal.errors import StateFileError
from policy.files import open_regular, read_regular

#: The most bytes a state file beside FLASH may hold (each is one short line).
STATE_LIMIT = 4096

OTP, RESET, CLOCK, BOOT = ".otp", ".reset", ".clock", ".boot"
#: Every file beside FLASH, in the order they are made.
SUFFIXES = (OTP, RESET, BOOT, CLOCK)


def device_files(flash: Path) -> list[Path]:
    """FLASH and every file beside it that keeps part of the device (present or not)."""
    return [flash, *(flash.with_name(flash.name + suffix) for suffix in SUFFIXES)]


def sidecar(flash_path: Path | None, suffix: str) -> Path | None:
    """The file beside the flash file that keeps another part of the device's state."""
    return None if flash_path is None else flash_path.with_name(flash_path.name + suffix)


def read_state(path: Path) -> str | None:
    """The text of the state file `path` (one short ASCII line, stripped), None if absent.
    OSError if it is not a regular file (a FIFO, a device) or is larger than STATE_LIMIT."""
    try:
        return read_regular(path, STATE_LIMIT).decode("ascii", errors="replace").strip()
    except FileNotFoundError:
        return None


def load_wall(path: Path) -> float | None:
    """The wall time (epoch seconds) saved in `path`, None if there is no such file.

    StateFileError if it does not hold an ISO 8601 date-time with a time zone.
    """
    text = read_state(path)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise StateFileError(f"{path}: {text[:40]!r} is not an ISO 8601 time with a time zone")
    return when.timestamp()


def check_saveable(path: Path) -> None:
    """Fail now (OSError) where `save_wall(path, ...)` would fail at the end of a command,
    after the device has changed: an existing file that cannot be opened for writing (an
    immutable one cannot be replaced either) or a folder that takes no new file."""
    with contextlib.suppress(FileNotFoundError):
        os.close(open_regular(path, os.O_RDWR))
    temp = _temp_of(path)
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    os.unlink(temp)


def _temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_wall(path: Path, wall: float) -> None:
    """Save the wall time `wall` (epoch seconds) to `path`, for `load_wall`: written beside it
    and renamed over it, so an interrupted save leaves the old time, never a torn file.

    StateFileError if `wall` is outside the years 1..9999 that ISO 8601 writes.
    """
    try:
        text = datetime.fromtimestamp(wall, UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        raise StateFileError(f"{path}: the wall time {wall!r} is outside years 1..9999") from None
    temp = _temp_of(path)
    temp.write_text(text + "\n", encoding="ascii")
    os.replace(temp, path)
