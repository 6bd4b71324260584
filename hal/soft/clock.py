"""A virtual clock: time moves only when someone sleeps or advances it, and then instantly."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

#: Wall time a fresh software machine starts at: 2025-02-01T00:00:00Z, the month the
#: certificate-store update this project rehearses was shipped.
DEFAULT_WALL_START = datetime(2025, 2, 1, tzinfo=UTC)

Alarm = Callable[[], None]


@dataclass(frozen=True)
class ClockState:
    """What a snapshot keeps of a clock: the wall time at monotonic zero, and monotonic time."""

    wall_base: float
    monotonic: float


def _as_epoch(when: float | datetime) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("wall time must be timezone-aware (UTC)")
        return when.timestamp()
    return float(when)


class VirtualClock:
    """Wall time (UTC seconds since the epoch) and monotonic seconds, both virtual.

    Monotonic time starts at 0. `advance`/`sleep` move both clocks by the same amount and fire
    any alarm that falls due on the way, in order, with the clock reading the alarm's time. An
    alarm set with `interrupts` (a watchdog bite: the machine resets) ends a `sleep` at its
    moment, since the code that slept is gone; `advance` (time passing for the whole machine)
    goes on to its end.
    """

    def __init__(self, wall_start: float | datetime = DEFAULT_WALL_START) -> None:
        self._monotonic = 0.0
        self._wall_base = _as_epoch(wall_start)
        self._alarms: dict[str, tuple[float, Alarm, bool]] = {}

    def wall(self) -> float:
        """UTC seconds since the epoch."""
        return self._wall_base + self._monotonic

    def monotonic(self) -> float:
        """Seconds since the machine was created; never goes back (except by `load`)."""
        return self._monotonic

    def set_wall(self, when: float | datetime) -> None:
        """Set the wall clock (like an RTC being set); monotonic time is untouched."""
        self._wall_base = _as_epoch(when) - self._monotonic

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass, instantly, as `advance` does; but an interrupting alarm that falls
        due (a watchdog bite) ends the sleep there: the clock then reads the alarm's moment (or
        later, if what the alarm ran slept itself)."""
        self._move(seconds, interruptible=True)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (>= 0), firing alarms that fall due on the way.

        An exception out of an alarm (PowerLoss from a boot hook run by a watchdog bite, say)
        propagates, and time then stands at that alarm's moment.
        """
        self._move(seconds, interruptible=False)

    def _move(self, seconds: float, *, interruptible: bool) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"cannot advance a clock by {seconds!r} seconds")
        target = self._monotonic + seconds
        while (due := self._next_due(target)) is not None:
            name, at, alarm, interrupts = due
            del self._alarms[name]
            self._monotonic = max(self._monotonic, at)
            alarm()
            if interrupts and interruptible:
                return
        # An alarm (a reset's boot hook, say) may itself have slept past `target`.
        self._monotonic = max(self._monotonic, target)

    def set_alarm(self, name: str, at_monotonic: float, alarm: Alarm, *,
                  interrupts: bool = False) -> None:
        """Call `alarm` once monotonic time reaches `at_monotonic` (replacing alarm `name`);
        with `interrupts`, a `sleep` it falls due in ends there."""
        self._alarms[name] = (at_monotonic, alarm, interrupts)

    def cancel_alarm(self, name: str) -> None:
        """Forget the alarm called `name`, if any."""
        self._alarms.pop(name, None)

    def state(self) -> ClockState:
        """The clock's readings, for a snapshot (alarms belong to their owners' snapshots)."""
        return ClockState(self._wall_base, self._monotonic)

    def load(self, state: ClockState) -> None:
        """Put the clock back to `state`; alarms are dropped (their owners re-arm them)."""
        self._wall_base = state.wall_base
        self._monotonic = state.monotonic
        self._alarms.clear()

    def _next_due(self, target: float) -> tuple[str, float, Alarm, bool] | None:
        due = [(at, name) for name, (at, _alarm, _stops) in self._alarms.items() if at <= target]
        if not due:
            return None
        at, name = min(due)
        _at, alarm, interrupts = self._alarms[name]
        return name, at, alarm, interrupts
