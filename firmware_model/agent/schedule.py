"""The update schedule: when a device checks its feed, run on the device's own clock.

Microsoft: "Azure Sphere devices check for updates when they first connect to the internet after
powering on or after the Reset button is pressed. Thereafter, checks occur at regular intervals
(currently 20 hours)." (docs/device.md, "When the device checks for updates"). So:

    report = run_schedule(Updater(device), feed, hours=45, on_check=print)

connects the device for `hours` of its clock (the start of a run is its first connection since
it booted: between commands the model's device is offline) and checks at once, then every
`check_interval_hours` (20) after the previous check, until the run's end (a check falling due
at the end itself is made). An update that installs resets the device, and the device checks
again at its first connection after that reset: at once. A check that is refused or finds the
feed unavailable is recorded, and the next one comes at the regular interval; so does the check
after an update that failed its trial boot (the model does not retry it at once: it would find
the same update, and the device would loop without its clock moving). A device that does not
come back from a reset ends the run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_model.agent.feed import Feed
from firmware_model.agent.updater import UpdateOutcome, Updater, UpdateResult
from firmware_model.device.tls import as_utc, iso
from firmware_model.errors import FwModelError

#: The longest run `run_schedule` takes, in hours of device time (about eleven years: 5,000
#: checks at the documented 20 hours).
MAX_RUN_HOURS = 100_000.0
#: The most checks a run may schedule at its interval (hours / interval): a tiny interval
#: would otherwise make a run that never ends.
MAX_SCHEDULED_CHECKS = 10_000


class Reason(enum.Enum):
    """Why a check happened when it did."""

    FIRST_CONNECTION = "first-connection"  # the first connection since the device booted
    INTERVAL = "interval"  # the check interval has passed since the previous check


@dataclass(frozen=True)
class ScheduledCheck:
    """One check of a run: when (device time, uptime, boot), why, and how it ended (a result,
    or the typed error that refused it)."""

    at: float
    boot_count: int
    uptime_s: float | None
    reason: Reason
    result: UpdateResult | None = None
    error: FwModelError | None = None

    @property
    def outcome(self) -> str:
        """`no-update`, `installed`, `reverted`, or `failed` (see `error`)."""
        return "failed" if self.result is None else self.result.outcome.value

    def to_json(self) -> dict[str, object]:
        error = self.error
        return {"time": iso(as_utc(self.at)), "boot_count": self.boot_count,
                "uptime_s": None if self.uptime_s is None else round(self.uptime_s, 3),
                "reason": self.reason.value, "outcome": self.outcome,
                "result": None if self.result is None else self.result.to_json(),
                "error": None if error is None else {"type": type(error).__name__,
                                                     "message": str(error)}}


@dataclass
class RunReport:
    """What a run did: its span of device time, every check, and the failure that halted the
    device if one did."""

    hours: float
    interval_hours: float
    started: float
    ended: float = 0.0
    checks: list[ScheduledCheck] = field(default_factory=list)
    halted: FwModelError | None = None

    @property
    def first_failure(self) -> FwModelError | None:
        """The first check's error, or what halted the device; None if every check went well."""
        return next((c.error for c in self.checks if c.error is not None), self.halted)

    def to_json(self) -> dict[str, object]:
        halted = self.halted
        return {"hours": self.hours, "interval_hours": self.interval_hours,
                "started": iso(as_utc(self.started)), "ended": iso(as_utc(self.ended)),
                "checks": [check.to_json() for check in self.checks],
                "halted": None if halted is None else f"{type(halted).__name__}: {halted}"}


OnCheck = Callable[[ScheduledCheck], None]


def run_schedule(updater: Updater, feed: Feed, hours: float,
                 on_check: OnCheck | None = None) -> RunReport:
    """Run the device `hours` on its clock, checking `feed` on the schedule of the module doc;
    `on_check` is told of each check as it ends. ValueError for hours outside
    0..MAX_RUN_HOURS, or more than MAX_SCHEDULED_CHECKS intervals in them. HAL errors (a lost
    board) propagate; a refused check does not."""
    check_scheduling(hours, updater.settings.check_interval_hours)
    clock = updater.device.machine.clock
    interval = updater.settings.check_interval_hours * 3600
    report = RunReport(hours, updater.settings.check_interval_hours, clock.wall())
    end, due, reason = clock.monotonic() + hours * 3600, clock.monotonic(), Reason.FIRST_CONNECTION
    while due <= end and report.halted is None:
        clock.sleep(max(0.0, due - clock.monotonic()))
        check = _check(updater, feed, reason)
        report.checks.append(check)
        if on_check is not None:
            on_check(check)
        if updater.device.ram is None:  # it did not come back from the update's reset
            report.halted = updater.device.boot_failure or check.error
        elif check.outcome == UpdateOutcome.INSTALLED.value:  # reset: connects again at once
            due, reason = clock.monotonic(), Reason.FIRST_CONNECTION
        else:  # the interval counts from the check's end (a deferred install takes time)
            due, reason = clock.monotonic() + interval, Reason.INTERVAL
    if report.halted is None:
        clock.sleep(max(0.0, end - clock.monotonic()))
    report.ended = clock.wall()
    return report


def check_scheduling(hours: float, interval_hours: float) -> None:
    """ValueError unless a run of `hours` checking every `interval_hours` can be run."""
    if not 0 <= hours <= MAX_RUN_HOURS:
        raise ValueError(f"a run of {hours!r} hours: it must be 0..{MAX_RUN_HOURS:g}")
    if not interval_hours > 0 or hours / interval_hours > MAX_SCHEDULED_CHECKS:
        raise ValueError(f"checks every {interval_hours!r} hours for {hours:g} hours: at most "
                         f"{MAX_SCHEDULED_CHECKS:,} checks a run")


def _check(updater: Updater, feed: Feed, reason: Reason) -> ScheduledCheck:
    machine = updater.device.machine
    at, boots, uptime = machine.clock.wall(), machine.reset.boot_count(), machine.reset.uptime()
    try:
        result = updater.check_for_update(feed)
    except FwModelError as error:
        return ScheduledCheck(at, boots, uptime, reason, error=error)
    return ScheduledCheck(at, boots, uptime, reason, result)
