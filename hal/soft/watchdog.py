"""A watchdog on the virtual clock: unless kicked within its timeout, it resets the machine."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from hal.errors import HalError
from hal.soft.clock import VirtualClock
from hal.soft.power import PowerRail

_ALARM = "watchdog"


@dataclass(frozen=True)
class WatchdogState:
    """A running watchdog, for a snapshot: its timeout and when it bites (monotonic seconds)."""

    timeout_s: float
    deadline: float


class VirtualWatchdog:
    """Bites (calls `on_bite`, which resets the machine with cause WATCHDOG) at its deadline.

    The deadline is `timeout_s` after the last `start` or `kick`; it is only ever noticed when
    the virtual clock is advanced past it, and the bite happens with the clock at the deadline.
    A bite ends a `sleep` it falls in (the clock stays at the deadline); `advance` goes on.
    A bite, a reset and a power cut all leave the watchdog stopped.
    """

    def __init__(self, clock: VirtualClock, rail: PowerRail, on_bite: Callable[[], None]) -> None:
        self._clock = clock
        self._rail = rail
        self._on_bite = on_bite
        self._state: WatchdogState | None = None

    @property
    def running(self) -> bool:
        """True between `start` and a `stop`, bite, reset or power cut."""
        return self._state is not None

    def start(self, timeout_s: float) -> None:
        """Start (or restart) with a new timeout, counted from now."""
        self._rail.require("watchdog start")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise HalError(f"watchdog timeout must be a positive number of seconds: {timeout_s!r}")
        self._arm(timeout_s)

    def kick(self) -> None:
        """Push the deadline to `timeout_s` from now; does nothing while stopped."""
        self._rail.require("watchdog kick")
        if self._state is not None:
            self._arm(self._state.timeout_s)

    def stop(self) -> None:
        """Stop the watchdog."""
        self._rail.require("watchdog stop")
        self.halt()

    def halt(self) -> None:
        """Stop without needing power (what a reset or a power cut does to the watchdog)."""
        self._state = None
        self._clock.cancel_alarm(_ALARM)

    def state(self) -> WatchdogState | None:
        """The running watchdog's timeout and deadline, or None when stopped."""
        return self._state

    def load(self, state: WatchdogState | None) -> None:
        """Put the watchdog back to `state` (call after the clock has been loaded)."""
        self.halt()
        if state is not None:
            self._state = state
            self._clock.set_alarm(_ALARM, state.deadline, self._bite, interrupts=True)

    def _arm(self, timeout_s: float) -> None:
        self.load(WatchdogState(timeout_s, self._clock.monotonic() + timeout_s))

    def _bite(self) -> None:
        self._state = None
        self._on_bite()
