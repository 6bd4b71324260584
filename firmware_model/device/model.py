"""The device: boot path, update agent and certificate store on a `hal.interfaces.Machine`.

    device = Device(machine)                  # installs the boot path as the machine's boot hook
    device.provision(FactoryImages.from_build(Path("images/build")))   # a fresh device
    device.start()                            # or: boot an already provisioned one
    device.bus.register(DeferringApp(60))     # an app that defers updates by an hour
    result = device.check_for_update(open_feed("images/build/feeds", "Retail"))
    device.status(); device.connect("127.0.0.1", 8443)

Everything the device knows between resets lives in flash and fuses; `device.ram` is what a
boot rebuilt from them (lost on every reset, rebuilt by the boot hook). The update decisions
are made by `firmware_model.agent.decisions` (pure); this module does the I/O around them:
fetching from the feed, writing slots, telling apps, waiting out deferrals on the device's
clock, committing the boot record and asking the HAL for a reset. A check is two halves:
`fetch_update` (fetch and accept; nothing written) and `install` (write, offer, commit, reset).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from firmware_model.agent.decisions import (
    MANIFEST_LIMIT,
    InstalledImage,
    Limits,
    StagedImage,
    TrustState,
    UpdateSession,
)
from firmware_model.agent.feed import MANIFEST_NAME, Feed, image_file_name
from firmware_model.agent.sysevent import (
    MAX_SYSTEM_DEFERRAL_MINUTES,
    EventHandle,
    EventStatus,
    SysEvent,
    SysEventBus,
    SysEventInfo,
    UpdateType,
    deferral_minutes,
)
from firmware_model.device.boot import Booted, BootReport, boot
from firmware_model.device.bootrecord import RecordArea, RecordState, SlotRef
from firmware_model.device.flash_layout import (
    Component,
    FlashLayout,
    Region,
    slot_name,
    staging_regions,
)
from firmware_model.device.provision import FactoryImages, provision
from firmware_model.device.slots import write_slot
from firmware_model.device.tls import (
    DeviceSSLContext,
    DeviceStore,
    TlsSession,
    as_utc,
    connect,
    iso,
)
from firmware_model.errors import (
    BootError,
    FwModelError,
    NotProvisionedError,
    RevokedError,
    TrustError,
)
from firmware_model.trust.fuses import floors, raise_floor, read_root_hash
from hal.interfaces import Machine, ResetCause

#: How often a device checks its feed: every 20 hours on current devices (24 in older docs).
CHECK_INTERVAL_HOURS = 20.0


@dataclass(frozen=True)
class AgentSettings:
    """The update agent's tunables."""

    check_interval_hours: float = CHECK_INTERVAL_HOURS
    max_deferral_minutes: int = MAX_SYSTEM_DEFERRAL_MINUTES
    manifest_limit: int = MANIFEST_LIMIT


class UpdateOutcome(enum.Enum):
    """How a check for updates ended (refusals raise instead)."""

    NO_UPDATE = "no-update"
    INSTALLED = "installed"
    REVERTED = "reverted"  # installed, but the new set failed its trial boot


@dataclass(frozen=True)
class UpdateResult:
    """What one check for updates did."""

    outcome: UpdateOutcome
    feed: str
    images: tuple[InstalledImage, ...] = ()
    events: tuple[SysEventInfo, ...] = ()
    deferred_minutes: float = 0.0
    boot: BootReport | None = None

    def to_json(self) -> dict[str, object]:
        return {"outcome": self.outcome.value, "feed": self.feed,
                "images": [image.to_json() for image in self.images],
                "events": [event.to_json() for event in self.events],
                "deferred_minutes": self.deferred_minutes,
                "boot": None if self.boot is None else self.boot.to_json()}


CheckResult = UpdateResult | FwModelError


@dataclass(frozen=True)
class AcceptedUpdate:
    """An update fetched and accepted while the device ran `booted`: every check done, nothing
    written yet. `Device.install` installs it as long as the device still runs that boot."""

    location: str
    staged: tuple[StagedImage, ...]
    booted: Booted


