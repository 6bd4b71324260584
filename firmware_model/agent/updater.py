"""The update agent's I/O, around its pure decisions (`decisions.UpdateSession`), like
python-tuf's Updater beside its TrustedMetadataSet.

    device.bus.register(DeferringApp(60))             # an app that defers updates by an hour
    result = Updater(device).check_for_update(open_feed("images/build/feeds", "Retail"))

A check is two halves: `fetch_update` (fetch the manifest and each image it lists, accept them
step by step; nothing is written) and `install` (write the free slots and read them back, offer
the install to the apps and wait out their deferrals on the device's clock, as
`firmware_model.device.deferral` says, commit the trial boot record, ask the HAL for a reset).
Every refusal happens in the first half, so a refused update leaves the device as it was.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from firmware_model.agent.decisions import (
    MANIFEST_LIMIT,
    Limits,
    StagedImage,
    TrustState,
    UpdateSession,
)
from firmware_model.agent.feed import MANIFEST_NAME, Feed, image_file_name
from firmware_model.device.boot import Booted, BootReport, InstalledImage
from firmware_model.device.bootrecord import BootRecord, SlotRef
from firmware_model.device.deferral import OfferReport, offer_install
from firmware_model.device.flash_layout import slot_name
from firmware_model.device.model import Device
from firmware_model.device.slots import write_slot
from firmware_model.device.sysevent import (
    MAX_SYSTEM_DEFERRAL_MINUTES,
    AppReport,
    EventStatus,
    Mark,
    SysEvent,
    SysEventBus,
    SysEventInfo,
    UpdateType,
)
from firmware_model.errors import BootError, FwModelError
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import floors
from hal.interfaces import ResetCause

#: How often a device checks its feed: every 20 hours on current devices (24 in older docs).
CHECK_INTERVAL_HOURS = 20.0
#: How long one check may take to fetch everything (host seconds): the manifest and every image
#: it lists, whatever pace the feed serves them at.
CHECK_DEADLINE_S = 300.0


@dataclass(frozen=True)
class AgentSettings:
    """The update agent's tunables."""

    check_interval_hours: float = CHECK_INTERVAL_HOURS
    max_deferral_minutes: int = MAX_SYSTEM_DEFERRAL_MINUTES
    manifest_limit: int = MANIFEST_LIMIT
    check_deadline_s: float = CHECK_DEADLINE_S


class UpdateOutcome(enum.Enum):
    """How a check for updates ended (refusals raise instead)."""

    NO_UPDATE = "no-update"
    INSTALLED = "installed"
    REVERTED = "reverted"  # installed, but the new set failed its trial boot


@dataclass(frozen=True)
class UpdateResult:
    """What one check for updates did: every notification sent (`events`), each app's part
    (`apps`), how the install was offered (`offer`, None without an install)."""

    outcome: UpdateOutcome
    feed: str
    images: tuple[InstalledImage, ...] = ()
    events: tuple[SysEventInfo, ...] = ()
    apps: tuple[AppReport, ...] = ()
    offer: OfferReport | None = None
    boot: BootReport | None = None

    @property
    def deferred_minutes(self) -> float:
        """How long deferrals held the install, in all."""
        return 0.0 if self.offer is None else self.offer.deferred_minutes

    def to_json(self) -> dict[str, object]:
        return {"outcome": self.outcome.value, "feed": self.feed,
                "images": [image.to_json() for image in self.images],
                "events": [event.to_json() for event in self.events],
                "apps": [app.to_json() for app in self.apps],
                "deferral": None if self.offer is None else self.offer.to_json(),
                "deferred_minutes": self.deferred_minutes,
                "boot": None if self.boot is None else self.boot.to_json()}


CheckResult = UpdateResult | FwModelError


@dataclass(frozen=True)
class AcceptedUpdate:
    """An update fetched and accepted while the device ran `booted`: every check done, nothing
    written yet. `Updater.install` installs it as long as the device still runs that boot."""

    location: str
    staged: tuple[StagedImage, ...]
    booted: Booted
    manifest_date: int = 0  # the manifest's build date, remembered by the trial record
    learned_at: float = 0.0  # when the device learned of it (UpdateStarted), device time


