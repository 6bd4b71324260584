"""The hardware interfaces the device model is written against.

Every backend (the software machine, the serial board link) implements these protocols; one
contract test suite runs against each of them.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from policy.interrupts import interrupts_deferred


class Closeable(abc.ABC):
    """Holds files, ports or threads until `close`; as a context manager, closed on the way out
    (whether or not the block raised)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the object holds; it must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with interrupts_deferred():  # a Ctrl-C waits until what is held is released
            self.close()


@dataclass(frozen=True)
class FlashGeometry:
    """Size of a NOR flash and its erase and program granularity, in bytes."""

    size: int = 16 * 1024 * 1024
    sector_size: int = 4096
    page_size: int = 256


class ResetCause(enum.IntEnum):
    """Why the device last came out of reset."""

    POWER_ON = 0
    SOFTWARE = 1
    WATCHDOG = 2
    POWER_LOSS = 3


@runtime_checkable
class Flash(Protocol):
    """NOR flash: erases to 0xFF by whole aligned sector, programs only clear bits within a page."""

    @property
    def geometry(self) -> FlashGeometry: ...

    def read(self, offset: int, length: int) -> bytes:
        """Return `length` bytes from `offset`; FlashError if out of range."""

    def program(self, offset: int, data: bytes) -> None:
        """Clear bits so the range reads `data`; may span pages (split internally).

        FlashError if any byte would need a 0 -> 1 transition or the range is out of bounds.
        """

    def erase(self, offset: int, length: int) -> None:
        """Erase whole sectors to 0xFF; `offset` and `length` must be sector aligned."""

    def hash(self, offset: int, length: int) -> bytes:
        """SHA-256 of a flash range, computed where the flash is (no bulk transfer)."""


@runtime_checkable
class Otp(Protocol):
    """One-time-programmable fuses: 32-bit words whose bits only ever go 0 -> 1."""

    @property
    def word_count(self) -> int: ...

    def read_word(self, index: int) -> int:
        """Return fuse word `index`."""

    def blow(self, index: int, bits: int) -> None:
        """Set `bits` in word `index` (bits already set stay set; nothing is ever cleared)."""


@runtime_checkable
class ResetController(Protocol):
    """Requests resets and reports why the last one happened, how many boots there have been
    and how long ago the last one was."""

    def request_reset(self, cause: ResetCause = ResetCause.SOFTWARE) -> None:
        """Reset the device: flash and OTP kept, RAM lost, the boot hook re-run. Any cause but
        POWER_ON (HalError), which only a power-up records."""

    def last_cause(self) -> ResetCause:
        """The cause of the most recent reset."""

    def boot_count(self) -> int:
        """Boots since the device was powered up: 1 after a power-up, one more for every
        reset, watchdog bite or power loss after it (docs/serial-protocol.md §9)."""

    def uptime(self) -> float | None:
        """Seconds since the last boot on the device's monotonic clock (a change of the wall
        clock does not move it); None where the device cannot tell (an older board)."""


@runtime_checkable
class Clock(Protocol):
    """Wall time (UTC, seconds since the epoch) and a monotonic counter (seconds)."""

    def wall(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass (instantly on a virtual clock)."""


@runtime_checkable
class Console(Protocol):
    """The device's log output."""

    def log(self, line: str) -> None:
        """Log `line`: one line per ``\n``-separated part (only ``\n`` separates)."""

    def lines(self) -> list[str]:
        """The lines kept since the machine was powered up, oldest first (boot banners
        included): every one on the software machine; a board keeps at least its last 64."""


@runtime_checkable
class Watchdog(Protocol):
    """A watchdog that resets the device with cause WATCHDOG unless kicked in time."""

    def start(self, timeout_s: float) -> None: ...

    def kick(self) -> None: ...

    def stop(self) -> None: ...


BootHook = Callable[["Machine"], None]
#: Told `(what, done, total)` as a long flash transfer goes (what: "read", "program" or
#: "erase"; done and total in bytes), by a backend whose transfers take time (a serial board).
FlashProgress = Callable[[str, int, int], None]


@runtime_checkable
class Machine(Protocol):
    """A whole device as the model sees it: its peripherals and its reset behaviour.

    The peripherals are read-only attributes, so a backend may expose richer concrete types
    (the software machine's flash, say) and still satisfy this protocol under mypy.
    """

    @property
    def flash(self) -> Flash: ...

    @property
    def otp(self) -> Otp: ...

    @property
    def reset(self) -> ResetController: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def console(self) -> Console: ...

    @property
    def watchdog(self) -> Watchdog: ...

    def set_boot_hook(self, hook: BootHook | None) -> None:
        """Register what runs on every reset (the device's boot path)."""

    def close(self) -> None:
        """Release files, ports and threads the machine holds."""
