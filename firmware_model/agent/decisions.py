"""The update agent's decisions: pure functions of what the device trusts and what it is given.

Like python-tuf's TrustedMetadataSet, an `UpdateSession` accepts untrusted bytes one piece at a
time (the manifest, then each image it asks for) and either returns what it now trusts or
raises the typed error saying why not. It never touches flash, the network or the clock; the
device (`firmware_model.device.model`) fetches, writes, notifies apps and resets around it.

What it checks, in order:
- manifest: no larger than its limit (the fetch enforces it), of type BaseSystemUpdateManifest,
  signed by a key of the running keystore allowed to sign manifests, a well-formed v3 payload
  listing only components this device keeps (keystore, store), each at most once; built no
  earlier than the newest manifest the device installed (else a replay: ReplayError);
- plan: an entry whose image GUID is installed already is skipped; an entry for another
  component GUID than the installed one, larger than its slot, with a security version below
  the component's counter (or below the running image's), or above what the counter holds, is
  refused;
- each image, before it is authenticated: its type, image GUID, component GUID, size and
  SHA-256 as the entry says (no mix-and-match: the manifest binds the bytes); bytes cut short
  are a FeedError; then authenticated: a keystore against the fused root-key hash, any other
  image against the keys of the keystore that will boot with it (the update's new keystore if it
  has one, else the running one), with no section the device does not know; then its security
  version as the entry says;
- the whole set, once every image is staged and before anything is written: the keystore and
  store the device would boot after the update pass the boot path's own rules
  (`device.boot.admit_keystore`, `admit_store`: counters, a store whose certificates load, one
  per file), a new keystore trusts a key to sign the next update's manifest
  (`admission.admit_new_keystore`; UnsafeUpdateError), the running store still authenticates
  under a new keystore, and a new store holds a root valid at the device's clock
  (UnsafeUpdateError): an update that would brick or strand the device is refused whole.
  The content rules among these are `agent.admission`'s, which `imagetool verify` runs too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from firmware_model.agent.admission import admit_manifest, admit_new_keystore, component_of
from firmware_model.device.boot import InstalledImage, LoadedSet, admit_store
from firmware_model.device.tls import DeviceStore
from firmware_model.errors import (
    FeedError,
    ImageFormatError,
    ManifestMismatchError,
    ReplayError,
    RollbackError,
    SizeLimitError,
    UnfitImageError,
    UnsafeUpdateError,
    WrongImageTypeError,
)
from firmware_model.image import derive
from firmware_model.image.keystore import Keyring, Keystore
from firmware_model.image.manifest import ManifestEntry, manifest_date
from firmware_model.image.package import ImagePackage, PackageLayout, locate
from firmware_model.image.sections import (
    SECTION_FORMATS,
    ImageType,
    SectionId,
    guid,
    image_type_name,
)
from firmware_model.trust.chain import open_keystore, verify_image
from firmware_model.trust.components import INSTALL_ORDER, Component
from firmware_model.trust.fuses import MAX_SECURITY_VERSION

MANIFEST_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Identity:
    """What an image's ID section claims (read before authentication, trusted only after)."""

    image_type: int
    component_id: uuid.UUID
    image_id: uuid.UUID


# the ID section as stored (GUIDs raw: `guid` turns them into UUIDs, memoized)
_IDENTITY = derive.run(SECTION_FORMATS[SectionId.Identity]).struct


def peek(data: bytes) -> tuple[Identity, PackageLayout]:
    """The ID section of an image package and the package's layout (`locate(data)`, for the
    authentication that follows); ImageFormatError if the envelope is malformed."""
    layout = locate(data)
    image_type, _reserved, component, image = _IDENTITY.unpack_from(
        data, layout.spans[SectionId.Identity][0])
    return Identity(image_type, guid(component), guid(image)), layout


@dataclass(frozen=True)
class TrustState:
    """What the running device trusts: the input to every decision of a session."""

    fused_root_hash: bytes
    running: LoadedSet
    floors: Mapping[Component, int]
    manifest_date: int = 0  # the newest manifest installed (its build date)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # the device's clock

    @property
    def keyring(self) -> Keyring:
        return self.running.keystore.keyring

    @property
    def installed(self) -> dict[Component, InstalledImage]:
        return self.running.installed()