@dataclass
class Updater:
    """The update agent of `device` (see module doc); it reaches the apps on `device.bus`."""

    device: Device
    settings: AgentSettings = field(default_factory=AgentSettings)

    @property
    def bus(self) -> SysEventBus:
        return self.device.bus

    def trust_state(self) -> TrustState:
        """What the running device trusts, for the agent's decisions."""
        running = self.device.running
        return TrustState(running.fused_root_hash, running.loaded,
                          floors(self.device.machine.otp), running.record.manifest_date,
                          self.device.now())

    @property
    def limits(self) -> Limits:
        layout = self.device.flash_layout
        return Limits({c: layout.capacity(c) for c in Component}, self.settings.manifest_limit)

    def check_for_update(self, feed: Feed) -> UpdateResult:
        """Check `feed`; install what it offers through a reset (see module doc).

        Returns NO_UPDATE, INSTALLED or REVERTED. A refusal raises its typed error (after
        logging it on the console) with the device unchanged: every check happens before the
        first flash write.
        """
        mark = self.bus.mark()
        accepted = self.fetch_update(feed)
        if accepted is None:
            events, apps = self.bus.since(mark)
            return UpdateResult(UpdateOutcome.NO_UPDATE, feed.location, events=events, apps=apps)
        return self._install(accepted, mark)

    def fetch_update(self, feed: Feed) -> AcceptedUpdate | None:
        """Fetch and accept what `feed` offers, writing nothing (the first half of a check).

        None, after NoUpdateAvailable, when there is nothing to install; otherwise the update
        with every image authenticated and checked against the manifest (the apps were told
        UpdateStarted). A refusal raises its typed error after logging it on the console; so
        does a feed that has not served everything within `settings.check_deadline_s`.
        """
        running = self.device.running
        limits = self.limits
        session = UpdateSession(self.trust_state(), limits)
        deadline = time.monotonic() + self.settings.check_deadline_s
        try:
            wanted = session.accept_manifest(feed.fetch(MANIFEST_NAME, limits.manifest, deadline))
            if not wanted:
                self._send(SysEvent.NO_UPDATE_AVAILABLE, EventStatus.COMPLETE)
                self.device.log(f"[agent] {feed.location}: no update available")
                return None
            learned_at = self._send(SysEvent.UPDATE_STARTED, EventStatus.PENDING)
            for entry in wanted:
                session.accept_image(entry, feed.fetch(image_file_name(entry.image_id),
                                                       entry.size, deadline))
        except FwModelError as error:
            self.device.log(f"[agent] update from {feed.location} refused "
                            f"({type(error).__name__}): {error}")
            raise
        return AcceptedUpdate(feed.location, tuple(session.staged), running,
                              session.manifest_date, learned_at)

    def install(self, update: AcceptedUpdate) -> UpdateResult:
        """Install an update `fetch_update` accepted: the second half of a check (write the
        free slots, offer the install to the apps, commit, reset; INSTALLED or REVERTED).

        ValueError if the device has booted since the update was accepted: what it was
        checked against (the running keystore, the counters, the installed images) may differ.
        """
        return self._install(update, self.bus.mark())

    def commit_install(self, update: AcceptedUpdate) -> BootRecord:
        """Install an accepted update up to its reset: write the free slots and read them back,
        commit the trial record; no offer to the apps, no reset (the device REST API's
        `update/install`: the device boots the new set at its next reset, on trial, falling
        back to the old one if it fails). Returns the trial record. ValueError as `install`.
        """
        self._check_current(update)
        trial = self._commit_trial(self._stage(list(update.staged)), update.manifest_date)
        self.device.log(f"[agent] the update from {update.location} boots at the next reset")
        return trial

    def _check_current(self, update: AcceptedUpdate) -> None:
        ram = self.device.ram
        if ram is None or ram is not update.booted:
            raise ValueError(f"the update from {update.location} was accepted before the "
                             "device's last boot; fetch it again")

    def _commit_trial(self, refs: dict[Component, SlotRef], manifest_date: int) -> BootRecord:
        device = self.device
        trial = device.running.record.trial(refs, manifest_date)
        device.record_area.commit(device.machine.flash, trial)
        device.log(f"[agent] record {trial.sequence} committed (trial)")
        return trial

    def _install(self, update: AcceptedUpdate, mark: Mark) -> UpdateResult:
        device = self.device
        self._check_current(update)
        staged = update.staged
        refs = self._stage(list(staged))
        offer = self._offer_install(update.learned_at)
        self._commit_trial(refs, update.manifest_date)
        device.log("[agent] requesting a reset")
        events, apps = self.bus.since(mark)
        device.machine.reset.request_reset(ResetCause.SOFTWARE)
        if device.ram is None:
            raise device.boot_failure or BootError("the device did not come back after the reset")
        report = device.ram.report
        outcome = UpdateOutcome.REVERTED if report.reverted else UpdateOutcome.INSTALLED
        images = tuple(InstalledImage.of(s.component, s.image, s.digest) for s in staged)
        return UpdateResult(outcome, update.location, images, events, apps, offer, report)

    def _stage(self, staged: list[StagedImage]) -> dict[Component, SlotRef]:
        """Write each accepted image to its component's inactive slot and read it back."""
        device = self.device
        active = device.running.record.active
        refs = {}
        for image in staged:
            current = active[image.component].slot
            index = 1 if current is None else 1 - current
            digest = write_slot(device.machine.flash, device.flash_layout, image.component, index,
                                image.data, image.digest)
            refs[image.component] = SlotRef(index, len(image.data), digest)
            device.log(f"[agent] {image.component.value} {image.image.name} written to slot "
                       f"{slot_name(index)} and read back")
        return refs

    def _offer_install(self, learned_at: float) -> OfferReport:
        """UpdateReadyForInstall to the apps; wait out their deferrals and Final's 10 s on the
        device clock (`firmware_model.device.deferral`)."""
        offer = offer_install(self.bus, self.device.machine.clock, UpdateType.SYSTEM, learned_at,
                              self.settings.max_deferral_minutes)
        if offer.deferred_minutes:
            self.device.log(f"[agent] install deferred by {offer.deferred_minutes:g} minutes")
        return offer

    def _send(self, event: SysEvent, status: EventStatus) -> float:
        """Tell the apps `event` (not an UpdateReadyForInstall); returns when (device time)."""
        at = self.device.machine.clock.wall()
        self.bus.send(SysEventInfo(event, status, None, 0, at))
        return at

    def run_checks(self, feed: Feed, checks: int) -> list[CheckResult]:
        """Check `feed` `checks` times, one check interval apart on the device clock.

        A refused or failed check is recorded and the next one tries again.
        """
        results: list[CheckResult] = []
        for index in range(checks):
            if index:
                self.device.machine.clock.sleep(self.settings.check_interval_hours * 3600)
            try:
                results.append(self.check_for_update(feed))
            except FwModelError as error:
                results.append(error)
        return results
