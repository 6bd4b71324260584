"""SysEvent as Microsoft documents it, on a bare bus and a virtual clock (no images needed):
the 1,440-minute allowance counted from when the device learned of the update and spent over
several deferrals, Pending and Final as 10-second warnings, Deferred sent, no Complete for a
system update, the capabilities, the errno of each refused call, several apps."""

from __future__ import annotations

from errno import EACCES, EINVAL

import pytest

from firmware_model.device.appmanifest import AppManifest
from firmware_model.device.deferral import (
    WARNING_S,
    DeferringApp,
    OfferReport,
    allowance_minutes,
    offer_install,
)
from firmware_model.device.sysevent import (
    DeviceApp,
    EventStatus,
    SysEvent,
    SysEventBus,
    SysEventCall,
    SysEventInfo,
    UpdateType,
)
from hal.soft.clock import VirtualClock

MINUTE = 60.0
READY = SysEvent.UPDATE_READY_FOR_INSTALL
NOTIFY_ONLY = AppManifest("notify-only", system_event_notifications=True)
DEFER_ONLY = AppManifest("defer-only", software_update_deferral=True)
NEITHER = AppManifest("neither")


def new_bus() -> tuple[SysEventBus, VirtualClock]:
    clock = VirtualClock()
    return SysEventBus(clock), clock


def add(bus: SysEventBus, manifest: AppManifest, wishes: DeferringApp | None = None
        ) -> DeviceApp:
    app = bus.add_app(manifest)
    app.register_for_event_notifications(wishes or DeferringApp())
    return app


def offer(bus: SysEventBus, clock: VirtualClock, update_type: UpdateType = UpdateType.SYSTEM,
          learned_ago_minutes: float = 0.0) -> OfferReport:
    """Learn of an update (UpdateStarted) `learned_ago_minutes` ago, then offer its install."""
    learned = clock.wall() - learned_ago_minutes * MINUTE
    bus.send(SysEventInfo(SysEvent.UPDATE_STARTED, EventStatus.PENDING, None, 0, learned))
    return offer_install(bus, clock, update_type, learned)


def timeline(app: DeviceApp, start: float) -> list[tuple[float, str]]:
    """(minutes since `start`, what) for everything in the app's log."""
    out = []
    for entry in app.log:
        if isinstance(entry, SysEventInfo):
            what = f"{entry.status.value} {entry.max_deferral_minutes}" \
                if entry.status is EventStatus.PENDING else entry.status.value
            if entry.event is READY:
                out.append(((entry.at - start) / MINUTE, what))
        elif entry.call != "RegisterForEventNotifications":
            out.append(((entry.at - start) / MINUTE, f"{entry.call} {entry.errno}"))
    return out


def calls(app: DeviceApp, name: str) -> list[SysEventCall]:
    return [e for e in app.log if isinstance(e, SysEventCall) and e.call == name]


# --- the allowance -------------------------------------------------------------------------


def test_a_system_update_may_be_deferred_1440_minutes_in_all_over_several_deferrals() -> None:
    bus, clock = new_bus()
    start = clock.wall()
    app = add(bus, AppManifest.deferring("a"), DeferringApp([600, 600, 600, 600]))
    report = offer(bus, clock)
    defers = calls(app, "DeferEvent")
    assert [c.granted_minutes for c in defers] == [600, 600, 240]  # the third is truncated
    assert defers[2].why == "truncated to the 240 minutes left"
    pendings = [e for e in app.log if isinstance(e, SysEventInfo)
                and e.status is EventStatus.PENDING and e.event is READY]
    assert [p.max_deferral_minutes for p in pendings] == [1440, 840, 240]
    assert [(p.at - start) / MINUTE for p in pendings] == [0, 600, 1200]
    # the allowance is spent: Final at exactly 1,440 minutes, no Pending, no fourth deferral
    assert report.final_at - start == 1440 * MINUTE and report.deferred_minutes == 1440
    assert report.install_at - report.final_at == 10.0
    assert timeline(app, start)[-1] == (1440.0, "Final")


