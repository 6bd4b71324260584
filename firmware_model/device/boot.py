"""The boot path: read the boot record, authenticate the slots it names, fall back, confirm.

On every reset:
1. read the newest valid boot record and the fused root-key hash (NotProvisionedError if either
   is missing);
2. load the record's active set: the keystore authenticated against the fused hash, the store
   against that keystore's keys, each at or above its component's anti-rollback counter and
   within what the counter can hold, the store's certificates loaded (`admit_keystore`,
   `admit_store`: the update agent checks a set it would install with the same two rules
   before it writes anything);
3. if that fails, load the fallback set instead and commit a record reverting to it;
   if both fail, BootError (the device does not come up);
4. if the active set was on trial and loaded, commit it confirmed (the trial boot was good);
5. only then, with a confirmed record naming them, raise each counter to the security
   version of the image that booted (a no-op unless a new version was just confirmed, or a
   previous boot lost power between confirming and raising).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from firmware_model.device.bootrecord import BootRecord, RecordArea, RecordState, SlotRef, SlotSet
from firmware_model.device.flash_layout import FlashLayout, slot_name
from firmware_model.device.tls import DeviceStore, as_utc, iso
from firmware_model.errors import (
    BootError,
    FwModelError,
    ImageFormatError,
    NotProvisionedError,
    RollbackError,
    TrustError,
    UnfitImageError,
)
from firmware_model.image.keystore import Keystore
from firmware_model.image.package import ImagePackage
from firmware_model.image.sections import ImageType
from firmware_model.trust.chain import open_keystore, verify_image
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import (
    MAX_SECURITY_VERSION,
    floors,
    raise_floor,
    read_root_hash,
)
from hal.interfaces import Flash, Machine, ResetCause


@dataclass(frozen=True)
class InstalledImage:
    """An image the device runs, as the agent compares updates against it."""

    component: Component
    image_id: uuid.UUID
    component_id: uuid.UUID
    security_version: int
    name: str
    length: int
    digest: bytes

    @classmethod
    def of(
        cls, component: Component, image: ImagePackage, digest: bytes | None = None
    ) -> InstalledImage:
        """`image` as installed; `digest`, if given, must be the SHA-256 of its bytes."""
        if digest is None:
            digest = hashlib.sha256(image.data).digest()
        return cls(component, image.image_id, image.component_id, image.security_version,
                   image.name, len(image.data), digest)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "image_id": str(self.image_id),
                "component_id": str(self.component_id),
                "security_version": self.security_version, "length": self.length,
                "sha256": self.digest.hex()}


@dataclass(frozen=True)
class LoadedSet:
    """A keystore and a store that authenticated together, and where they came from."""

    refs: SlotSet
    keystore_image: ImagePackage
    keystore: Keystore
    store_image: ImagePackage
    store: DeviceStore

    def image(self, component: Component) -> ImagePackage:
        return self.keystore_image if component is Component.KEYSTORE else self.store_image

    def installed(self) -> dict[Component, InstalledImage]:
        """What runs, per component, as the update agent compares against it."""
        return dict(self._installed)

    @cached_property
    def _installed(self) -> dict[Component, InstalledImage]:
        # the digests are the boot record's: `read_slot` checked the bytes against them
        return {c: InstalledImage.of(c, self.image(c), self.refs[c].digest) for c in Component}

    def security_versions(self) -> dict[Component, int]:
        return {c: self.image(c).security_version for c in Component}


def read_slot(flash: Flash, layout: FlashLayout, component: Component, ref: SlotRef) -> bytes:
    """The committed image bytes of `ref`; ImageFormatError if the slot does not hold them."""
    if ref.slot is None:
        raise ImageFormatError(f"no {component.value} slot is committed")
    region = layout.slot(component, ref.slot)
    if not 0 < ref.length <= region.size:
        raise ImageFormatError(
            f"{component.value} slot {slot_name(ref.slot)}: committed length {ref.length} "
            f"does not fit the {region.size}-byte slot"
        )
    data = flash.read(region.offset, ref.length)
    if hashlib.sha256(data).digest() != ref.digest:
        raise ImageFormatError(
            f"{component.value} slot {slot_name(ref.slot)} does not hold the committed image"
        )
    return data


def _fits_counters(component: Component, image: ImagePackage, floor: int) -> None:
    version = image.security_version
    if version < floor:
        raise RollbackError(
            f"{component.value} image {image.name or image.image_id} has security version "
            f"{version}, below the fused {floor}"
        )
    if version > MAX_SECURITY_VERSION:
        raise UnfitImageError(
            f"{component.value} image {image.name or image.image_id} has security version "
            f"{version}; the device's counter holds at most {MAX_SECURITY_VERSION}"
        )


def admit_keystore(image: ImagePackage, counters: Mapping[Component, int]) -> None:
    """What boot requires of an authenticated keystore beyond its signature: a security version
    at or above its counter and within what the counter holds (RollbackError,
    UnfitImageError)."""
    _fits_counters(Component.KEYSTORE, image, counters[Component.KEYSTORE])


def admit_store(image: ImagePackage, counters: Mapping[Component, int]) -> DeviceStore:
    """What boot requires of an authenticated store beyond its signature: its security version
    as `admit_keystore`, and a payload of `certs/<Name>.pem` files holding one certificate each
    (`read_store_payload`; ImageFormatError); the store."""
    _fits_counters(Component.STORE, image, counters[Component.STORE])
    return DeviceStore.from_payload(image.payload)


def load_set(
    flash: Flash,
    layout: FlashLayout,
    refs: SlotSet,
    fused_root_hash: bytes,
    counters: Mapping[Component, int],
) -> LoadedSet:
    """Authenticate the keystore and store `refs` names (TrustError/ImageFormatError if not)."""
    ks_data = read_slot(flash, layout, Component.KEYSTORE, refs.keystore)
    keystore_image, keystore = open_keystore(ks_data, fused_root_hash)
    admit_keystore(keystore_image, counters)
    store_data = read_slot(flash, layout, Component.STORE, refs.store)
    store_image = verify_image(store_data, keystore.keyring, ImageType.UpdateCertStore)
    return LoadedSet(refs, keystore_image, keystore, store_image,
                     admit_store(store_image, counters))


@dataclass(frozen=True)
class BootReport:
    """What a boot did: which set came up, whether it confirmed or reverted, fuses raised; or,
    for a boot that failed (`used` "none"), why (`problem`)."""

    cause: ResetCause
    at: float
    sequence: int | None  # the boot record's; None when there was none to read
    used: str  # "active", "fallback", or "none": the device did not come up
    confirmed: bool = False
    reverted: bool = False
    problem: str | None = None
    raised: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"cause": self.cause.name, "at": self.at, "time": iso(as_utc(self.at)),
                "record_sequence": self.sequence,
                "used": self.used, "confirmed_trial": self.confirmed, "reverted": self.reverted,
                "problem": self.problem, "raised_security_versions": dict(self.raised)}


@dataclass(frozen=True)
class Booted:
    """The device's RAM after a good boot: the record it booted, the set it loaded, and the
    root-key hash it read from the fuses (fused once, never to change)."""

    record: BootRecord
    loaded: LoadedSet
    report: BootReport
    fused_root_hash: bytes = b""


def _describe(error: FwModelError) -> str:
    return f"{type(error).__name__}: {error}"


def failed_boot(cause: ResetCause, at: float, sequence: int | None,
                error: FwModelError) -> BootReport:
    """The report of a boot that did not come up (`used` "none"), saying why."""
    return BootReport(cause, at, sequence, "none", problem=_describe(error))


def boot(machine: Machine, layout: FlashLayout, records: RecordArea) -> Booted:
    """Run the boot path on `machine` (see module doc); the state a good boot leaves in RAM."""
    flash, otp = machine.flash, machine.otp
    record = records.read(flash)
    fused = read_root_hash(otp)
    if record is None or fused is None:
        raise NotProvisionedError("the device is not provisioned (no boot record or root hash)")
    counters = floors(otp)
    cause = machine.reset.last_cause()
    problem = None
    try:
        loaded = load_set(flash, layout, record.active, fused, counters)
        used, next_record = "active", (
            record.confirmed() if record.state is RecordState.TRIAL else None)
    except (TrustError, ImageFormatError) as error:
        problem = _describe(error)
        if record.fallback == record.active or record.fallback.keystore.empty:
            raise BootError(f"record {record.sequence}: active set fails ({problem}); "
                            "no fallback") from None
        try:
            loaded = load_set(flash, layout, record.fallback, fused, counters)
        except (TrustError, ImageFormatError) as second:
            raise BootError(f"record {record.sequence}: active set fails ({problem}); "
                            f"fallback fails ({_describe(second)})") from None
        used, next_record = "fallback", record.reverted()
    if next_record is not None:
        records.commit(flash, next_record)
        record = next_record
    raised = {c.value: v for c, v in loaded.security_versions().items()
              if v > counters[c] and raise_floor(otp, c, v)}
    report = BootReport(cause, machine.clock.wall(), record.sequence, used,
                        confirmed=used == "active" and problem is None
                        and next_record is not None,
                        reverted=used == "fallback", problem=problem, raised=raised)
    machine.console.log(_banner(report))
    return Booted(record, loaded, report, fused)


def _banner(report: BootReport) -> str:
    parts = [f"[boot] cause {report.cause.name}, record {report.sequence}, {report.used} set"]
    if report.confirmed:
        parts.append("trial confirmed")
    if report.reverted:
        parts.append(f"fell back ({report.problem})")
    if report.raised:
        parts.append("security versions raised to "
                     + ", ".join(f"{k} {v}" for k, v in report.raised.items()))
    return "; ".join(parts)