@dataclass(frozen=True)
class Limits:
    """The most bytes the agent takes: for a manifest, and per component (its slot size)."""

    capacity: Mapping[Component, int]
    manifest: int = MANIFEST_LIMIT


@dataclass(frozen=True)
class StagedImage:
    """An image the session has accepted, ready to be written to its component's free slot."""

    component: Component
    entry: ManifestEntry
    image: ImagePackage
    keystore: Keystore | None = None

    @property
    def digest(self) -> bytes:
        """SHA-256 of the image: the manifest's, which the bytes were checked against."""
        return self.entry.sha256

    @property
    def data(self) -> bytes:
        return self.image.data


def accept_manifest(data: bytes, trust: TrustState) -> tuple[list[ManifestEntry], int]:
    """The entries of an authenticated manifest and its build date (see module doc)."""
    identity, layout = peek(data)
    claimed = identity.image_type
    if claimed != ImageType.BaseSystemUpdateManifest:
        raise WrongImageTypeError(
            f"the feed's manifest is a {image_type_name(claimed)} image, "
            "not a BaseSystemUpdateManifest"
        )
    image = verify_image(data, trust.keyring, ImageType.BaseSystemUpdateManifest, layout)
    built = manifest_date(image.payload)
    if built < trust.manifest_date:
        raise ReplayError(
            f"the manifest was built {_date(built)}, before the newest this device installed "
            f"({_date(trust.manifest_date)}): a replay")
    return admit_manifest(image), built


def _date(epoch: int) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"at {epoch} s"


def plan_update(
    entries: Sequence[ManifestEntry], trust: TrustState, limits: Limits
) -> list[ManifestEntry]:
    """The entries to install, in install order (keystore first); refusals raise."""
    wanted = []
    for entry in entries:
        component = component_of(entry.image_type)
        installed = trust.installed[component]
        if entry.image_id == installed.image_id:
            continue
        if entry.component_id != installed.component_id:
            raise ManifestMismatchError(
                f"the manifest's {component.value} is component {entry.component_id}; "
                f"this device's is {installed.component_id}"
            )
        if entry.size > limits.capacity[component]:
            raise SizeLimitError(
                f"the manifest's {component.value} image is {entry.size} bytes; "
                f"its slot holds {limits.capacity[component]}"
            )
        floor = max(trust.floors[component], installed.security_version)
        if entry.security_version < floor:
            raise RollbackError(
                f"{component.value} image {entry.image_id} has security version "
                f"{entry.security_version}; this device requires at least {floor}"
            )
        if entry.security_version > MAX_SECURITY_VERSION:
            raise UnfitImageError(
                f"{component.value} image {entry.image_id} has security version "
                f"{entry.security_version}; the device's counter holds at most "
                f"{MAX_SECURITY_VERSION}"
            )
        wanted.append(entry)
    return sorted(wanted, key=lambda e: INSTALL_ORDER.index(component_of(e.image_type)))


def check_claims(entry: ManifestEntry, data: bytes) -> PackageLayout:
    """Type, GUIDs, size and SHA-256 of `data` as `entry` says; raises before any signature is
    checked. Returns the package's layout (`locate(data)`).

    Bytes too short to be an image package at all, and fewer than the manifest's, were cut
    short in transit: a FeedError (the next check fetches them again).
    """
    try:
        claimed, layout = peek(data)
    except ImageFormatError:
        if len(data) < entry.size:
            raise FeedError(f"image {entry.image_id} was served with {len(data)} of its "
                            f"{entry.size} bytes") from None
        raise
    if claimed.image_type != entry.image_type:
        raise WrongImageTypeError(
            f"served a {image_type_name(claimed.image_type)} image where the manifest lists "
            f"a {image_type_name(entry.image_type)} image"
        )
    if claimed.image_id != entry.image_id:
        raise ManifestMismatchError(f"image {claimed.image_id} is not in the manifest")
    if claimed.component_id != entry.component_id:
        raise ManifestMismatchError(
            f"image {entry.image_id} is for component {claimed.component_id}, "
            f"the manifest says {entry.component_id}"
        )
    if len(data) != entry.size:
        raise ManifestMismatchError(
            f"image {entry.image_id} is {len(data)} bytes; the manifest says {entry.size}"
        )
    if hashlib.sha256(data).digest() != entry.sha256:
        raise ManifestMismatchError(
            f"image {entry.image_id} is not the one the manifest lists (its SHA-256 differs)"
        )
    return layout


