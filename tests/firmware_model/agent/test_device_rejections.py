"""Every refusal of issue 4 leaves the device as it was: same status, same flash outside
staging (the whole flash, in fact: refusals are decided before the first write), same fuses;
and names its reason on the console and in its exit code."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization

from firmware_model.agent.feed import MemoryFeed
from firmware_model.agent.updater import Updater
from firmware_model.device.model import Device
from firmware_model.errors import (
    FwModelError,
    ImageFormatError,
    ManifestMismatchError,
    ReplayError,
    RevokedError,
    RollbackError,
    SignatureError,
    SizeLimitError,
    UnfitImageError,
    UnsafeUpdateError,
    UntrustedSignerError,
    WrongImageTypeError,
)
from firmware_model.image.build import build_package
from firmware_model.image.cramfs import build_cramfs
from firmware_model.image.keystore import TrustedKey
from firmware_model.image.manifest import ManifestEntry
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from firmware_model.trust.components import Component
from policy.cli import ExitCode
from policy.cli import exit_code as exit_code_of
from tests.firmware_model.devicelab import (
    SIGNABLE,
    STORE_COMPONENT,
    Lab,
    Outside,
    feed_of,
    image_id_of,
    stranger,
)
from tools.pki import issue, new_key

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


# --- a hostile feed (issue 9): attacks that must fail before anything is written -------------


def keystore_minted_by_the_image_signing_key(lab: Lab, device: Device) -> MemoryFeed:
    """The image-signing key (issued by the fused root, like the keystore signer) mints a
    keystore that gives an attacker's key every right, and ships the attacker's store."""
    attacker = stranger("Attacker")
    everything = TrustedKey.from_certificate(attacker.certificate)
    image_signer = lab.signer()
    keystore = lab.keystore([everything], carried=image_signer, signer=image_signer)
    store = lab.store(lab.roots(NEW_STORE), 2, signer=attacker)
    return feed_of(lab.manifest([keystore, store]), [keystore, store])


def store_that_is_not_a_filesystem(lab: Lab, device: Device) -> MemoryFeed:
    """An authentic store image whose payload is not cramfs: it would never boot."""
    store = build_package(b"certificates, honestly" * 8, image_type=ImageType.UpdateCertStore,
                          component_id=STORE_COMPONENT, image_id=uuid.uuid4(),
                          signer=lab.signer(), name="not-a-store", security_version=2)
    return feed_of(lab.manifest([store]), [store])


def store_with_two_roots_in_one_file(lab: Lab, device: Device) -> MemoryFeed:
    """An authentic store whose one file, certs/Bundle.pem, holds two roots: refused whole,
    never installed as its first root (docs/image-format.md, UpdateCertStore)."""
    pems = [cert.public_bytes(serialization.Encoding.PEM) for _, cert in lab.roots(NEW_STORE)]
    store = build_package(build_cramfs({"certs/Bundle.pem": b"".join(pems)}),
                          image_type=ImageType.UpdateCertStore, component_id=STORE_COMPONENT,
                          image_id=uuid.uuid4(), signer=lab.signer(), name="bundle-store",
                          security_version=2)
    return feed_of(lab.manifest([store]), [store])


def store_version_past_the_counter(lab: Lab, device: Device) -> MemoryFeed:
    """Security version 65: the store's 64-bit thermometer cannot hold it."""
    store = lab.store(lab.roots(NEW_STORE), 65)
    return feed_of(lab.manifest([store]), [store])


def keystore_version_past_the_counter(lab: Lab, device: Device) -> MemoryFeed:
    """Security version 2^32-1 on a keystore."""
    keystore = lab.keystore(security_version=2**32 - 1)
    return feed_of(lab.manifest([keystore]), [keystore])


def keystore_that_drops_the_running_stores_signer(lab: Lab, device: Device) -> MemoryFeed:
    """A new keystore alone, whose key may sign manifests but no longer stores: the running
    store would not authenticate at the next boot."""
    manifests_only = TrustedKey.from_certificate(lab.signer().certificate,
                                                 [ImageType.BaseSystemUpdateManifest])
    keystore = lab.keystore([manifests_only])
    return feed_of(lab.manifest([keystore]), [keystore])


def keystore_that_trusts_no_manifest_signer(lab: Lab, device: Device) -> MemoryFeed:
    """A new keystore whose only key may sign stores: no update could ever follow it."""
    stores_only = TrustedKey.from_certificate(lab.signer().certificate,
                                              [ImageType.UpdateCertStore])
    keystore = lab.keystore([stores_only])
    return feed_of(lab.manifest([keystore]), [keystore])


