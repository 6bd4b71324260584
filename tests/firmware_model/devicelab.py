"""Helpers for the device-model tests: the built images, crafted images and feeds, snapshots
of what a device looks like from outside (status, flash outside staging, fuses)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from firmware_model.agent.feed import MANIFEST_NAME, MemoryFeed, image_file_name
from firmware_model.device.flash_layout import complement
from firmware_model.device.model import Device
from firmware_model.device.provision import FactoryImages
from firmware_model.device.status import device_status
from firmware_model.image.build import build_package
from firmware_model.image.certstore import build_store_payload, read_store_payload
from firmware_model.image.keystore import TrustedKey, build_keystore_payload
from firmware_model.image.manifest import ManifestEntry, build_manifest
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from firmware_model.image.signing import Signer
from hal.interfaces import FlashGeometry
from hal.soft.machine import SoftwareMachine
from tools.build_images import build_all
from tools.pki import IMAGE_SIGNING, KEYSTORE_SIGNING, ROOT, issue, load_signer, new_key

#: Component GUIDs of the shipped recipes (images/recipes/*.toml).
STORE_COMPONENT = uuid.UUID("e5f5f3fc-2eb5-4d1b-a650-b72364446807")
KEYSTORE_COMPONENT = uuid.UUID("46dae4ab-8d2f-483c-94a4-c873c0e82ea2")
MANIFEST_COMPONENT = uuid.UUID("f8c320c7-db5e-4805-b1e9-1535cce8f4fc")
SIGNABLE = (ImageType.UpdateCertStore, ImageType.BaseSystemUpdateManifest)
#: A small flash for tests that build machines of their own (in memory, fault injector on).
SMALL = FlashGeometry(size=1024 * 1024, sector_size=4096, page_size=256)


#: When the lab's own manifests are built: after the shipped 2025-02-10 ones (2025-03-01).
LAB_MANIFEST_DATE = 1_740_787_200


@dataclass(frozen=True)
class Lab:
    """A build folder made by tools/build_images.py, and ways to craft more images with its keys."""

    folder: Path

    @classmethod
    def build(cls, folder: Path) -> Lab:
        build_all(folder)
        return cls(folder)

    def signer(self, stem: str = IMAGE_SIGNING) -> Signer:
        keys = self.folder / "keys"
        return load_signer(keys / f"{stem}.key", keys / f"{stem}.pem")

    def image(self, name: str) -> bytes:
        return (self.folder / f"{name}.imagepackage").read_bytes()

    @property
    def factory(self) -> FactoryImages:
        return FactoryImages.from_build(self.folder)

    def feed_dir(self, channel: str = "Retail") -> Path:
        return self.folder / "feeds" / channel

    def feed(self, channel: str = "Retail") -> MemoryFeed:
        return MemoryFeed.from_directory(self.feed_dir(channel))

    def roots(self, store: str = "certstore-2024") -> list[tuple[str, x509.Certificate]]:
        return read_store_payload(parse_package(self.image(store)).payload)

    def store(self, roots: Sequence[tuple[str, x509.Certificate]], security_version: int, *,
              signer: Signer | None = None, image_id: uuid.UUID | None = None,
              component_id: uuid.UUID = STORE_COMPONENT) -> bytes:
        """A store image holding `roots`, signed by the image-signing key unless told."""
        return build_package(build_store_payload(roots), image_type=ImageType.UpdateCertStore,
                             component_id=component_id, image_id=image_id or uuid.uuid4(),
                             signer=signer or self.signer(), name="lab-store",
                             security_version=security_version)

    def keystore(self, keys: Sequence[TrustedKey] | None = None, *, security_version: int = 1,
                 carried: Signer | None = None, signer: Signer | None = None) -> bytes:
        """A keystore image: `carried` is the certificate in the payload, `signer` signs it."""
        carried = carried or self.signer(KEYSTORE_SIGNING)
        if keys is None:
            keys = [TrustedKey.from_certificate(self.signer().certificate, SIGNABLE)]
        root = self.signer(ROOT).key.public_key()
        payload = build_keystore_payload(root, carried.certificate, keys)
        return build_package(payload, image_type=ImageType.TrustedKeystore,
                             component_id=KEYSTORE_COMPONENT, image_id=uuid.uuid4(),
                             signer=signer or carried, name="lab-keystore",
                             security_version=security_version)

    def manifest(self, images: Sequence[bytes], *, signer: Signer | None = None,
                 entries: Sequence[ManifestEntry] | None = None,
                 build_date: int = LAB_MANIFEST_DATE) -> bytes:
        """A manifest listing `images` exactly (or the given `entries`), built at `build_date`
        (by default after the shipped feeds' manifests, so it is not taken for a replay)."""
        listed = entries if entries is not None else [
            ManifestEntry.for_image(parse_package(data)) for data in images]
        return build_package(build_manifest(listed, build_date),
                             image_type=ImageType.BaseSystemUpdateManifest,
                             component_id=MANIFEST_COMPONENT, image_id=uuid.uuid4(),
                             signer=signer or self.signer(), name="lab-manifest")


def small_device(lab: Lab | None = None) -> Device:
    """A device on an in-memory software machine of SMALL geometry, provisioned from `lab`."""
    device = Device(SoftwareMachine(None, SMALL))
    if lab is not None:
        device.provision(lab.factory)
    return device


def stranger(common_name: str = "Stranger") -> Signer:
    """A self-signed signer that no lab root knows."""
    key = new_key()
    return Signer(key, issue(common_name, key))


def feed_of(manifest: bytes, images: Sequence[bytes],
            served: dict[uuid.UUID, bytes] | None = None) -> MemoryFeed:
    """A feed serving `manifest` and `images` under their own GUIDs (or `served` overrides)."""
    files = {MANIFEST_NAME: manifest}
    for data in images:
        files[image_file_name(parse_package(data).image_id)] = data
    for image_id, data in (served or {}).items():
        files[image_file_name(image_id)] = data
    return MemoryFeed(files, "lab feed")


def image_id_of(data: bytes) -> uuid.UUID:
    return parse_package(data).image_id


#: What `status` reads off the device's clock: not the device's state (a board whose clock runs
#: on its own, QEMU's, moves them between two readings).
CLOCK_READINGS = ("device_time", "uptime_s")


def without_clock(status: dict[str, object]) -> dict[str, object]:
    """`status` without its clock readings."""
    return {key: value for key, value in status.items() if key not in CLOCK_READINGS}


@dataclass(frozen=True)
class Outside:
    """What a device looks like from outside: status (but its clock readings), hashes of flash
    outside staging and of the whole flash, fuses. Equal before and after: the device is as it
    was."""

    status: dict[str, object]
    outside_staging: tuple[bytes, ...]
    whole_flash: bytes
    fuses: tuple[int, ...]

    @classmethod
    def of(cls, device: Device) -> Outside:
        flash, otp = device.machine.flash, device.machine.otp
        size = flash.geometry.size
        spans = complement(size, device.staging())
        return cls(without_clock(device_status(device)),
                   tuple(flash.hash(start, end - start) for start, end in spans),
                   flash.hash(0, size),
                   tuple(otp.read_word(i) for i in range(otp.word_count)))


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