def test_a_deferral_past_the_allowance_is_truncated_to_it() -> None:
    bus, clock = new_bus()
    app = add(bus, AppManifest.deferring("a"), DeferringApp(5000))
    report = offer(bus, clock)
    (defer,) = calls(app, "DeferEvent")
    assert (defer.requested_minutes, defer.granted_minutes) == (5000, 1440)
    assert report.deferred_minutes == 1440 and report.allowance_minutes == 1440


def test_the_allowance_counts_from_when_the_device_learned_of_the_update() -> None:
    bus, clock = new_bus()
    app = add(bus, AppManifest.deferring("a"), DeferringApp(1440))
    report = offer(bus, clock, learned_ago_minutes=600)  # e.g. a download that took 10 hours
    pending = next(e for e in app.log if isinstance(e, SysEventInfo) and e.event is READY)
    assert pending.max_deferral_minutes == 840
    assert calls(app, "DeferEvent")[0].granted_minutes == 840
    assert report.final_at - report.learned_at == 1440 * MINUTE


def test_an_update_learned_of_1440_minutes_ago_goes_final_without_a_pending() -> None:
    bus, clock = new_bus()
    app = add(bus, AppManifest.deferring("a"), DeferringApp(60))
    offer(bus, clock, learned_ago_minutes=1440)
    assert [what for _, what in timeline(app, clock.wall())] == ["Final"]


def test_an_application_update_may_be_deferred_10020_minutes_and_ends_with_complete() -> None:
    assert allowance_minutes(UpdateType.APP) == 10020
    assert allowance_minutes(UpdateType.SYSTEM) == 1440
    bus, clock = new_bus()
    start = clock.wall()
    app = add(bus, AppManifest.deferring("a"), DeferringApp(20000))
    report = offer(bus, clock, UpdateType.APP)
    assert calls(app, "DeferEvent")[0].granted_minutes == 10020
    assert [what for _, what in timeline(app, start)][-2:] == ["Final", "Complete"]
    assert report.final_at == start + 10020 * MINUTE
    assert report.install_at == report.final_at + WARNING_S == app.log[-1].at


# --- 10-second warnings, Deferred, no Complete ----------------------------------------------


def test_pending_and_final_are_10_second_warnings_on_the_device_clock() -> None:
    bus, clock = new_bus()
    start = clock.wall()
    app = add(bus, AppManifest.deferring("a"))  # an app that never defers
    report = offer(bus, clock)
    assert timeline(app, start) == [(0.0, "Pending 1440"), (10 / MINUTE, "Final")]
    assert report.final_at - start == 10.0 and report.install_at - report.final_at == 10.0
    assert report.deferred_minutes == 0


def test_each_deferral_is_reported_as_deferred_to_every_registered_app() -> None:
    bus, clock = new_bus()
    deferring = add(bus, AppManifest.deferring("a"), DeferringApp([30, 30]))
    listening = add(bus, NOTIFY_ONLY)
    deaf = add(bus, NEITHER)
    offer(bus, clock)
    for app in (deferring, listening):
        statuses = [e.status for e in app.log if isinstance(e, SysEventInfo) and e.event is READY]
        assert statuses == [EventStatus.PENDING, EventStatus.DEFERRED] * 2 + [
            EventStatus.PENDING, EventStatus.FINAL]
    assert not any(isinstance(e, SysEventInfo) for e in deaf.log)


def test_a_system_update_never_sends_complete() -> None:
    bus, clock = new_bus()
    add(bus, AppManifest.deferring("a"), DeferringApp([60, 0], resume_after=90))
    offer(bus, clock)
    assert EventStatus.COMPLETE not in {info.status for info in bus.sent}
    assert {info.update_type for info in bus.sent if info.event is READY} == {UpdateType.SYSTEM}
    with pytest.raises(ValueError, match="application updates only"):
        bus.send(SysEventInfo(READY, EventStatus.COMPLETE, UpdateType.SYSTEM, 0, clock.wall()))


