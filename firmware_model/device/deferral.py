"""Offering an install to the apps, on the device's clock: UpdateReadyForInstall Pending, the
deferrals the apps ask for, Final, the install (docs/device.md, SysEvent, has the sources).

- The allowance runs from when the device learned of the update (`learned_at`, when it sent
  UpdateStarted): 1,440 minutes for a system update, 10,020 for an application update, however
  many deferrals it takes.
- Pending tells the apps the allowance left (whole minutes). Each app may defer
  (`firmware_model.device.sysevent`); the update waits until every deferral in force has ended.
  When the last one runs out, the apps get Pending again and may defer again; when an app
  resumes the last one, or when the allowance has less than a minute left, Final follows.
- Pending and Final are 10-second warnings: a Pending nobody defers is followed by Final 10 s
  later, and the install happens 10 s after Final.
- `Complete` follows an application update's install only: a system update's install is a
  reboot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from firmware_model.device.sysevent import (
    MAX_APP_DEFERRAL_MINUTES,
    MAX_SYSTEM_DEFERRAL_MINUTES,
    DeviceApp,
    EventStatus,
    Offer,
    Release,
    SysEvent,
    SysEventBus,
    SysEventInfo,
    UpdateType,
)
from hal.interfaces import Clock

#: How long Pending and Final warn before the event happens (seconds).
WARNING_S = 10.0


def allowance_minutes(update_type: UpdateType) -> int:
    """The longest an update of `update_type` may be deferred in all."""
    if update_type is UpdateType.SYSTEM:
        return MAX_SYSTEM_DEFERRAL_MINUTES
    return MAX_APP_DEFERRAL_MINUTES


@dataclass(frozen=True)
class OfferReport:
    """How an offer went, in device time: when the device learned of the update, the allowance,
    how long deferrals held the update, when Final was sent and when the install came."""

    learned_at: float
    allowance_minutes: int
    deferred_minutes: float
    final_at: float
    install_at: float

    def to_json(self) -> dict[str, object]:
        return {"learned_at": self.learned_at, "allowance_minutes": self.allowance_minutes,
                "deferred_minutes": self.deferred_minutes, "final_at": self.final_at,
                "install_at": self.install_at}


def offer_install(bus: SysEventBus, clock: Clock, update_type: UpdateType, learned_at: float,
                  allowance: int | None = None) -> OfferReport:
    """Offer the install of an update the device learned of at `learned_at` (device time) to
    the apps on `bus` and wait it out on `clock` (see module doc); returns at the install.

    `allowance` overrides the documented allowance (minutes). For an application update, the
    apps are sent Complete once it is installed (at the returned `install_at`).
    """
    minutes = allowance_minutes(update_type) if allowance is None else allowance
    offer = Offer(update_type, learned_at + minutes * 60.0)
    bus.offer = offer
    try:
        while _round(bus, clock, offer):
            pass
        final_at = clock.wall()
        bus.send_update(EventStatus.FINAL)
        _wait_until(bus, clock, final_at + WARNING_S)
        install_at = clock.wall()
        if update_type is UpdateType.APP:
            bus.send_update(EventStatus.COMPLETE)
    finally:
        bus.close_offer()
    return OfferReport(learned_at, minutes, offer.deferred_s / 60, final_at, install_at)


def _round(bus: SysEventBus, clock: Clock, offer: Offer) -> bool:
    """One Pending and what follows; True if the apps get Pending again (a deferral ran out)."""
    now = clock.wall()
    left = offer.deadline - now
    if left < 60.0:
        return False
    offer.held_since, offer.released, offer.max_minutes = None, None, int(left // 60)
    bus.send_update(EventStatus.PENDING, offer.max_minutes)
    window_end = now + WARNING_S
    while True:
        now = clock.wall()
        held = bus.holds(now)
        if not held and offer.held_since is not None:
            offer.deferred_s += now - offer.held_since
            return offer.released is Release.EXPIRED
        target = max(held) if held else window_end
        due = bus.next_timer()
        if due is not None and due < target:
            _sleep_until(clock, due)
            bus.run_timers(clock.wall())
            continue
        _sleep_until(clock, target)
        if not held:
            return False  # the 10 s went by and nobody deferred


def _wait_until(bus: SysEventBus, clock: Clock, until: float) -> None:
    """Let time pass until `until`, running the apps' timers that fall due meanwhile."""
    while (due := bus.next_timer()) is not None and due < until:
        _sleep_until(clock, due)
        bus.run_timers(clock.wall())
    _sleep_until(clock, until)


def _sleep_until(clock: Clock, when: float) -> None:
    delta = when - clock.wall()
    if delta > 0:
        clock.sleep(delta)


class DeferringApp:
    """An app's deferral wishes, as its callback: on the n-th Pending of an update it defers by
    `defers[n]` minutes (none left, or 0: it lets the update go); with `resume_after`, its
    timer calls ResumeEvent that many minutes after the update's first Pending (refused unless
    a deferral of its own is then in force).

        device.bus.register(DeferringApp(60))                  # both capabilities
        device.bus.add_app(manifest).register_for_event_notifications(DeferringApp([60, 60]))
    """

    def __init__(self, defers: int | Sequence[int] = (), resume_after: float | None = None
                 ) -> None:
        self.defers: tuple[int, ...] = (defers,) if isinstance(defers, int) else tuple(defers)
        self.resume_after = resume_after
        self.pendings = 0

    def __call__(self, info: SysEventInfo, app: DeviceApp) -> None:
        if info.event is SysEvent.UPDATE_STARTED:
            self.pendings = 0
        if info.event is not SysEvent.UPDATE_READY_FOR_INSTALL \
                or info.status is not EventStatus.PENDING:
            return
        index, self.pendings = self.pendings, self.pendings + 1
        if index < len(self.defers) and self.defers[index]:
            app.defer_event(SysEvent.UPDATE_READY_FOR_INSTALL, self.defers[index])
        if index == 0 and self.resume_after is not None:
            app.set_timer(self.resume_after,
                          lambda: app.resume_event(SysEvent.UPDATE_READY_FOR_INSTALL))
