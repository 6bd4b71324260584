"""What the device does with the parts of an image the spec leaves it free to ignore, and which
fields it reads (docs/image-format.md: Sections, BaseSystemUpdateManifest, Security versions):
each point an outside implementer asked about, shown on a device taking an update."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from firmware_model.agent.feed import MANIFEST_NAME, MemoryFeed, image_file_name
from firmware_model.agent.updater import UpdateOutcome, Updater
from firmware_model.device.model import Device
from firmware_model.device.provision import FactoryImages
from firmware_model.errors import (
    FeedError,
    ReplayError,
    RollbackError,
    TlsError,
    UnsafeUpdateError,
)
from firmware_model.image.build import build_package, encode_section
from firmware_model.image.certstore import build_store_payload
from firmware_model.image.manifest import ManifestEntry, build_manifest
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType, SectionId
from tests.firmware_model.devicelab import (
    LAB_MANIFEST_DATE,
    STORE_COMPONENT,
    Lab,
    feed_of,
    small_device,
)
from tools.pki import general_name, issue, new_key

NEW_STORE = "certstore-2025-02"
YEAR_2040 = 2_208_988_800


def _store(lab: Lab, *, security_version: int | None = 2,
           extra: list[dict[str, object]] | None = None) -> bytes:
    return build_package(build_store_payload(lab.roots(NEW_STORE)),
                         image_type=ImageType.UpdateCertStore, component_id=STORE_COMPONENT,
                         image_id=uuid.uuid4(), signer=lab.signer(), name="spec-store",
                         security_version=security_version, extra_sections=extra or [])


def _manifest(lab: Lab, payload: bytes, *, build_time: int, security_version: int | None = None
              ) -> bytes:
    """A manifest image with a random component GUID of its own and the given DB and RV."""
    return build_package(payload, image_type=ImageType.BaseSystemUpdateManifest,
                         component_id=uuid.uuid4(), image_id=uuid.uuid4(), signer=lab.signer(),
                         name="spec-manifest", build_time=build_time,
                         security_version=security_version)


def _installed(device: Device, feed: MemoryFeed) -> None:
    result = Updater(device).check_for_update(feed)
    assert result.outcome is UpdateOutcome.INSTALLED
    assert result.boot is not None and result.boot.confirmed


def test_the_device_ignores_compression_and_temporary_image_sections(device_lab: Lab) -> None:
    """An LZMA CM section over an uncompressed payload and a TP RemoveAtBoot: the store is
    installed and read as stored, and stays after the next boot."""
    store = _store(device_lab, extra=[
        encode_section(SectionId.Compression, {"uncompressed_size": 99_999,
                                               "compression_type": 1}),
        encode_section(SectionId.TemporaryImage, {"flags": 1})])
    device = small_device(device_lab)
    _installed(device, feed_of(device_lab.manifest([store]), [store]))
    names = [name for name, _ in device_lab.roots(NEW_STORE)]
    assert device.store.names == names
    device.boot()
    assert device.store.names == names


def test_the_manifests_own_guids_db_and_rv_are_not_checked_and_its_payload_date_wins(
        device_lab: Lab) -> None:
    """A manifest of a random component GUID, an RV of 99 and a DB build time in 2040 over a
    payload dated 2025-03-01: installed; the device remembers the payload's date, so a later
    manifest whose DB says 2040 but whose payload is older is a replay."""
    lab = device_lab
    store = _store(lab)
    entries = [ManifestEntry.for_image(parse_package(store))]
    manifest = _manifest(lab, build_manifest(entries, LAB_MANIFEST_DATE), build_time=YEAR_2040,
                         security_version=99)
    device = small_device(lab)
    _installed(device, feed_of(manifest, [store]))
    record = device.record_area.read(device.machine.flash)
    assert record is not None and record.manifest_date == LAB_MANIFEST_DATE
    newer = _store(lab, security_version=3)
    older = _manifest(lab, build_manifest([ManifestEntry.for_image(parse_package(newer))],
                                          LAB_MANIFEST_DATE - 1), build_time=YEAR_2040)
    with pytest.raises(ReplayError, match="a replay"):
        Updater(device).check_for_update(feed_of(older, [newer]))


def test_unchecked_manifest_entry_fields_change_nothing(device_lab: Lab) -> None:
    """partition_type (bytes 34..35 of an entry), uncompressed_image_size (40..43) and the four
    ABI identities (44..75) are read but not checked."""
    lab = device_lab
    store = _store(lab)
    payload = bytearray(build_manifest([ManifestEntry.for_image(parse_package(store))],
                                       LAB_MANIFEST_DATE))
    entry = 16
    payload[entry + 34 : entry + 36] = (7).to_bytes(2, "little")
    payload[entry + 40 : entry + 76] = bytes(range(1, 37))
    device = small_device(lab)
    _installed(device, feed_of(_manifest(lab, bytes(payload), build_time=0), [store]))


def test_a_feed_serves_images_under_their_lowercase_guid(device_lab: Lab) -> None:
    lab = device_lab
    store = _store(lab)
    name = image_file_name(parse_package(store).image_id)
    assert name == name.lower()
    feed = MemoryFeed({MANIFEST_NAME: lab.manifest([store]),
                       name.upper().replace(".IMAGEPACKAGE", ".imagepackage"): store})
    with pytest.raises(FeedError, match=f"has no {name}"):
        Updater(small_device(lab)).check_for_update(feed)


def test_an_image_without_rv_has_security_version_0(device_lab: Lab) -> None:
    store = _store(device_lab, security_version=None)
    assert parse_package(store).security_version == 0
    with pytest.raises(RollbackError, match="has security version 0; this device requires at "
                                            "least 1"):
        Updater(small_device(device_lab)).check_for_update(
            feed_of(device_lab.manifest([store]), [store]))


def _bare_certificate(common_name: str) -> x509.Certificate:
    """A self-signed certificate with no extension at all."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
            .sign(key, hashes.SHA256()))


