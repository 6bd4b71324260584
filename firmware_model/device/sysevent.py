"""A model of Applibs SysEvent: the apps on a device, the update events they are told, and their
calls to defer and resume an update. `firmware_model.device.deferral` offers an install to them
on the device's clock; docs/device.md (SysEvent) says which rules are Microsoft's.

    app = device.bus.add_app(read_app_manifest(Path("app_manifest.json")))
    app.register_for_event_notifications(DeferringApp([60, 60]))    # 0, or EACCES

An app's calls return 0 or an errno, as the Applibs functions return -1 and set errno:
- RegisterForEventNotifications: EACCES without the SystemEventNotifications capability (the
  app is then told nothing);
- DeferEvent(UpdateReadyForInstall, minutes): EACCES without SystemEventNotifications and
  SoftwareUpdateDeferral; EINVAL (the model's choice: Microsoft says only that the call fails)
  when the update is not Pending for the app, for another event, or for 0 minutes. A deferral
  longer than the allowance left is truncated to it; on success every registered app is sent
  Deferred;
- ResumeEvent(UpdateReadyForInstall): EACCES as DeferEvent; EINVAL unless a deferral of this
  app's own is in force.
Apps are told in the order they were added; a notification sent while apps are being told (the
Deferred a DeferEvent causes) is delivered after them, as an event loop would.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from errno import EACCES, EINVAL, errorcode

from firmware_model.device.appmanifest import AppManifest
from firmware_model.device.tls import as_utc, iso
from hal.interfaces import Clock

#: The longest an app may defer an OS (system) update, and an application update, in minutes,
#: counted from when the device learned of the update.
MAX_SYSTEM_DEFERRAL_MINUTES = 1440
MAX_APP_DEFERRAL_MINUTES = 10020
#: The largest `requested_defer_time_in_minutes` (a uint32_t).
_UINT32_MAX = 0xFFFFFFFF


class SysEvent(enum.Enum):
    """SysEvent_Events (applibs/sysevent.h)."""

    UPDATE_READY_FOR_INSTALL = "UpdateReadyForInstall"
    UPDATE_STARTED = "UpdateStarted"
    NO_UPDATE_AVAILABLE = "NoUpdateAvailable"


class EventStatus(enum.Enum):
    """SysEvent_Status (applibs/sysevent.h)."""

    PENDING = "Pending"
    FINAL = "Final"
    DEFERRED = "Deferred"
    COMPLETE = "Complete"


class UpdateType(enum.Enum):
    """SysEvent_UpdateType (applibs/sysevent.h)."""

    APP = "App"
    SYSTEM = "System"


def _time(at: float) -> str:
    return iso(as_utc(at))


@dataclass(frozen=True)
class SysEventInfo:
    """One notification: which event, its status, and when (device time). `update_type` is set
    for UpdateReadyForInstall only (SysEvent_Info_GetUpdateData), `max_deferral_minutes` for
    its Pending only: the allowance left, in whole minutes."""

    event: SysEvent
    status: EventStatus
    update_type: UpdateType | None
    max_deferral_minutes: int
    at: float

    def to_json(self) -> dict[str, object]:
        return {"event": self.event.value, "status": self.status.value,
                "update_type": None if self.update_type is None else self.update_type.value,
                "max_deferral_minutes": self.max_deferral_minutes, "at": self.at,
                "time": _time(self.at)}


@dataclass(frozen=True)
class SysEventCall:
    """One call an app made: its name, when, what it asked and got, and its errno (0: it held)."""

    call: str  # "RegisterForEventNotifications", "DeferEvent", "ResumeEvent"
    at: float
    errno: int = 0
    why: str = ""  # why it was refused, or that a deferral was truncated
    requested_minutes: int | None = None
    granted_minutes: float | None = None

    @property
    def ok(self) -> bool:
        return self.errno == 0

    def to_json(self) -> dict[str, object]:
        return {"call": self.call, "at": self.at, "time": _time(self.at),
                "errno": errorcode.get(self.errno) if self.errno else None, "why": self.why,
                "requested_minutes": self.requested_minutes,
                "granted_minutes": self.granted_minutes}


Callback = Callable[[SysEventInfo, "DeviceApp"], None]
LogEntry = SysEventInfo | SysEventCall


class Release(enum.Enum):
    """How the last deferral in force ended."""

    EXPIRED = "expired"
    RESUMED = "resumed"


@dataclass
class Offer:
    """An UpdateReadyForInstall being offered: its allowance's deadline (device time) and how
    the current round of deferrals stands (`firmware_model.device.deferral` drives it)."""

    update_type: UpdateType
    deadline: float
    max_minutes: int = 0  # what the last Pending offered
    held_since: float | None = None  # the first grant of this round
    released: Release | None = None
    deferred_s: float = 0.0


@dataclass(eq=False)
class DeviceApp:
    """An app on the device: its manifest, its SysEvent calls, and what it was told (`log`)."""

    manifest: AppManifest
    bus: SysEventBus = field(repr=False)
    callback: Callback | None = None
    log: list[LogEntry] = field(default_factory=list)
    status: EventStatus | None = None  # UpdateReadyForInstall's status as last told to it
    hold_until: float | None = None  # device time its own deferral ends

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def registration(self) -> SysEventCall | None:
        """Its last RegisterForEventNotifications call (None: it never made one)."""
        return next((entry for entry in reversed(self.log) if isinstance(entry, SysEventCall)
                     and entry.call == "RegisterForEventNotifications"), None)

    def register_for_event_notifications(self, callback: Callback) -> int:
        """SysEvent_RegisterForEventNotifications for every event (a second call replaces the
        callback): 0, or EACCES without SystemEventNotifications."""
        if not self.manifest.system_event_notifications:
            return self._refuse("RegisterForEventNotifications", EACCES,
                                "no SystemEventNotifications capability")
        self.callback = callback
        self.log.append(SysEventCall("RegisterForEventNotifications", self.bus.now()))
        return 0

    def defer_event(self, event: SysEvent, minutes: int) -> int:
        """SysEvent_DeferEvent: 0 (and Deferred to every registered app), EACCES or EINVAL
        (see module doc). Longer than the allowance left: truncated to it."""
        refused = self._check("DeferEvent", event, minutes)
        if refused:
            return refused
        offer, now = self.bus.offer, self.bus.now()
        assert offer is not None
        self.hold_until = min(now + minutes * 60.0, offer.deadline)
        granted = (self.hold_until - now) / 60
        why = f"truncated to the {granted:g} minutes left" if granted < minutes else ""
        if offer.held_since is None:
            offer.held_since = now
        self.log.append(SysEventCall("DeferEvent", now, 0, why, minutes, granted))
        self.bus.send_update(EventStatus.DEFERRED)
        return 0

    def resume_event(self, event: SysEvent) -> int:
        """SysEvent_ResumeEvent: 0 (this app's deferral ends now), EACCES or EINVAL."""
        refused = self._check("ResumeEvent", event, None)
        if refused:
            return refused
        offer = self.bus.offer
        assert offer is not None
        self.hold_until, offer.released = None, Release.RESUMED
        self.log.append(SysEventCall("ResumeEvent", self.bus.now()))
        return 0

    def set_timer(self, minutes: float, action: Callable[[], object]) -> None:
        """The app's own event-loop timer: `action()` runs `minutes` from now (device clock)
        while the device waits out an offer; timers still set when the install comes are lost."""
        self.bus.add_timer(self.bus.now() + minutes * 60.0, action)

    def _check(self, call: str, event: SysEvent, minutes: int | None) -> int:
        """The errno `call` fails with (0: it may go ahead)."""
        manifest = self.manifest
        if not (manifest.system_event_notifications and manifest.software_update_deferral):
            missing = [c for c, has in (("SystemEventNotifications",
                                         manifest.system_event_notifications),
                                        ("SoftwareUpdateDeferral",
                                         manifest.software_update_deferral)) if not has]
            return self._refuse(call, EACCES, "no " + " and no ".join(missing) + " capability",
                                minutes)
        if event is not SysEvent.UPDATE_READY_FOR_INSTALL:
            return self._refuse(call, EINVAL, f"{event.value} cannot be deferred", minutes)
        if minutes is not None:
            return self._check_defer(minutes)
        hold = self.hold_until
        if self.bus.offer is None or hold is None or hold <= self.bus.now():
            return self._refuse(call, EINVAL, "no deferral of this app is in force")
        return 0

    def _check_defer(self, minutes: int) -> int:
        if self.bus.offer is None or self.status is not EventStatus.PENDING:
            state = "no update" if self.status is None else self.status.value
            return self._refuse("DeferEvent", EINVAL, f"the update is not Pending ({state})",
                                minutes)
        if isinstance(minutes, bool) or not isinstance(minutes, int) \
                or not 0 < minutes <= _UINT32_MAX:
            return self._refuse("DeferEvent", EINVAL, f"{minutes!r} is not 1..{_UINT32_MAX} "
                                "minutes", minutes if isinstance(minutes, int) else None)
        return 0

    def _refuse(self, call: str, errno: int, why: str, minutes: int | None = None) -> int:
        self.log.append(SysEventCall(call, self.bus.now(), errno, why, minutes))
        return errno

    def deliver(self, info: SysEventInfo) -> None:
        """Tell this app `info`, if it is registered."""
        if self.callback is None:
            return
        self.log.append(info)
        if info.event is SysEvent.UPDATE_READY_FOR_INSTALL:
            self.status = info.status
        self.callback(info, self)


@dataclass(frozen=True)
class AppReport:
    """What one app was told and did during one check (its manifest, whether it is registered)."""

    manifest: AppManifest
    registration: SysEventCall | None  # its last RegisterForEventNotifications (None: never)
    log: tuple[LogEntry, ...]

    @property
    def registered(self) -> bool:
        return self.registration is not None and self.registration.ok

    @property
    def events(self) -> list[SysEventInfo]:
        return [entry for entry in self.log if isinstance(entry, SysEventInfo)]

    @property
    def calls(self) -> list[SysEventCall]:
        return [entry for entry in self.log if isinstance(entry, SysEventCall)]

    @property
    def granted_minutes(self) -> float:
        """The minutes of deferral this app was granted in all (a resume does not give any back)."""
        return sum(call.granted_minutes or 0.0 for call in self.calls)

    def to_json(self) -> dict[str, object]:
        return {**self.manifest.to_json(), "registered": self.registered,
                "registration": None if self.registration is None else self.registration.to_json(),
                "events": [event.to_json() for event in self.events],
                "calls": [call.to_json() for call in self.calls],
                "granted_minutes": self.granted_minutes}


@dataclass(frozen=True)
class Mark:
    """Where the bus's logs stood (`SysEventBus.mark`)."""

    sent: int
    logs: dict[DeviceApp, int]


@dataclass
class SysEventBus:
    """The apps on a device, every notification sent (`sent`), the offer in progress and the
    apps' timers. `clock` is the device's (the Device sets it)."""

    clock: Clock | None = None
    apps: list[DeviceApp] = field(default_factory=list)
    sent: list[SysEventInfo] = field(default_factory=list)
    offer: Offer | None = None
    _timers: list[tuple[float, int, Callable[[], object]]] = field(default_factory=list)
    _timer_seq: int = 0
    _queue: deque[SysEventInfo] = field(default_factory=deque)
    _delivering: bool = False

    def now(self) -> float:
        assert self.clock is not None, "the bus has no clock: it belongs to no device"
        return self.clock.wall()

    def add_app(self, manifest: AppManifest) -> DeviceApp:
        """An app on the device, not registered for notifications yet."""
        app = DeviceApp(manifest, self)
        self.apps.append(app)
        return app

    def register(self, callback: Callback, manifest: AppManifest | None = None) -> DeviceApp:
        """Add an app (with both SysEvent capabilities unless `manifest` says otherwise) and
        register `callback` for it; whether that held is in the app's log."""
        app = self.add_app(manifest or AppManifest.deferring(f"app{len(self.apps) + 1}"))
        app.register_for_event_notifications(callback)
        return app

    def send(self, info: SysEventInfo) -> None:
        """Tell every registered app `info` (after those being told now, if any)."""
        if info.status is EventStatus.COMPLETE and info.update_type is UpdateType.SYSTEM:
            raise ValueError("Complete is sent for application updates only")
        self.sent.append(info)
        self._queue.append(info)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._queue:
                queued = self._queue.popleft()
                for app in self.apps:
                    app.deliver(queued)
        finally:
            self._delivering = False

    def send_update(self, status: EventStatus, max_minutes: int = 0) -> None:
        """UpdateReadyForInstall with `status` for the offer in progress."""
        assert self.offer is not None
        self.send(SysEventInfo(SysEvent.UPDATE_READY_FOR_INSTALL, status,
                               self.offer.update_type, max_minutes, self.now()))

    def add_timer(self, due: float, action: Callable[[], object]) -> None:
        """Run `action` at device time `due` (timers due together run in the order set)."""
        self._timer_seq += 1
        heapq.heappush(self._timers, (due, self._timer_seq, action))

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def run_timers(self, now: float) -> None:
        """Run every timer due by `now`, earliest first."""
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()

    def holds(self, now: float) -> list[float]:
        """When each deferral still in force ends; those ended by `now` are let go."""
        held = []
        for app in self.apps:
            if app.hold_until is None:
                continue
            if app.hold_until <= now:
                app.hold_until = None
                assert self.offer is not None
                self.offer.released = Release.EXPIRED
            else:
                held.append(app.hold_until)
        return held

    def close_offer(self) -> None:
        """The install happens: deferrals, statuses and timers are gone with the old software."""
        self.offer = None
        self._timers.clear()
        for app in self.apps:
            app.hold_until, app.status = None, None

    def mark(self) -> Mark:
        return Mark(len(self.sent), {app: len(app.log) for app in self.apps})

    def since(self, mark: Mark) -> tuple[tuple[SysEventInfo, ...], tuple[AppReport, ...]]:
        """What was sent since `mark`, and each app's part of it."""
        return tuple(self.sent[mark.sent:]), tuple(
            AppReport(app.manifest, app.registration, tuple(app.log[mark.logs.get(app, 0):]))
            for app in self.apps)
