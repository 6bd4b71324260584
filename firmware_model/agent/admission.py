"""What the device requires of an authenticated image's content before it writes it, whatever
the device's state: one place for the rules the update agent (`decisions`) applies and
`imagetool verify` runs, so that an image the device would refuse for its content is never
called valid.

- a TrustedKeystore: boot's `admit_keystore` (a security version its counter can hold) and a key
  that may sign the next update's manifest (`admit_new_keystore`);
- an UpdateCertStore: boot's `admit_store` (a security version its counter can hold, a cramfs
  payload of `certs/<Name>.pem` files holding one certificate each);
- a BaseSystemUpdateManifest: a well-formed v3 payload with nothing after its last entry, listing
  only keystore and store images, each component once (`admit_manifest`).

What depends on the device (its counters' current values, its clock, the keystore it runs) is
checked by the update agent alone; `admit_content` takes the counters (a fresh device's: 0).
"""

from __future__ import annotations

from collections.abc import Mapping

from firmware_model.device.boot import admit_keystore, admit_store
from firmware_model.errors import (
    ManifestMismatchError,
    UnsafeUpdateError,
    WrongImageTypeError,
)
from firmware_model.image.keystore import Keystore, read_keystore_payload
from firmware_model.image.manifest import ManifestEntry, read_manifest
from firmware_model.image.package import ImagePackage
from firmware_model.image.sections import ImageType, image_type_name
from firmware_model.trust.components import Component

#: The anti-rollback counters of a freshly provisioned device, before any image raised them.
FRESH_COUNTERS: Mapping[Component, int] = {component: 0 for component in Component}


def component_of(image_type: int, offered: str = "the manifest lists") -> Component:
    """The component that keeps images of `image_type`; WrongImageTypeError for another type
    (an image the device does not install, `offered` saying where it came from)."""
    component = Component.for_image_type(image_type)
    if component is None:
        raise WrongImageTypeError(
            f"{offered} a {image_type_name(image_type)} image; this device installs "
            "TrustedKeystore and UpdateCertStore images only"
        )
    return component


def admit_new_keystore(
    image: ImagePackage, keystore: Keystore, counters: Mapping[Component, int]
) -> None:
    """A keystore the device would boot: `admit_keystore` (RollbackError, UnfitImageError), and
    an unrevoked key allowed to sign manifests (else the device could never take another
    update: UnsafeUpdateError)."""
    admit_keystore(image, counters)
    manifests = ImageType.BaseSystemUpdateManifest
    if not any(manifests in key.image_types and not key.revoked for key in keystore.keys):
        raise UnsafeUpdateError("the new keystore trusts no key to sign an update manifest: "
                                "the device could never take another update")


def admit_manifest(image: ImagePackage) -> list[ManifestEntry]:
    """The entries of an authenticated manifest: the payload read strictly (ImageFormatError),
    keystore and store images only (WrongImageTypeError), each component once
    (ManifestMismatchError)."""
    entries = read_manifest(image.payload)
    seen: set[Component] = set()
    for entry in entries:
        component = component_of(entry.image_type)
        if component in seen:
            raise ManifestMismatchError(f"the manifest lists two {component.value} images")
        seen.add(component)
    return entries


def admit_content(
    image: ImagePackage, counters: Mapping[Component, int] = FRESH_COUNTERS
) -> None:
    """The device's rules for the content of an authenticated image of a type it takes (see
    module doc); nothing for other types. Raises the typed error the device raises."""
    if image.image_type == ImageType.TrustedKeystore:
        admit_new_keystore(image, read_keystore_payload(image.payload), counters)
    elif image.image_type == ImageType.UpdateCertStore:
        admit_store(image, counters)
    elif image.image_type == ImageType.BaseSystemUpdateManifest:
        admit_manifest(image)