def test_a_store_root_needs_no_role_or_extension(device_lab: Lab) -> None:
    """A CA:FALSE certificate and one without extensions install; whether a root anchors a TLS
    chain is decided at the connection (a root that does not assert cA anchors nothing)."""
    lab = device_lab
    not_ca_key = new_key()
    not_ca = issue("Not A CA", not_ca_key)
    roots = [("Bare", _bare_certificate("Bare Root")), ("Not_A_CA", not_ca)]
    store = build_package(build_store_payload(roots), image_type=ImageType.UpdateCertStore,
                          component_id=STORE_COMPONENT, image_id=uuid.uuid4(),
                          signer=lab.signer(), name="odd-roots", security_version=2)
    device = small_device(lab)
    _installed(device, feed_of(lab.manifest([store]), [store]))
    assert device.store.names == ["Bare", "Not_A_CA"]
    leaf_key = new_key()
    leaf = issue("x.lab.test", leaf_key, (not_ca, not_ca_key),
                 names=[general_name("x.lab.test")])
    at = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    with pytest.raises(TlsError, match=r"basicConstraints\.cA must be asserted"):
        device.store.verify_chain(leaf, [], "x.lab.test", at)


def test_provisioning_does_not_judge_the_clock_an_update_does(device_lab: Lab) -> None:
    """A store whose only root expired before the device's clock: provisioning takes it, an
    update refuses it (UnsafeUpdateError: the device could reach no HTTPS endpoint)."""
    lab = device_lab
    expired = issue("Expired Root", new_key(), ca=True,
                    not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                    not_after=dt.datetime(2024, 12, 31, tzinfo=dt.UTC))
    store = build_package(build_store_payload([("Expired_Root", expired)]),
                          image_type=ImageType.UpdateCertStore, component_id=STORE_COMPONENT,
                          image_id=uuid.uuid4(), signer=lab.signer(), name="expired",
                          security_version=2)
    device = small_device()
    device.provision(FactoryImages(lab.factory.root_hash, lab.image("keystore-2024"), store))
    assert device.store.names == ["Expired_Root"]
    with pytest.raises(UnsafeUpdateError, match="no root valid at the device's clock"):
        Updater(small_device(lab)).check_for_update(feed_of(lab.manifest([store]), [store]))