# --- the calls and their errno -------------------------------------------------------------


def test_resume_succeeds_only_while_a_deferral_of_the_app_is_in_force() -> None:
    bus, clock = new_bus()
    start = clock.wall()
    app = add(bus, AppManifest.deferring("a"))
    assert app.resume_event(READY) == EINVAL  # no update at all
    seen: list[int] = []

    def wishes(info: SysEventInfo, me: DeviceApp) -> None:
        if info.event is READY and info.status is EventStatus.PENDING:
            seen.append(me.resume_event(READY))  # before any DeferEvent: refused
            seen.append(me.defer_event(READY, 60))
            me.set_timer(30, lambda: seen.append(me.resume_event(READY)))
            me.set_timer(30, lambda: seen.append(me.resume_event(READY)))  # resumed already

    app.register_for_event_notifications(wishes)
    report = offer(bus, clock)
    assert seen == [EINVAL, 0, 0, EINVAL]
    assert calls(app, "ResumeEvent")[0].why == "no deferral of this app is in force"
    # the resume lets the update go: Final at once, the install 10 s later
    assert report.final_at - start == 30 * MINUTE and report.deferred_minutes == 30
    assert report.install_at - report.final_at == 10.0


def test_a_resume_after_the_apps_own_deferral_ran_out_is_refused() -> None:
    bus, clock = new_bus()
    start = clock.wall()
    add(bus, AppManifest.deferring("a"), DeferringApp(60))
    b = add(bus, AppManifest.deferring("b"), DeferringApp(30, resume_after=45))
    report = offer(bus, clock)
    (resume,) = calls(b, "ResumeEvent")  # at 45: a holds the update, b's own ran out at 30
    assert (resume.errno, (resume.at - start) / MINUTE) == (EINVAL, 45)
    assert report.deferred_minutes == 60


def test_a_resume_during_the_apps_second_deferral_lets_the_update_go() -> None:
    bus, clock = new_bus()
    start = clock.wall()
    app = add(bus, AppManifest.deferring("a"), DeferringApp([30, 30], resume_after=45))
    report = offer(bus, clock)
    (resume,) = calls(app, "ResumeEvent")
    assert (resume.errno, (resume.at - start) / MINUTE) == (0, 45)
    assert report.final_at - start == 45 * MINUTE and report.deferred_minutes == 45


@pytest.mark.parametrize(("status_wanted", "event", "minutes", "why"), [
    (EventStatus.FINAL, READY, 60, "the update is not Pending (Final)"),
    (EventStatus.DEFERRED, READY, 60, "the update is not Pending (Deferred)"),
    (EventStatus.PENDING, SysEvent.UPDATE_STARTED, 60, "UpdateStarted cannot be deferred"),
    (EventStatus.PENDING, READY, 0, "0 is not 1..4294967295 minutes"),
])
def test_a_deferral_is_refused_with_einval_unless_the_update_is_pending(
    status_wanted: EventStatus, event: SysEvent, minutes: int, why: str
) -> None:
    bus, clock = new_bus()
    app = bus.add_app(AppManifest.deferring("a"))
    results: list[int] = []

    def wishes(info: SysEventInfo, me: DeviceApp) -> None:
        if info.event is not READY or results:
            return
        if info.status is status_wanted:
            results.append(me.defer_event(event, minutes))
        elif info.status is EventStatus.PENDING and not calls(me, "DeferEvent"):
            me.defer_event(READY, 5)  # a deferral of 5 minutes, so that Deferred comes

    app.register_for_event_notifications(wishes)
    offer(bus, clock)
    assert results == [EINVAL]
    assert why in [c.why for c in calls(app, "DeferEvent") if c.errno == EINVAL]


# --- the capabilities, both ways -----------------------------------------------------------


