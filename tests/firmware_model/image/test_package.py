"""The image package envelope: build -> parse round trips and strict parsing with offsets."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import ImageFormatError, SignatureError
from firmware_model.image.build import (
    build_metadata,
    build_package,
    encode_section,
    identity_sections,
    resign,
    seal,
)
from firmware_model.image.certstore import build_store_payload, read_store_payload
from firmware_model.image.keystore import Keyring, TrustedKey
from firmware_model.image.package import MAGIC, Metadata, locate, parse_package
from firmware_model.image.sections import ImageType, SectionId, SigningType
from firmware_model.image.signing import Signer
from firmware_model.trust.chain import verify_image
from tools.pki import LabPki, issue, new_key

COMPONENT = uuid.UUID("e5f5f3fc-2eb5-4d1b-a650-b72364446807")
IMAGE = uuid.UUID("4010c57a-fe73-4fb6-b80e-bac553117ba0")

# Every optional section kind, with values that differ from their zero defaults.
EXTRA_FIELDS: dict[int, dict[str, Any]] = {
    SectionId.TemporaryImage: {"flags": 0x3},
    SectionId.ABIDepends: {"versions": [{"version": 3, "type": 2}, {"version": 9, "type": 1}]},
    SectionId.ABIProvides: {"versions": [{"version": 5, "type": 3}]},
    SectionId.Compression: {"uncompressed_size": 123_456, "compression_type": 1},
    SectionId.RequiredFlashOffset: {"offset": 0x40000},
    SectionId.ImagePolicy: {"flags": 0x2},
}


@pytest.fixture(scope="module")
def signer(lab_pki: LabPki) -> Signer:
    return lab_pki.signer("image-signing")


def _image(signer: Signer, payload: bytes = b"payload!", **kwargs: Any) -> bytes:
    return build_package(payload, image_type=ImageType.UpdateCertStore, component_id=COMPONENT,
                         image_id=IMAGE, signer=signer, name="unit", build_time=1_700_000_000,
                         **kwargs)


def _with_raw_sections(sections: list[dict[str, Any]], payload: bytes = b"abcd",
                       signature: bytes = b"\x11" * 64) -> bytes:
    """An envelope around hand-made sections; the signature is filler (never checked here)."""
    return payload + build_metadata(sections) + signature


def _id_db() -> list[dict[str, Any]]:
    return identity_sections(image_type=ImageType.UpdateCertStore, component_id=COMPONENT,
                             image_id=IMAGE)


def _sg(signing_type: int = SigningType.ECDsa256, length: int = 24) -> dict[str, Any]:
    data = encode_section(SectionId.Signature,
                          {"thumbprint": b"\x22" * 20, "signing_type": signing_type})["data"]
    return {"id": SectionId.Signature, "data": (data + b"\0" * length)[:length]}


def _error(data: bytes) -> ImageFormatError:
    with pytest.raises(ImageFormatError) as caught:
        parse_package(data)
    return caught.value


# --- round trips -------------------------------------------------------------------------


def test_every_section_kind_round_trips(signer: Signer) -> None:
    extras = [encode_section(sid, fields) for sid, fields in EXTRA_FIELDS.items()]
    data = _image(signer, security_version=7, extra_sections=extras)
    image = parse_package(data)

    assert [s.id for s in image.sections] == [
        SectionId.Identity, SectionId.Debug, SectionId.Revocation, *EXTRA_FIELDS,
        SectionId.Signature]
    assert (image.image_type, image.component_id, image.image_id) == (
        ImageType.UpdateCertStore, COMPONENT, IMAGE)
    assert (image.name, image.build_time, image.security_version) == ("unit", 1_700_000_000, 7)
    assert (image.thumbprint, image.signing_type) == (signer.thumbprint, SigningType.ECDsa256)
    for sid, fields in EXTRA_FIELDS.items():
        section = image.section(sid)
        assert section is not None and section.fields is not None
        decoded = {k: v for k, v in section.fields.items() if k != "count"}
        assert decoded == fields, section.tag
    depends = image.section(SectionId.ABIDepends)
    assert depends is not None and depends.fields is not None and depends.fields["count"] == 2
    assert image.unknown_sections == []


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 4099])
def test_payload_is_padded_to_four_bytes(signer: Signer, length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    image = parse_package(_image(signer, payload))
    padded = -(-length // 4) * 4
    assert image.layout.metadata_start == padded
    assert image.payload == payload + b"\0" * (padded - length)
    assert len(image.signature) == 64


def test_metadata_build_and_parse_agree_with_locate(signer: Signer) -> None:
    extras = [encode_section(sid, fields) for sid, fields in EXTRA_FIELDS.items()]
    data = _image(signer, extra_sections=extras)
    layout = locate(data)
    metadata = data[layout.metadata_start : layout.metadata_end]
    parsed = Metadata.parse(metadata)

    assert parsed.magic == MAGIC
    assert parsed.section_count == len(layout.order) == len(parsed.sections)
    assert parsed.metadata_length == len(metadata)
    assert bytes(Metadata.build({"sections": parsed.sections})) == metadata
    pos = layout.metadata_start + 8
    for section, sid in zip(parsed.sections, layout.order, strict=True):
        assert section.id == sid
        assert layout.spans[sid] == (pos + 4, len(section.data))
        assert layout.section_bytes(data, sid) == section.data
        pos += 4 + len(section.data)


def test_store_payload_round_trips(lab_pki: LabPki) -> None:
    certs = [(stem, lab_pki.signer(stem).certificate)
             for stem in ("root", "keystore-signing", "image-signing")]
    assert read_store_payload(build_store_payload(certs)) == sorted(certs, key=lambda c: c[0])


def test_resign_keeps_sections_and_names_the_new_signer(lab_pki: LabPki, signer: Signer) -> None:
    extras = [encode_section(SectionId.ImagePolicy, {"flags": 1})]
    original = parse_package(_image(signer, security_version=3, extra_sections=extras))
    other = lab_pki.signer("keystore-signing")
    again = parse_package(resign(original.data, other))

    assert again.thumbprint == other.thumbprint != original.thumbprint
    assert [s.raw for s in again.sections if s.id != SectionId.Signature] == [
        s.raw for s in original.sections if s.id != SectionId.Signature]
    assert again.payload == original.payload
    verify_image(again.data, Keyring([TrustedKey.from_certificate(other.certificate)]))


def test_p384_images_read_and_verify(lab_pki: LabPki) -> None:
    key = new_key(ec.SECP384R1())
    root = lab_pki.signer("root")
    p384 = Signer(key, issue("Lab P-384 Image Signing", key, (root.certificate, root.key)))
    data = _image(p384, b"three-eighty-four")
    image = parse_package(data)

    assert image.layout.signature_size == 96 and len(image.signature) == 96
    assert image.signing_type == SigningType.ECDsa384
    keyring = Keyring([TrustedKey.from_certificate(p384.certificate)])
    assert verify_image(data, keyring).payload.startswith(b"three-eighty-four")
    tampered = bytearray(data)
    tampered[0] ^= 1
    with pytest.raises(SignatureError):
        verify_image(bytes(tampered), keyring)


# --- strict parsing: every problem is an ImageFormatError naming its offset ---------------


def test_unknown_section_is_parsed_and_kept_raw(signer: Signer) -> None:
    unknown = {"id": 0x5A5A, "data": b"\x01\x02\x03"}
    image = parse_package(seal(b"data", [*_id_db(), unknown], signer))
    [section] = image.unknown_sections
    assert (section.id, section.raw, section.fields, section.tag) == (0x5A5A, b"\1\2\3", None, "ZZ")
    assert section.offset == image.layout.spans[0x5A5A][0] - 4
    assert not section.known


def test_duplicate_section() -> None:
    sections = [*_id_db(), _id_db()[1], _sg()]
    data = _with_raw_sections(sections)
    second_db = 4 + 8 + (4 + 36) + (4 + 40)
    error = _error(data)
    assert "duplicate section 'DB'" in str(error)
    assert error.offset == second_db


def test_section_length_past_the_metadata() -> None:
    data = bytearray(_with_raw_sections([*_id_db(), _sg()]))
    db_header = 4 + 8 + 4 + 36
    struct.pack_into("<H", data, db_header + 2, 0xFFF0)
    error = _error(bytes(data))
    assert "runs past the metadata" in str(error)
    assert error.offset == db_header + 2


def test_impossible_section_count() -> None:
    data = bytearray(_with_raw_sections([*_id_db(), _sg()]))
    struct.pack_into("<I", data, 4 + 4, 0xFFFF_FFFF)
    error = _error(bytes(data))
    assert "cannot fit" in str(error) and error.offset == 8


def test_metadata_length_that_does_not_add_up() -> None:
    sections = [*_id_db(), _sg()]
    data = bytearray(_with_raw_sections(sections))
    struct.pack_into("<I", data, 8, len(sections) - 1)  # the SG section is left over
    error = _error(bytes(data))
    sg_header = 4 + 8 + (4 + 36) + (4 + 40)
    assert "does not add up" in str(error) and error.offset == sg_header


def test_metadata_length_pointing_outside_the_file() -> None:
    data = bytearray(_with_raw_sections([*_id_db(), _sg()]))
    length_field = len(data) - 64 - 4
    struct.pack_into("<I", data, length_field, len(data))
    error = _error(bytes(data))
    assert "metadata length" in str(error) and error.offset == length_field


def test_no_magic() -> None:
    data = bytearray(_with_raw_sections([*_id_db(), _sg()]))
    data[4] ^= 0xFF
    error = _error(bytes(data))
    assert "magic" in str(error) and error.offset == 4


@pytest.mark.parametrize("keep", [0, 1, 20, 75])
def test_truncated_to_nothing_useful(keep: int) -> None:
    error = _error(_with_raw_sections([*_id_db(), _sg()])[:keep])
    assert "too short" in str(error) and error.offset == 0


def test_truncated_by_one_byte(signer: Signer) -> None:
    error = _error(_image(signer)[:-1])
    assert error.offset is not None


def test_wrong_signature_section_length() -> None:
    data = _with_raw_sections([*_id_db(), _sg(length=20)])
    sg_data = 4 + 8 + (4 + 36) + (4 + 40) + 4
    error = _error(data)
    assert "'SG' section is 20 bytes" in str(error) and error.offset == sg_data - 2


def test_signing_type_that_does_not_match_the_signature_size() -> None:
    data = _with_raw_sections([*_id_db(), _sg(signing_type=SigningType.ECDsa384)])
    sg_data = 4 + 8 + (4 + 36) + (4 + 40) + 4
    error = _error(data)
    assert "signing type 2" in str(error) and error.offset == sg_data + 20


def test_missing_identity_section() -> None:
    data = _with_raw_sections([_id_db()[1], _sg()])
    error = _error(data)
    assert "no 'ID' section" in str(error) and error.offset == 4


def test_known_section_with_the_wrong_length() -> None:
    revocation = {"id": SectionId.Revocation, "data": b"\1\0\0\0\0\0\0\0"}
    data = _with_raw_sections([*_id_db(), revocation, _sg()])
    error = _error(data)
    rv_header = 4 + 8 + (4 + 36) + (4 + 40)
    assert "'RV' section is 8 bytes, expected 4" in str(error) and error.offset == rv_header


def test_abi_list_whose_count_disagrees_with_its_length() -> None:
    depends = {"id": SectionId.ABIDepends, "data": struct.pack("<III", 2, 1, 1)}
    data = _with_raw_sections([*_id_db(), depends, _sg()])
    error = _error(data)
    assert "'ND' section is 12 bytes, expected 20" in str(error)
    assert error.offset == 4 + 8 + (4 + 36) + (4 + 40)


# --- points the spec settles (docs/image-format.md, Envelope and Sections) -------------------


def test_sections_may_come_in_any_order(signer: Signer) -> None:
    """An image whose SG section comes first reads and verifies like any other."""
    sg = encode_section(SectionId.Signature, {"thumbprint": signer.thumbprint,
                                              "signing_type": int(signer.signing_type)})
    body = b"payload!" + build_metadata([sg, *_id_db()])
    image = verify_image(body + signer.sign(body),
                         Keyring([TrustedKey.from_certificate(signer.certificate)]))
    assert [s.tag for s in image.sections] == ["SG", "ID", "DB"]
    assert image.image_type == ImageType.UpdateCertStore


def test_when_both_signature_sizes_fail_the_64_byte_attempts_error_is_reported(
        signer: Signer) -> None:
    data = _image(signer)[:-1]
    error = _error(data)
    assert str(error).startswith("metadata length ") and "is impossible" in str(error)
    assert error.offset == len(data) - 64 - 4  # the trailer a 64-byte signature would leave


def test_an_image_without_rv_or_db_has_version_0_and_no_name(signer: Signer) -> None:
    sections = [encode_section(SectionId.Identity, {
        "image_type": ImageType.UpdateCertStore, "reserved": 0, "component_id": COMPONENT,
        "image_id": IMAGE})]
    image = parse_package(seal(b"payload!", sections, signer))
    assert (image.security_version, image.name, image.build_time) == (0, "", 0)