def image_with_an_unknown_section(lab: Lab, device: Device) -> MemoryFeed:
    """An authentic store carrying a section the device does not know ('ZZ')."""
    payload = parse_package(lab.image(NEW_STORE)).payload
    store = build_package(payload, image_type=ImageType.UpdateCertStore,
                          component_id=STORE_COMPONENT, image_id=uuid.uuid4(),
                          signer=lab.signer(), name="odd-store", security_version=2,
                          extra_sections=[{"id": 0x5A5A, "data": b"what is this"}])
    return feed_of(lab.manifest([store]), [store])


def store_with_no_root_valid_now(lab: Lab, device: Device) -> MemoryFeed:
    """A store whose only root expired before the device's clock (2025-02-01)."""
    key = new_key()
    expired = issue("Expired Root", key, ca=True,
                    not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                    not_after=dt.datetime(2024, 12, 31, tzinfo=dt.UTC))
    store = lab.store([("Expired_Root", expired)], 2)
    return feed_of(lab.manifest([store]), [store])


def signed_image_swapped_under_another_guid(lab: Lab, device: Device) -> MemoryFeed:
    """Another validly signed store, the same GUID, size, type and version as the one the
    manifest lists, only its bytes differ (TUF's mix-and-match: the GUID alone bound it)."""
    listed = parse_package(lab.store(lab.roots(NEW_STORE), 2))
    swapped = build_package(listed.payload, image_type=ImageType.UpdateCertStore,
                            component_id=STORE_COMPONENT, image_id=listed.image_id,
                            signer=lab.signer(), name="swapped", security_version=2)
    assert len(swapped) == len(listed.data) and swapped != listed.data
    return feed_of(lab.manifest([listed.data]), [], {listed.image_id: swapped})


def replayed_older_manifest(lab: Lab, device: Device) -> MemoryFeed:
    """After an update from a manifest built 2025-03-01, a manifest built 2025-02-10 (the
    shipped one, validly signed): a replay, whatever it lists."""
    newer = lab.store(lab.roots(NEW_STORE), 2)
    Updater(device).check_for_update(feed_of(lab.manifest([newer]), [newer]))
    return lab.feed()


CASES: list[tuple[Case, type[FwModelError], int, str]] = [
    (keystore_minted_by_the_image_signing_key, UntrustedSignerError, ExitCode.REFUSED,
     "lacks the keystore-signing role"),
    (store_that_is_not_a_filesystem, ImageFormatError, ExitCode.BAD_INPUT, "no cramfs magic"),
    (store_with_two_roots_in_one_file, ImageFormatError, ExitCode.BAD_INPUT,
     "certs/Bundle.pem holds 2 certificates, not one"),
    (store_version_past_the_counter, UnfitImageError, ExitCode.REFUSED, "holds at most 64"),
    (keystore_version_past_the_counter, UnfitImageError, ExitCode.REFUSED, "holds at most 64"),
    (keystore_that_drops_the_running_stores_signer, UntrustedSignerError, ExitCode.REFUSED,
     "may not sign UpdateCertStore images"),
    (keystore_that_trusts_no_manifest_signer, UnsafeUpdateError, ExitCode.REFUSED,
     "could never take another update"),
    (image_with_an_unknown_section, ImageFormatError, ExitCode.BAD_INPUT, "unknown section 'ZZ'"),
    (store_with_no_root_valid_now, UnsafeUpdateError, ExitCode.REFUSED, "no root valid"),
    (signed_image_swapped_under_another_guid, ManifestMismatchError, ExitCode.REFUSED,
     "its SHA-256 differs"),
    (replayed_older_manifest, ReplayError, ExitCode.REFUSED, "a replay"),
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
    last = device.machine.console.lines()[-1]  # a small board may cut a line short (§6.3)
    said = f"[agent] update from {feed.location} refused ({error.__name__}): {refused.value}"
    assert last.startswith("[agent] update from") and said.startswith(last[:len(said)])


def test_the_device_still_updates_after_a_refusal(device: Device, device_lab: Lab) -> None:
    with pytest.raises(ManifestMismatchError):
        Updater(device).check_for_update(tampered(device_lab, device))
    result = Updater(device).check_for_update(device_lab.feed())
    assert result.boot is not None and result.boot.confirmed
    assert "Baltimore_CyberTrust_Root" not in device.store.names