def test_an_app_without_system_event_notifications_is_told_nothing_and_cannot_defer() -> None:
    bus, clock = new_bus()
    for manifest in (DEFER_ONLY, NEITHER):
        app = bus.add_app(manifest)
        assert app.register_for_event_notifications(DeferringApp(60)) == EACCES
        assert app.defer_event(READY, 60) == EACCES and app.resume_event(READY) == EACCES
    report = offer(bus, clock)
    for app in bus.apps:
        assert not any(isinstance(e, SysEventInfo) for e in app.log)
        assert [c.errno for c in app.log if isinstance(c, SysEventCall)] == [EACCES] * 3
    assert report.deferred_minutes == 0


def test_an_app_without_software_update_deferral_is_told_but_cannot_defer() -> None:
    bus, clock = new_bus()
    app = add(bus, NOTIFY_ONLY, DeferringApp(60, resume_after=0))
    report = offer(bus, clock)
    assert [(c.call, c.errno, c.why) for c in app.log if isinstance(c, SysEventCall)][1:] == [
        ("DeferEvent", EACCES, "no SoftwareUpdateDeferral capability"),
        ("ResumeEvent", EACCES, "no SoftwareUpdateDeferral capability")]
    assert [what for _, what in timeline(app, clock.wall())][:1] == ["Pending 1440"]
    assert report.deferred_minutes == 0  # the update was not held


def test_an_app_with_both_capabilities_may_defer() -> None:
    bus, clock = new_bus()
    app = add(bus, AppManifest.deferring("a"), DeferringApp(60))
    assert calls(app, "RegisterForEventNotifications")[0].errno == 0
    assert offer(bus, clock).deferred_minutes == 60


# --- several apps --------------------------------------------------------------------------


def test_two_apps_the_install_waits_for_the_one_that_defers_twice() -> None:
    bus, clock = new_bus()
    start = clock.wall()
    a = add(bus, AppManifest.deferring("a"), DeferringApp([60, 60]))
    b = add(bus, AppManifest.deferring("b"), DeferringApp((), resume_after=0))
    report = offer(bus, clock)
    assert [c.granted_minutes for c in calls(a, "DeferEvent")] == [60, 60]
    assert [c.errno for c in calls(b, "ResumeEvent")] == [EINVAL]  # b never deferred
    assert [w for w in timeline(b, start) if w[1].startswith("Pending")] == [
        (0.0, "Pending 1440"), (60.0, "Pending 1380"), (120.0, "Pending 1320")]
    assert report.deferred_minutes == 120
    assert report.install_at - start == 120 * MINUTE + 2 * WARNING_S


def test_two_apps_deferring_at_once_hold_the_install_until_the_longer_ends() -> None:
    bus, clock = new_bus()
    start = clock.wall()
    add(bus, AppManifest.deferring("a"), DeferringApp(600))
    b = add(bus, AppManifest.deferring("b"), DeferringApp([60, 60]))
    report = offer(bus, clock)
    # b's first deferral ends at 60 under a's: no Pending then; b defers again at 600
    assert [w for w in timeline(b, start) if w[1].startswith("Pending")] == [
        (0.0, "Pending 1440"), (600.0, "Pending 840"), (660.0, "Pending 780")]
    assert [c.granted_minutes for c in calls(b, "DeferEvent")] == [60, 60]
    assert report.deferred_minutes == 660


def test_one_apps_resume_does_not_end_another_apps_deferral() -> None:
    bus, clock = new_bus()
    add(bus, AppManifest.deferring("a"), DeferringApp(600))
    b = add(bus, AppManifest.deferring("b"), DeferringApp(600, resume_after=5))
    report = offer(bus, clock)
    assert [c.errno for c in calls(b, "ResumeEvent")] == [0]
    assert report.deferred_minutes == 600


def test_the_longest_of_several_apps_is_still_bounded_by_the_allowance() -> None:
    bus, clock = new_bus()
    for name, wish in (("a", 1000), ("b", 1000)):
        add(bus, AppManifest.deferring(name), DeferringApp([wish, wish]))
    report = offer(bus, clock)
    assert report.deferred_minutes == 1440
    assert [[c.granted_minutes for c in calls(app, "DeferEvent")] for app in bus.apps] == [
        [1000, 440], [1000, 440]]
