"""The update agent's decisions: pure functions of what the device trusts and what it is given.

Like python-tuf's TrustedMetadataSet, an `UpdateSession` accepts untrusted bytes one piece at a
time (the manifest, then each image it asks for) and either returns what it now trusts or
raises the typed error saying why not. It never touches flash, the network or the clock; the
device (`firmware_model.device.model`) fetches, writes, notifies apps and resets around it.

What it checks, in order:
- manifest: no larger than its limit (the fetch enforces it), of type BaseSystemUpdateManifest,
  signed by a key of the running keystore allowed to sign manifests, a well-formed v3 payload
  listing only components this device keeps (keystore, store), each at most once;
- plan: an entry whose image GUID is installed already is skipped; an entry for another
  component GUID than the installed one, larger than its slot, or with a security version
  below the component's counter (or below the running image's) is refused;
- each image, before it is authenticated: its type, image GUID, component GUID and size as
  the entry says (no mix-and-match); bytes cut short are a FeedError; then authenticated: a keystore
  against the fused root-key hash, any other image against the keys of the keystore that will
  boot with it (the update's new keystore if it has one, else the running one); then its
  security version as the entry says.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from firmware_model.device.boot import InstalledImage
from firmware_model.errors import (
    FeedError,
    ImageFormatError,
    ManifestMismatchError,
    RollbackError,
    SizeLimitError,
    WrongImageTypeError,
)
from firmware_model.image import derive
from firmware_model.image.keystore import Keyring, Keystore
from firmware_model.image.manifest import ManifestEntry, read_manifest
from firmware_model.image.package import ImagePackage, PackageLayout, locate
from firmware_model.image.sections import SECTION_FORMATS, ImageType, SectionId, image_type_name
from firmware_model.trust.chain import open_keystore, verify_image
from firmware_model.trust.components import INSTALL_ORDER, Component

MANIFEST_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Identity:
    """What an image's ID section claims (read before authentication, trusted only after)."""

    image_type: int
    component_id: uuid.UUID
    image_id: uuid.UUID


# the ID section as stored (GUIDs raw: `_guid` turns them into UUIDs, memoized)
_IDENTITY = derive.run(SECTION_FORMATS[SectionId.Identity]).struct


@functools.lru_cache(maxsize=64)
def _guid(bytes_le: bytes) -> uuid.UUID:
    """A GUID from its .NET bytes (memoized: a device meets the same few again and again)."""
    return uuid.UUID(bytes_le=bytes_le)


def peek(data: bytes) -> tuple[Identity, PackageLayout]:
    """The ID section of an image package and the package's layout (`locate(data)`, for the
    authentication that follows); ImageFormatError if the envelope is malformed."""
    layout = locate(data)
    image_type, _reserved, component, image = _IDENTITY.unpack_from(
        data, layout.spans[SectionId.Identity][0])
    return Identity(image_type, _guid(component), _guid(image)), layout


@dataclass(frozen=True)
class TrustState:
    """What the running device trusts: the input to every decision of a session."""

    fused_root_hash: bytes
    keyring: Keyring
    floors: Mapping[Component, int]
    installed: Mapping[Component, InstalledImage]


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
    digest: bytes
    keystore: Keystore | None = None

    @property
    def data(self) -> bytes:
        return self.image.data


def _component(image_type: int) -> Component:
    component = Component.for_image_type(image_type)
    if component is None:
        raise WrongImageTypeError(
            f"the manifest lists a {image_type_name(image_type)} image; this device installs "
            "TrustedKeystore and UpdateCertStore images only"
        )
    return component


def accept_manifest(data: bytes, trust: TrustState) -> list[ManifestEntry]:
    """The entries of an authenticated manifest (see module doc for the checks)."""
    identity, layout = peek(data)
    claimed = identity.image_type
    if claimed != ImageType.BaseSystemUpdateManifest:
        raise WrongImageTypeError(
            f"the feed's manifest is a {image_type_name(claimed)} image, "
            "not a BaseSystemUpdateManifest"
        )
    image = verify_image(data, trust.keyring, ImageType.BaseSystemUpdateManifest, layout)
    entries = read_manifest(image.payload)
    seen: set[Component] = set()
    for entry in entries:
        component = _component(entry.image_type)
        if component in seen:
            raise ManifestMismatchError(f"the manifest lists two {component.value} images")
        seen.add(component)
    return entries


def plan_update(
    entries: Sequence[ManifestEntry], trust: TrustState, limits: Limits
) -> list[ManifestEntry]:
    """The entries to install, in install order (keystore first); refusals raise."""
    wanted = []
    for entry in entries:
        component = _component(entry.image_type)
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
        wanted.append(entry)
    return sorted(wanted, key=lambda e: INSTALL_ORDER.index(_component(e.image_type)))


def check_claims(entry: ManifestEntry, data: bytes) -> PackageLayout:
    """Type, GUIDs and size of `data` as `entry` says; raises before any signature is checked.
    Returns the package's layout (`locate(data)`).

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
    return layout


def accept_image(
    entry: ManifestEntry, data: bytes, trust: TrustState, keyring: Keyring
) -> StagedImage:
    """Check `data` against `entry`, authenticate it, and stage it (see module doc)."""
    layout = check_claims(entry, data)
    component = _component(entry.image_type)
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
    return StagedImage(component, entry, image, hashlib.sha256(data).digest(), keystore)


@dataclass
class UpdateSession:
    """One update check: the manifest, then each image it asks for, accepted step by step."""

    trust: TrustState
    limits: Limits
    entries: list[ManifestEntry] = field(default_factory=list)
    wanted: list[ManifestEntry] = field(default_factory=list)
    staged: list[StagedImage] = field(default_factory=list)

    def accept_manifest(self, data: bytes) -> list[ManifestEntry]:
        """Authenticate and plan; returns the entries still to fetch (empty: nothing to do)."""
        self.entries = accept_manifest(data, self.trust)
        self.wanted = plan_update(self.entries, self.trust, self.limits)
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
        return staged

    @property
    def complete(self) -> bool:
        """True once every wanted image is staged."""
        return len(self.staged) == len(self.wanted)
