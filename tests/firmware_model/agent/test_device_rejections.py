"""Every refusal of issue 4 leaves the device as it was: same status, same flash outside
staging (the whole flash, in fact: refusals are decided before the first write), same fuses;
and names its reason on the console and in its exit code."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest

from firmware_model.agent.feed import MemoryFeed
from firmware_model.agent.updater import Updater
from firmware_model.device.model import Device
from firmware_model.errors import (
    FwModelError,
    ManifestMismatchError,
    RevokedError,
    RollbackError,
    SignatureError,
    SizeLimitError,
    UntrustedSignerError,
    WrongImageTypeError,
)
from firmware_model.image.keystore import TrustedKey
from firmware_model.image.manifest import ManifestEntry
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from firmware_model.trust.components import Component
from policy.cli import ExitCode
from policy.cli import exit_code as exit_code_of
from tests.firmware_model.devicelab import (
    SIGNABLE,
    Lab,
    Outside,
    feed_of,
    image_id_of,
    stranger,
)

NEW_STORE = "certstore-2025-02"
NEW_KEYSTORE = "keystore-2025-02"

Case = Callable[[Lab, Device], MemoryFeed]


def entry(data: bytes) -> ManifestEntry:
    return ManifestEntry.for_image(parse_package(data))


def _tampered_store(lab: Lab) -> bytes:
    store = bytearray(lab.image(NEW_STORE))
    store[200] ^= 0x40  # inside the cramfs payload: same size, same GUIDs
    return bytes(store)


def tampered(lab: Lab, device: Device) -> MemoryFeed:
    """Bytes changed in transit: the manifest's SHA-256 no longer matches."""
    return feed_of(lab.manifest([lab.image(NEW_STORE)]), [], {
        image_id_of(lab.image(NEW_STORE)): _tampered_store(lab)})


def manifest_of_a_forged_image(lab: Lab, device: Device) -> MemoryFeed:
    """A signed manifest that lists a forged image's own bytes: its signature fails."""
    forged = _tampered_store(lab)
    return feed_of(lab.manifest([forged]), [forged])


def wrong_type(lab: Lab, device: Device) -> MemoryFeed:
    """A valid keystore image served where the manifest lists the store."""
    return feed_of(lab.manifest([lab.image(NEW_STORE)]), [], {
        image_id_of(lab.image(NEW_STORE)): lab.image(NEW_KEYSTORE)})


def store_as_manifest(lab: Lab, device: Device) -> MemoryFeed:
    """A valid store image served as the manifest."""
    return feed_of(lab.image(NEW_STORE), [lab.image(NEW_STORE)])


def manifest_of_an_app(lab: Lab, device: Device) -> MemoryFeed:
    """A manifest listing an image type the device does not install."""
    app = replace(entry(lab.image(NEW_STORE)), image_type=int(ImageType.Applications))
    return feed_of(lab.manifest([], entries=[app]), [])


def not_in_manifest(lab: Lab, device: Device) -> MemoryFeed:
    """The old store served under the new store's name."""
    return feed_of(lab.manifest([lab.image(NEW_STORE)]), [], {
        image_id_of(lab.image(NEW_STORE)): lab.image("certstore-2024")})


def version_mismatch(lab: Lab, device: Device) -> MemoryFeed:
    """The manifest pins security version 3; the image carries 2."""
    pinned = replace(entry(lab.image(NEW_STORE)), security_version=3)
    return feed_of(lab.manifest([], entries=[pinned]), [lab.image(NEW_STORE)])


def other_component(lab: Lab, device: Device) -> MemoryFeed:
    """A store for another component than the device's."""
    store = lab.store(lab.roots(NEW_STORE), 2, component_id=uuid.uuid4())
    return feed_of(lab.manifest([store]), [store])


def keystore_not_certified(lab: Lab, device: Device) -> MemoryFeed:
    """A keystore whose signer certificate the fused root did not issue."""
    keystore = lab.keystore(carried=stranger("Rogue Keystore Signer"))
    store = lab.image(NEW_STORE)
    return feed_of(lab.manifest([keystore, store]), [keystore, store])


def revoked_signer(lab: Lab, device: Device) -> MemoryFeed:
    """The update's keystore revokes the key that signed the update's store."""
    revoked = replace(TrustedKey.from_certificate(lab.signer().certificate, SIGNABLE),
                      revoked=True)
    keystore = lab.keystore([revoked])
    store = lab.image(NEW_STORE)
    return feed_of(lab.manifest([keystore, store]), [keystore, store])


