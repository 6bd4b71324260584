"""The BaseSystemUpdateManifest payload (image manifest v3 layout, 112-byte entries)."""

from __future__ import annotations

import hashlib
import struct
import uuid

import pytest

from firmware_model.errors import ImageFormatError
from firmware_model.image.build import build_package
from firmware_model.image.manifest import (
    ENTRY_SIZE,
    HEADER_SIZE,
    ManifestEntry,
    build_manifest,
    manifest_date,
    read_manifest,
)
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from tools.pki import LabPki

ENTRIES = [
    ManifestEntry(uuid.UUID("93a3ac0e-1dd1-45fc-805c-1fe3cbac1f27"),
                  uuid.UUID("e5f5f3fc-2eb5-4d1b-a650-b72364446807"),
                  ImageType.UpdateCertStore, 6_144, 2, bytes(range(32))),
    ManifestEntry(uuid.UUID("522caa98-5aea-4868-97ee-98f35b58b80a"),
                  uuid.UUID("46dae4ab-8d2f-483c-94a4-c873c0e82ea2"),
                  ImageType.TrustedKeystore, 1_020, 1, b"\xa5" * 32),
]


def test_manifest_round_trips() -> None:
    payload = build_manifest(ENTRIES, build_date=1_739_145_600)
    assert len(payload) == HEADER_SIZE + ENTRY_SIZE * len(ENTRIES)
    assert struct.unpack_from("<HHHHQ", payload) == (3, 2, HEADER_SIZE, ENTRY_SIZE,
                                                      1_739_145_600)
    assert read_manifest(payload) == ENTRIES


def test_empty_manifest_round_trips() -> None:
    assert read_manifest(build_manifest([])) == []


def test_guids_are_stored_in_dotnet_byte_order() -> None:
    payload = build_manifest(ENTRIES[:1])
    assert payload[HEADER_SIZE : HEADER_SIZE + 16] == ENTRIES[0].image_id.bytes_le
    assert payload[HEADER_SIZE + 16 : HEADER_SIZE + 32] == ENTRIES[0].component_id.bytes_le


def test_entry_for_image_pins_it_down(lab_pki: LabPki) -> None:
    data = build_package(b"abc", image_type=ImageType.UpdateCertStore,
                         component_id=ENTRIES[0].component_id, image_id=ENTRIES[0].image_id,
                         signer=lab_pki.signer("image-signing"), security_version=4)
    entry = ManifestEntry.for_image(parse_package(data))
    assert entry == ManifestEntry(ENTRIES[0].image_id, ENTRIES[0].component_id,
                                  ImageType.UpdateCertStore, len(data), 4,
                                  hashlib.sha256(data).digest())
    assert entry.to_json()["image_type"] == "UpdateCertStore"


def _read_error(payload: bytes) -> ImageFormatError:
    with pytest.raises(ImageFormatError) as caught:
        read_manifest(payload)
    return caught.value


def test_trailing_bytes_are_refused() -> None:
    payload = build_manifest(ENTRIES)
    error = _read_error(payload + b"\xee" * 8)
    assert error.offset == len(payload) and "trailing" in str(error)


def test_truncated_entry_is_refused() -> None:
    error = _read_error(build_manifest(ENTRIES)[:-4])
    assert error.offset is not None and "does not parse" in str(error)


@pytest.mark.parametrize(("offset", "value", "field"), [
    (0, 2, "version"), (4, 20, "header_size"), (6, 76, "entry_size")])
def test_header_constants_are_checked(offset: int, value: int, field: str) -> None:
    payload = bytearray(build_manifest(ENTRIES))
    struct.pack_into("<H", payload, offset, value)
    error = _read_error(bytes(payload))
    assert field in str(error)
    assert error.offset is not None and offset <= error.offset <= offset + 2


def test_count_larger_than_the_entries() -> None:
    payload = bytearray(build_manifest(ENTRIES))
    struct.pack_into("<H", payload, 2, 3)
    error = _read_error(bytes(payload))
    assert error.offset == len(payload)


def test_the_build_date_is_the_manifests_version() -> None:
    assert manifest_date(build_manifest(ENTRIES, build_date=1_739_145_600)) == 1_739_145_600
    with pytest.raises(ImageFormatError, match="build_date"):
        manifest_date(build_manifest(ENTRIES)[:12])


def test_each_entry_binds_its_image_by_sha256() -> None:
    payload = build_manifest(ENTRIES[:1])
    assert payload[HEADER_SIZE + ENTRY_SIZE - 32 : HEADER_SIZE + ENTRY_SIZE] == bytes(range(32))
