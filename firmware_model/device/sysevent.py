"""A model of Applibs SysEvent: how the update agent tells apps about an update, and deferral.

The agent sends, in order:
- `NoUpdateAvailable` when a check finds nothing to install;
- `UpdateStarted` when it starts fetching an update;
- `UpdateReadyForInstall` with status `Pending` and the longest deferral allowed (1,440 minutes
  for a system update): an app may `defer(minutes)` (longer requests are truncated to the
  allowance), `resume()` at once, or `resume_after(minutes)` (the app's own timer calling
  SysEvent_ResumeEvent later);
- once every app's deferral has ended, `UpdateReadyForInstall` with status `Final`: the device
  installs and reboots.

Apps are callables `app(info, handle)`; the bus delivers each event to every registered app.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: The longest an app may defer an OS (system) update, and an application update, in minutes.
MAX_SYSTEM_DEFERRAL_MINUTES = 1440
MAX_APP_DEFERRAL_MINUTES = 10020


class SysEvent(enum.Enum):
    """The update events of SysEvent_Events."""

    UPDATE_STARTED = "UpdateStarted"
    UPDATE_READY_FOR_INSTALL = "UpdateReadyForInstall"
    NO_UPDATE_AVAILABLE = "NoUpdateAvailable"


class EventStatus(enum.Enum):
    """SysEvent_Status."""

    PENDING = "Pending"
    FINAL = "Final"
    DEFERRED = "Deferred"
    COMPLETE = "Complete"


class UpdateType(enum.Enum):
    """SysEvent_UpdateType."""

    SYSTEM = "System"
    APP = "App"


@dataclass(frozen=True)
class SysEventInfo:
    """One notification: which event, its status, the deferral allowed, and when (device time)."""

    event: SysEvent
    status: EventStatus
    update_type: UpdateType
    max_deferral_minutes: int
    at: float

    def to_json(self) -> dict[str, object]:
        when = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"event": self.event.value, "status": self.status.value,
                "update_type": self.update_type.value,
                "max_deferral_minutes": self.max_deferral_minutes, "at": self.at, "time": when}


@dataclass
class EventHandle:
    """What an app may do with a Pending event: defer it (truncated), or resume it."""

    info: SysEventInfo
    deferral_minutes: float = 0.0
    resume_after_minutes: float | None = None

    def defer(self, minutes: float) -> float:
        """Ask to defer by `minutes`; returns what is granted (at most the allowance).

        Only a Pending UpdateReadyForInstall can be deferred; anything else grants nothing.
        """
        if (self.info.event is not SysEvent.UPDATE_READY_FOR_INSTALL
                or self.info.status is not EventStatus.PENDING):
            return 0.0
        self.deferral_minutes = max(0.0, min(float(minutes), self.info.max_deferral_minutes))
        return self.deferral_minutes

    def resume(self) -> None:
        """End this app's deferral now."""
        self.resume_after_minutes = 0.0

    def resume_after(self, minutes: float) -> None:
        """End this app's deferral `minutes` from now (if that comes before the deferral ends)."""
        self.resume_after_minutes = max(0.0, float(minutes))

    @property
    def holds_minutes(self) -> float:
        """How long, from the event, this app holds the update back."""
        if self.resume_after_minutes is None:
            return self.deferral_minutes
        return min(self.deferral_minutes, self.resume_after_minutes)


App = Callable[[SysEventInfo, EventHandle], None]


def deferral_minutes(handles: Sequence[EventHandle]) -> float:
    """How long the install waits after a Pending event: until every app's deferral has ended."""
    return max((handle.holds_minutes for handle in handles), default=0.0)


@dataclass
class SysEventBus:
    """Registered apps, and every event sent so far (the log tests and the CLI read)."""

    apps: list[App] = field(default_factory=list)
    sent: list[SysEventInfo] = field(default_factory=list)

    def register(self, app: App) -> None:
        """SysEvent_RegisterForEventNotifications."""
        self.apps.append(app)

    def send(self, info: SysEventInfo) -> list[EventHandle]:
        """Deliver `info` to every app; the handles carry what each app asked for."""
        self.sent.append(info)
        handles = []
        for app in self.apps:
            handle = EventHandle(info)
            app(info, handle)
            handles.append(handle)
        return handles


@dataclass
class DeferringApp:
    """An app that defers every Pending update by `minutes`, optionally resuming earlier.

    It records every event it received in `seen`.
    """

    minutes: float
    resume_after: float | None = None
    seen: list[SysEventInfo] = field(default_factory=list)
    granted: list[float] = field(default_factory=list)

    def __call__(self, info: SysEventInfo, handle: EventHandle) -> None:
        self.seen.append(info)
        if info.event is SysEvent.UPDATE_READY_FOR_INSTALL and info.status is EventStatus.PENDING:
            self.granted.append(handle.defer(self.minutes))
            if self.resume_after is not None:
                handle.resume_after(self.resume_after)
