"""Images sideloaded through the device REST API (`update/stage`, then `update/install`),
accepted exactly as an update's images from a feed.

A sideloaded image comes without a manifest, so each one is planned and accepted as the
manifest entry it claims for itself (`claimed_entry`: its type, GUIDs, size, security version
and SHA-256, read from its own bytes) by the update agent's own decisions
(`decisions.plan_update`, `UpdateSession.accept_image`, `check_bootable`): an image the device
runs already is skipped; another component GUID than the device's, an image larger than its
slot, a security version below the component's counter (or the running image's) or above what
the counter holds is refused; then it is authenticated (a keystore against the fused root-key
hash, any other image against the keys of the keystore it would boot with: a keystore staged
with it, else the running one), refused with a section the device does not know, and the
whole staged set must pass what boot admits and strand nothing (a store with a root valid at
the device's clock, a keystore that trusts a key to sign the next manifest). What only a
manifest brings (its own signature, its date against replays) has no counterpart here.

    sideload = Sideload(Updater(device))
    sideload.stage(store_bytes)        # the component staged, None if it runs already
    sideload.install()                 # write the free slots, commit the trial record
    device.machine.reset.request_reset(ResetCause.SOFTWARE)   # boots it (or falls back)

Staging writes nothing: the staged bytes are kept in RAM (here, this object) and forgotten at
the next boot, so a stage followed by a restart without an install changes nothing the device
boots. A refusal leaves what was staged as it was. Once an install has committed its trial
record, nothing more is staged or installed until the device has booted it
(RestartRequiredError).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from firmware_model.agent.admission import component_of
from firmware_model.agent.decisions import UpdateSession, peek
from firmware_model.agent.updater import AcceptedUpdate, Updater
from firmware_model.device.boot import Booted
from firmware_model.device.bootrecord import BootRecord
from firmware_model.errors import RestartRequiredError
from firmware_model.image.manifest import ManifestEntry
from firmware_model.image.package import parse_package
from firmware_model.trust.components import Component

#: Where sideloaded updates say they come from (the console, AcceptedUpdate.location).
LOCATION = "the device REST API"


def claimed_entry(data: bytes) -> ManifestEntry:
    """The manifest entry that pins `data` exactly, as its own bytes claim it (type, GUIDs,
    security version: unauthenticated until `UpdateSession.accept_image` checks them);
    ImageFormatError if `data` is not an image package."""
    identity, layout = peek(data)
    claimed = parse_package(data, layout)
    return ManifestEntry(identity.image_id, identity.component_id, identity.image_type,
                         len(data), claimed.security_version, hashlib.sha256(data).digest())


def accept_images(updater: Updater, images: Iterable[bytes]) -> UpdateSession:
    """A session that has accepted `images` (at most one per component) as an update from a
    feed listing exactly them would have: planned, then each authenticated in install order
    (keystore first), then the whole set checked. Refusals raise their typed errors."""
    entries = {claimed_entry(data): data for data in images}
    session = UpdateSession(updater.trust_state(), updater.limits)
    for entry in session.plan(list(entries)):
        session.accept_image(entry, entries[entry])
    return session


@dataclass
class Sideload:
    """What is staged on the device `updater` works on (see module doc)."""

    updater: Updater
    images: dict[Component, bytes] = field(default_factory=dict)
    session: UpdateSession | None = None
    booted: Booted | None = None  # the boot the staged images were accepted in

    def staged(self) -> dict[Component, ManifestEntry]:
        """The images staged since the device last booted, by component."""
        self._forget_after_boot()
        session = self.session
        return {} if session is None else {s.component: s.entry for s in session.staged}

    def restart_required(self) -> bool:
        """True once an install has committed a trial record the running boot did not start
        from: the device boots the update at its next reset."""
        device = self.updater.device
        newest = device.record_area.read(device.machine.flash)
        return newest is not None and newest.sequence != device.running.record.sequence

    def stage(self, data: bytes) -> Component | None:
        """Accept `data` beside what is staged (replacing an image staged for its component);
        its component, or None when the device runs that very image (nothing is staged for
        the component then). Refusals raise, leaving what was staged as it was."""
        self._refuse_until_restart("stage")
        self._forget_after_boot()
        entry = claimed_entry(data)
        component = component_of(entry.image_type, "staged")
        candidate = {**self.images, component: data}
        session = accept_images(self.updater, candidate.values())
        accepted = {s.component for s in session.staged}
        self.images = {c: image for c, image in candidate.items() if c in accepted}
        self.session, self.booted = session, self.updater.device.running
        self.updater.device.log(f"[sideload] staged {component.value} image {entry.image_id}"
                                if component in accepted else
                                f"[sideload] {component.value} image {entry.image_id} runs "
                                "already: nothing staged")
        return component if component in accepted else None

    def install(self) -> BootRecord | None:
        """Install what is staged (`Updater.commit_install`: write the free slots, read them
        back, commit the trial record); None when nothing is staged. The device boots it at
        its next reset."""
        self._refuse_until_restart("install")
        self._forget_after_boot()
        if self.session is None or not self.session.staged:
            return None
        device = self.updater.device
        update = AcceptedUpdate(LOCATION, tuple(self.session.staged), device.running)
        self.images, self.session = {}, None
        return self.updater.commit_install(update)

    def _forget_after_boot(self) -> None:
        """RAM does not survive a reset: what was staged before the running boot is gone."""
        if self.booted is not None and self.booted is not self.updater.device.ram:
            self.images, self.session, self.booted = {}, None, None

    def _refuse_until_restart(self, what: str) -> None:
        if self.restart_required():
            raise RestartRequiredError(f"cannot {what}: an installed update waits for the "
                                       "device's restart")