def accept_image(
    entry: ManifestEntry, data: bytes, trust: TrustState, keyring: Keyring
) -> StagedImage:
    """Check `data` against `entry`, authenticate it, and stage it (see module doc)."""
    layout = check_claims(entry, data)
    component = component_of(entry.image_type)
    keystore = None
    if component is Component.KEYSTORE:
        image, keystore = open_keystore(data, trust.fused_root_hash, layout)
    else:
        image = verify_image(data, keyring, entry.image_type, layout)
    if image.security_version != entry.security_version:
        raise ManifestMismatchError(
            f"image {entry.image_id} has security version {image.security_version}, "
            f"the manifest says {entry.security_version}"
        )
    return StagedImage(component, entry, image, keystore)


def check_bootable(staged: Sequence[StagedImage], trust: TrustState) -> None:
    """The set the device would boot after installing `staged`, checked before anything is
    written (see module doc): the boot path's rules, then what would strand the device."""
    new = {image.component: image for image in staged}
    keystore_image, keystore = trust.running.keystore_image, trust.running.keystore
    if Component.KEYSTORE in new:
        keystore_image = new[Component.KEYSTORE].image
        keystore = new[Component.KEYSTORE].keystore or keystore
        admit_new_keystore(keystore_image, keystore, trust.floors)
    if Component.STORE in new:
        store = admit_store(new[Component.STORE].image, trust.floors)
        _check_reaches_feeds(store, trust.now)
    elif Component.KEYSTORE in new:  # the running store, under the new keystore's keys
        verify_image(trust.running.store_image.data, keystore.keyring, ImageType.UpdateCertStore)


def _check_reaches_feeds(store: DeviceStore, now: datetime) -> None:
    if not store.valid_roots(now):
        raise UnsafeUpdateError(
            f"the new store has no root valid at the device's clock ({_date(int(now.timestamp()))}"
            "): the device could reach no HTTPS endpoint, its feed included")


@dataclass
class UpdateSession:
    """One update check: the manifest, then each image it asks for, accepted step by step."""

    trust: TrustState
    limits: Limits
    entries: list[ManifestEntry] = field(default_factory=list)
    wanted: list[ManifestEntry] = field(default_factory=list)
    staged: list[StagedImage] = field(default_factory=list)
    manifest_date: int = 0

    def accept_manifest(self, data: bytes) -> list[ManifestEntry]:
        """Authenticate and plan; returns the entries still to fetch (empty: nothing to do)."""
        entries, self.manifest_date = accept_manifest(data, self.trust)
        return self.plan(entries)

    def plan(self, entries: list[ManifestEntry]) -> list[ManifestEntry]:
        """Plan `entries` (an authenticated manifest's, or images staged as a feed listing
        exactly them would have); returns the entries still to fetch."""
        self.entries, self.wanted = entries, plan_update(entries, self.trust, self.limits)
        return list(self.wanted)

    @property
    def keyring(self) -> Keyring:
        """The keys that verify the update's other images: its new keystore's, if staged."""
        for staged in self.staged:
            if staged.keystore is not None:
                return staged.keystore.keyring
        return self.trust.keyring

    def accept_image(self, entry: ManifestEntry, data: bytes) -> StagedImage:
        """Stage the image for the next wanted entry (entries are accepted in order).

        ManifestMismatchError if `entry` is not the next entry this session wants.
        """
        if len(self.staged) >= len(self.wanted) or self.wanted[len(self.staged)] != entry:
            raise ManifestMismatchError(
                f"image {entry.image_id} is not the next one this session wants")
        staged = accept_image(entry, data, self.trust, self.keyring)
        self.staged.append(staged)
        if self.complete:
            check_bootable(self.staged, self.trust)
        return staged

    @property
    def complete(self) -> bool:
        """True once every wanted image is staged (and the set they make checked)."""
        return len(self.staged) == len(self.wanted)
