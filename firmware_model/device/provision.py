"""Provisioning: a fresh device gets its root-key hash fused, a keystore and a store in slot A.

Everything is checked before anything is written: the keystore must authenticate against the
root-key hash and the store against that keystore, and both must pass boot's own admission
(security versions the counters hold, a store whose certificates load), so that the first boot
cannot fail. Then, in this order: the root-key hash is
fused, both images are written to slot A and read back, the first boot record (confirmed,
no fallback) is committed, and the anti-rollback counters are raised to the images' security
versions. Until the boot record is committed the device is not provisioned, so a power cut
before then leaves a device that provisioning can simply be run on again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from firmware_model.device.boot import admit_keystore, admit_store
from firmware_model.device.bootrecord import RecordArea, SlotRef, SlotSet, first_record
from firmware_model.device.flash_layout import FlashLayout
from firmware_model.device.slots import write_slot
from firmware_model.errors import ProvisioningError, SizeLimitError
from firmware_model.image.sections import ImageType
from firmware_model.trust.chain import open_keystore, verify_image
from firmware_model.trust.components import Component
from firmware_model.trust.fuses import floors, fuse_root_hash, raise_floor, read_root_hash
from hal.interfaces import Machine
from policy.files import read_regular, read_regular_text

#: The file of a lab PKI (`imagetool keygen`) holding the root-key hash a device fuses (hex).
ROOT_HASH_NAME = "root.hash"
#: The images a build folder (`tools/build_images.py`) provides for provisioning.
ROOT_HASH_FILE = f"keys/{ROOT_HASH_NAME}"
KEYSTORE_FILE = "keystore-2024.imagepackage"
STORE_FILE = "certstore-2024.imagepackage"


@dataclass(frozen=True)
class FactoryImages:
    """What a device is provisioned with: the root-key hash to fuse and two images."""

    root_hash: bytes
    keystore: bytes
    store: bytes

    @classmethod
    def from_build(
        cls,
        folder: Path,
        keystore: str | Path = KEYSTORE_FILE,
        store: str | Path = STORE_FILE,
        root_hash: bytes | None = None,
    ) -> FactoryImages:
        """Read `keys/root.hash` (hex; not read when `root_hash` is given) and the two images
        from a build folder. `keystore` and `store` are paths within `folder`; an absolute
        path is read as it is."""
        if root_hash is None:
            root_hash = parse_root_hash(read_regular_text(folder / ROOT_HASH_FILE))
        return cls(root_hash, read_regular(folder / keystore), read_regular(folder / store))


def parse_root_hash(text: str) -> bytes:
    """32 bytes from 64 hex digits (surrounding white space ignored)."""
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        raise ProvisioningError("the root-key hash is not hex") from None
    if len(value) != 32:
        raise ProvisioningError(f"the root-key hash is {len(value)} bytes, not 32")
    return value


def provision(
    machine: Machine, layout: FlashLayout, records: RecordArea, images: FactoryImages
) -> None:
    """Provision a fresh device (see module doc); ProvisioningError if it is provisioned."""
    flash = machine.flash
    if records.read(flash) is not None:
        raise ProvisioningError("the device is provisioned already (it has a boot record)")
    fused = read_root_hash(machine.otp)
    if fused is not None and fused != images.root_hash:
        raise ProvisioningError("the device's fuses hold another root-key hash")
    keystore_image, keystore = open_keystore(images.keystore, images.root_hash)
    store_image = verify_image(images.store, keystore.keyring, ImageType.UpdateCertStore)
    counters = floors(machine.otp)  # boot's own rules, so the first boot cannot fail them
    admit_keystore(keystore_image, counters)
    admit_store(store_image, counters)
    for component, data in ((Component.KEYSTORE, images.keystore),
                            (Component.STORE, images.store)):
        if len(data) > layout.capacity(component):
            raise SizeLimitError(f"the {component.value} image is {len(data)} bytes; "
                                 f"its slot holds {layout.capacity(component)}")
    fuse_root_hash(machine.otp, images.root_hash)
    refs = {}
    for component, data in ((Component.KEYSTORE, images.keystore),
                            (Component.STORE, images.store)):
        write_slot(flash, layout, component, 0, data)
        refs[component] = SlotRef(0, len(data), hashlib.sha256(data).digest())
    records.commit(flash, first_record(SlotSet(refs[Component.KEYSTORE], refs[Component.STORE])))
    raise_floor(machine.otp, Component.KEYSTORE, keystore_image.security_version)
    raise_floor(machine.otp, Component.STORE, store_image.security_version)
    machine.console.log("[provision] root-key hash fused; keystore "
                        f"{keystore_image.name} and store {store_image.name} in slot A")