@dataclass
class Device:
    """A device model on `machine` (see module doc). Creating one installs its boot hook."""

    machine: Machine
    layout: FlashLayout | None = None
    records: RecordArea | None = None
    settings: AgentSettings = field(default_factory=AgentSettings)
    bus: SysEventBus = field(default_factory=SysEventBus)
    ram: Booted | None = None
    boot_failure: FwModelError | None = None

    def __post_init__(self) -> None:
        if self.layout is None:
            self.layout = FlashLayout.for_geometry(self.machine.flash.geometry)
        if self.records is None:
            self.records = RecordArea(self.layout)
        self.machine.set_boot_hook(self.on_reset)

    # -- boot ----------------------------------------------------------------------------------

    @property
    def flash_layout(self) -> FlashLayout:
        assert self.layout is not None
        return self.layout

    @property
    def record_area(self) -> RecordArea:
        assert self.records is not None
        return self.records

    def boot(self) -> BootReport:
        """Run the boot path now (without a reset); NotProvisionedError / BootError if it fails."""
        self.ram, self.boot_failure = None, None
        try:
            self.ram = boot(self.machine, self.flash_layout, self.record_area)
        except FwModelError as error:
            self.boot_failure = error
            self._log(f"[boot] halted: {error}")
            raise
        return self.ram.report

    def start(self) -> BootReport:
        """Boot if this model has not booted yet (a process attaching to a powered device)."""
        return self.running.report if self.ram is not None else self.boot()

    def on_reset(self, _machine: Machine) -> None:
        """The boot hook: RAM is lost; a failed boot leaves the device halted, not raising."""
        with contextlib.suppress(FwModelError):
            self.boot()

    @property
    def running(self) -> Booted:
        """The booted state; the boot failure (or NotProvisionedError) if there is none."""
        if self.ram is None:
            raise self.boot_failure or NotProvisionedError("the device has not booted")
        return self.ram

    def provision(self, images: FactoryImages) -> BootReport:
        """Provision a fresh device and boot it."""
        provision(self.machine, self.flash_layout, self.record_area, images)
        return self.boot()

    # -- the store -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The device's clock."""
        return as_utc(self.machine.clock.wall())

    @property
    def store(self) -> DeviceStore:
        """The certificate store the device booted with."""
        return self.running.loaded.store

    def ssl_context(self) -> DeviceSSLContext:
        """A TLS client context trusting the store at the device's clock (now)."""
        return self.store.ssl_context(self.now())

    def connect(self, host: str, port: int, server_name: str | None = None) -> TlsSession:
        """A TLS handshake from the device to `host:port`; TlsError if it fails."""
        try:
            session = connect(self.store, self.now(), host, port, server_name)
        except TrustError as error:
            self._log(f"[tls] {error}")
            raise
        self._log(f"[tls] connected to {session.describe()}")
        return session

    # -- the update agent ----------------------------------------------------------------------

    def trust_state(self) -> TrustState:
        """What the running device trusts, for the agent's decisions."""
        running = self.running
        fused = read_root_hash(self.machine.otp)
        assert fused is not None
        return TrustState(fused, running.loaded.keystore.keyring, floors(self.machine.otp),
                          running.loaded.installed())

    @property
    def limits(self) -> Limits:
        capacity = {c: self.flash_layout.capacity(c) for c in Component}
        return Limits(capacity, self.settings.manifest_limit)

    def check_for_update(self, feed: Feed) -> UpdateResult:
        """Check `feed`; install what it offers through a reset (see module doc).

        Returns NO_UPDATE, INSTALLED or REVERTED. A refusal raises its typed error (after
        logging it on the console) with the device unchanged: every check happens before the
        first flash write.
        """
        first_event = len(self.bus.sent)
        accepted = self.fetch_update(feed)
        if accepted is None:
            return UpdateResult(UpdateOutcome.NO_UPDATE, feed.location,
                                events=tuple(self.bus.sent[first_event:]))
        return self._install(accepted, first_event)

    def fetch_update(self, feed: Feed) -> AcceptedUpdate | None:
        """Fetch and accept what `feed` offers, writing nothing (the first half of a check).

        None, after NoUpdateAvailable, when there is nothing to install; otherwise the update
        with every image authenticated and checked against the manifest (the apps were told
        UpdateStarted). A refusal raises its typed error after logging it on the console.
        """
        running = self.running
        session = UpdateSession(self.trust_state(), self.limits)
        try:
            wanted = session.accept_manifest(feed.fetch(MANIFEST_NAME, self.limits.manifest))
            if not wanted:
                self._send(SysEvent.NO_UPDATE_AVAILABLE, EventStatus.COMPLETE)
                self._log(f"[agent] {feed.location}: no update available")
                return None
            self._send(SysEvent.UPDATE_STARTED, EventStatus.PENDING)
            for entry in wanted:
                session.accept_image(entry, feed.fetch(image_file_name(entry.image_id),
                                                       entry.size))
        except FwModelError as error:
            self._log(f"[agent] update from {feed.location} refused "
                      f"({type(error).__name__}): {error}")
            raise
        return AcceptedUpdate(feed.location, tuple(session.staged), running)

    def install(self, update: AcceptedUpdate) -> UpdateResult:
        """Install an update `fetch_update` accepted: the second half of a check (write the
        free slots, offer the install to the apps, commit, reset; INSTALLED or REVERTED).

        ValueError if the device has booted since the update was accepted: what it was
        checked against (the running keystore, the counters, the installed images) may differ.
        """
        return self._install(update, len(self.bus.sent))

    def _install(self, update: AcceptedUpdate, first_event: int) -> UpdateResult:
        if self.ram is None or self.ram is not update.booted:
            raise ValueError(f"the update from {update.location} was accepted before the "
                             "device's last boot; fetch it again")
        staged = update.staged
        refs = self._stage(list(staged))
        deferred = self._offer_install()
        trial = self.running.record.trial(refs)
        self.record_area.commit(self.machine.flash, trial)
        self._log(f"[agent] record {trial.sequence} committed (trial); requesting a reset")
        events = tuple(self.bus.sent[first_event:])
        self.machine.reset.request_reset(ResetCause.SOFTWARE)
        if self.ram is None:
            raise self.boot_failure or BootError("the device did not come back after the reset")
        report = self.ram.report
        outcome = UpdateOutcome.REVERTED if report.reverted else UpdateOutcome.INSTALLED
        images = tuple(InstalledImage.of(s.component, s.image, s.digest) for s in staged)
        return UpdateResult(outcome, update.location, images, events, deferred, report)

    def _stage(self, staged: list[StagedImage]) -> dict[Component, SlotRef]:
        """Write each accepted image to its component's inactive slot and read it back."""
        active = self.running.record.active
        refs = {}
        for image in staged:
            current = active[image.component].slot
            index = 1 if current is None else 1 - current
            digest = write_slot(self.machine.flash, self.flash_layout, image.component, index,
                                image.data, image.digest)
            refs[image.component] = SlotRef(index, len(image.data), digest)
            self._log(f"[agent] {image.component.value} {image.image.name} written to slot "
                      f"{slot_name(index)} and read back")
        return refs

    def _offer_install(self) -> float:
        """Pending to the apps, wait out their deferral on the device clock, then Final."""
        handles = self._send(SysEvent.UPDATE_READY_FOR_INSTALL, EventStatus.PENDING,
                             self.settings.max_deferral_minutes)
        minutes = deferral_minutes(handles)
        if minutes > 0:
            self._log(f"[agent] install deferred by {minutes:g} minutes")
            self.machine.clock.sleep(minutes * 60)
        self._send(SysEvent.UPDATE_READY_FOR_INSTALL, EventStatus.FINAL)
        return minutes

    def _send(
        self, event: SysEvent, status: EventStatus, max_deferral: int = 0
    ) -> list[EventHandle]:
        info = SysEventInfo(event, status, UpdateType.SYSTEM, max_deferral,
                            self.machine.clock.wall())
        return self.bus.send(info)

    def run_checks(self, feed: Feed, checks: int) -> list[CheckResult]:
        """Check `feed` `checks` times, one check interval apart on the device clock.

        A refused or failed check is recorded and the next one tries again.
        """
        results: list[CheckResult] = []
        for index in range(checks):
            if index:
                self.machine.clock.sleep(self.settings.check_interval_hours * 3600)
            try:
                results.append(self.check_for_update(feed))
            except FwModelError as error:
                results.append(error)
        return results

    # -- revocation ----------------------------------------------------------------------------

    def revoke(self, component: Component, version: int) -> bool:
        """Revoke every security version of `component` below `version` (raise its counter).

        RevokedError if the running, confirmed image is itself below `version`. True if fuses
        were blown.
        """
        running = self.running
        current = running.loaded.image(component).security_version
        if running.record.state is not RecordState.CONFIRMED or current < version:
            raise RevokedError(f"revoking {component.value} versions below {version} would "
                               f"revoke the running image (version {current})")
        raised = raise_floor(self.machine.otp, component, version)
        self._log(f"[trust] {component.value} versions below {version} revoked")
        return raised

    # -- status --------------------------------------------------------------------------------

    def staging(self) -> list[Region]:
        """The regions the next update may write before it commits (see `layout`)."""
        newest = self.record_area.newest(self.machine.flash)
        active = self.running.record.active
        slots = {c: (active[c].slot or 0) for c in Component}
        return staging_regions(self.flash_layout, slots, None if newest is None else newest[1])

    def status(self) -> dict[str, object]:
        """What `fwmodel status --json` prints: slots, store, security versions, reset cause."""
        at = self.now()
        base: dict[str, object] = {
            "device_time": iso(at),
            "last_reset_cause": self.machine.reset.last_cause().name,
        }
        if self.ram is None:
            provisioned = (self.record_area.read(self.machine.flash) is not None
                           and read_root_hash(self.machine.otp) is not None)
            return {"provisioned": provisioned, "booted": False, **base,
                    "problem": None if self.boot_failure is None else str(self.boot_failure)}
        running = self.ram
        counters = floors(self.machine.otp)
        installed = running.loaded.installed()
        return {
            "provisioned": True, "booted": True, **base,
            "boot_record": {"sequence": running.record.sequence,
                            "state": running.record.state.name.lower()},
            "slots": {c.value: {"active": slot_name(running.record.active[c].slot or 0),
                                "image": installed[c].to_json()} for c in Component},
            "security_versions": {c.value: {"fused": counters[c],
                                            "running": installed[c].security_version}
                                  for c in Component},
            "store": {"certificates": [root.to_json(at) for root in running.loaded.store.roots]},
            "last_boot": running.report.to_json(),
        }

    def _log(self, line: str) -> None:
        self.machine.console.log(line)


DeviceFactory = Callable[[Machine], Device]