def untrusted_signer(lab: Lab, device: Device) -> MemoryFeed:
    store = lab.store(lab.roots(NEW_STORE), 2, signer=stranger())
    return feed_of(lab.manifest([store]), [store])


def untrusted_manifest(lab: Lab, device: Device) -> MemoryFeed:
    return feed_of(lab.manifest([lab.image(NEW_STORE)], signer=stranger()),
                   [lab.image(NEW_STORE)])


def manifest_over_limit(lab: Lab, device: Device) -> MemoryFeed:
    """A signed manifest of 900 entries: over the 64 KiB a manifest may take."""
    base = entry(lab.image(NEW_STORE))
    entries = [replace(base, image_id=uuid.uuid4()) for _ in range(900)]
    return feed_of(lab.manifest([], entries=entries), [])


def image_over_slot(lab: Lab, device: Device) -> MemoryFeed:
    """A manifest entry larger than the store's slot."""
    capacity = device.flash_layout.capacity(Component.STORE)
    huge = replace(entry(lab.image(NEW_STORE)), size=capacity + 1)
    return feed_of(lab.manifest([], entries=[huge]), [lab.image(NEW_STORE)])


def image_over_entry(lab: Lab, device: Device) -> MemoryFeed:
    """An image larger than its manifest entry says."""
    short = replace(entry(lab.image(NEW_STORE)), size=4000)
    return feed_of(lab.manifest([], entries=[short]), [lab.image(NEW_STORE)])


def rollback(lab: Lab, device: Device) -> MemoryFeed:
    """After the 2025 store (security version 2) is confirmed, the 2024 store (1) again."""
    Updater(device).check_for_update(lab.feed())
    old = lab.image("certstore-2024")
    return feed_of(lab.manifest([old]), [old])


CASES: list[tuple[Case, type[FwModelError], int, str]] = [
    (tampered, ManifestMismatchError, ExitCode.REFUSED, "its SHA-256 differs"),
    (manifest_of_a_forged_image, SignatureError, ExitCode.REFUSED, "signature does not verify"),
    (wrong_type, WrongImageTypeError, ExitCode.REFUSED, "TrustedKeystore image where the manifest"),
    (store_as_manifest, WrongImageTypeError, ExitCode.REFUSED, "not a BaseSystemUpdateManifest"),
    (manifest_of_an_app, WrongImageTypeError, ExitCode.REFUSED, "lists a Applications image"),
    (not_in_manifest, ManifestMismatchError, ExitCode.REFUSED, "is not in the manifest"),
    (version_mismatch, ManifestMismatchError, ExitCode.REFUSED, "the manifest says 3"),
    (other_component, ManifestMismatchError, ExitCode.REFUSED, "this device's is"),
    (keystore_not_certified, UntrustedSignerError, ExitCode.REFUSED, "not certified by the root"),
    (revoked_signer, RevokedError, ExitCode.REFUSED, "is revoked"),
    (untrusted_signer, UntrustedSignerError, ExitCode.REFUSED, "is not in the keystore"),
    (untrusted_manifest, UntrustedSignerError, ExitCode.REFUSED, "is not in the keystore"),
    (manifest_over_limit, SizeLimitError, ExitCode.BAD_INPUT, "larger than its limit of 65536"),
    (image_over_slot, SizeLimitError, ExitCode.BAD_INPUT, "its slot holds"),
    (image_over_entry, SizeLimitError, ExitCode.BAD_INPUT, "larger than its limit of 4000"),
    (rollback, RollbackError, ExitCode.REFUSED, "requires at least 2"),
]


@pytest.mark.parametrize(("case", "error", "exit_code", "reason"), CASES,
                         ids=[case.__name__ for case, *_ in CASES])
def test_a_refused_update_leaves_the_device_as_it_was(
    device: Device, device_lab: Lab, case: Case, error: type[FwModelError], exit_code: int,
    reason: str,
) -> None:
    feed = case(device_lab, device)
    before = Outside.of(device)
    with pytest.raises(error, match=reason) as refused:
        Updater(device).check_for_update(feed)
    assert type(refused.value) is error and exit_code_of(refused.value) == exit_code
    assert Outside.of(device) == before
    last = device.machine.console.lines()[-1]
    assert f"refused ({error.__name__})" in last and reason in last


def test_the_device_still_updates_after_a_refusal(device: Device, device_lab: Lab) -> None:
    with pytest.raises(ManifestMismatchError):
        Updater(device).check_for_update(tampered(device_lab, device))
    result = Updater(device).check_for_update(device_lab.feed())
    assert result.boot is not None and result.boot.confirmed
    assert "Baltimore_CyberTrust_Root" not in device.store.names
