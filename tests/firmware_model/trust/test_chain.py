"""The chain of trust: fused root hash -> keystore image -> image-signing keys -> images."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import (
    ImageFormatError,
    RevokedError,
    SignatureError,
    UntrustedSignerError,
    WrongImageTypeError,
)
from firmware_model.image.build import build_package
from firmware_model.image.keystore import (
    KEYSTORE_SIGNING_ROLE,
    Keyring,
    TrustedKey,
    build_keystore_payload,
    read_keystore_payload,
    root_key_hash,
)
from firmware_model.image.package import locate
from firmware_model.image.sections import ImageType
from firmware_model.image.signing import Signer
from firmware_model.trust.chain import authenticate, open_keystore, verify_image
from tools.pki import LabPki, issue, new_key

STORE_AND_MANIFEST = (ImageType.UpdateCertStore, ImageType.BaseSystemUpdateManifest)


def _package(signer: Signer, payload: bytes, image_type: int) -> bytes:
    return build_package(payload, image_type=image_type, component_id=uuid.uuid4(),
                         image_id=uuid.uuid4(), signer=signer, name="trust")


def _stranger(common_name: str = "Stranger") -> Signer:
    """A self-signed signer no lab root knows."""
    key = new_key()
    return Signer(key, issue(common_name, key))


@pytest.fixture(scope="module")
def image_signer(lab_pki: LabPki) -> Signer:
    return lab_pki.signer("image-signing")


@pytest.fixture(scope="module")
def keyring(image_signer: Signer) -> Keyring:
    return Keyring([TrustedKey.from_certificate(image_signer.certificate, STORE_AND_MANIFEST)])


@pytest.fixture(scope="module")
def store_image(image_signer: Signer) -> bytes:
    return _package(image_signer, b"store payload bytes", ImageType.UpdateCertStore)


def _keystore_image(pki: LabPki, *, signer: Signer | None = None,
                    carried: Signer | None = None,
                    image_type: int = ImageType.TrustedKeystore,
                    keys: list[TrustedKey] | None = None) -> bytes:
    """A keystore image: `carried` is the certificate in the payload, `signer` signs it."""
    root = pki.signer("root")
    carried = carried or pki.signer("keystore-signing")
    image_key = pki.signer("image-signing").certificate
    if keys is None:
        keys = [TrustedKey.from_certificate(image_key, STORE_AND_MANIFEST)]
    payload = build_keystore_payload(root.key.public_key(), carried.certificate, keys)
    return _package(signer or carried, payload, image_type)


@pytest.fixture(scope="module")
def fused(lab_pki: LabPki) -> bytes:
    return root_key_hash(lab_pki.signer("root").key.public_key())


# --- images against a keyring -------------------------------------------------------------


def test_valid_image_verifies_and_parses(store_image: bytes, keyring: Keyring,
                                         image_signer: Signer) -> None:
    image = verify_image(store_image, keyring, ImageType.UpdateCertStore)
    assert image.thumbprint == image_signer.thumbprint
    assert image.payload.startswith(b"store payload bytes")
    assert authenticate(store_image, keyring) == locate(store_image)


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("where", ["payload", "metadata", "signature"])
def test_tampering_breaks_the_signature(store_image: bytes, keyring: Keyring,
                                        where: str) -> None:
    layout = locate(store_image)
    debug_name = layout.spans[0x4244][0] + 8  # a byte of the DB name: still parses
    index = {"payload": 3, "metadata": debug_name, "signature": len(store_image) - 5}[where]
    with pytest.raises(SignatureError):
        verify_image(_flip(store_image, index), keyring)


def test_unknown_signer_is_untrusted(keyring: Keyring) -> None:
    data = _package(_stranger(), b"x", ImageType.UpdateCertStore)
    with pytest.raises(UntrustedSignerError, match="not in the keystore"):
        verify_image(data, keyring)


def test_signer_not_allowed_this_image_type(image_signer: Signer, keyring: Keyring) -> None:
    data = _package(image_signer, b"x", ImageType.TrustedKeystore)
    with pytest.raises(UntrustedSignerError, match="may not sign TrustedKeystore"):
        verify_image(data, keyring)


def test_revoked_signer(store_image: bytes, image_signer: Signer) -> None:
    key = TrustedKey.from_certificate(image_signer.certificate, STORE_AND_MANIFEST)
    revoked = Keyring([TrustedKey(key.thumbprint, key.public_key, key.image_types, True)])
    with pytest.raises(RevokedError):
        verify_image(store_image, revoked)


def test_wrong_expected_type(store_image: bytes, keyring: Keyring) -> None:
    with pytest.raises(WrongImageTypeError):
        verify_image(store_image, keyring, ImageType.BaseSystemUpdateManifest)


def test_key_named_by_thumbprint_but_signature_from_another_key(
        image_signer: Signer, keyring: Keyring) -> None:
    impostor = Signer(new_key(), image_signer.certificate)  # same thumbprint, other key
    with pytest.raises(SignatureError):
        verify_image(_package(impostor, b"x", ImageType.UpdateCertStore), keyring)


# --- the keystore payload -----------------------------------------------------------------


def test_keystore_payload_round_trips(lab_pki: LabPki) -> None:
    root = lab_pki.signer("root").key.public_key()
    carried = lab_pki.signer("keystore-signing").certificate
    p384 = new_key(ec.SECP384R1()).public_key()
    keys = [
        TrustedKey.from_certificate(lab_pki.signer("image-signing").certificate,
                                    STORE_AND_MANIFEST),
        TrustedKey(b"\x07" * 20, p384, frozenset({ImageType.Applications}), revoked=True),
    ]
    keystore = read_keystore_payload(build_keystore_payload(root, carried, keys))
    assert keystore.root_public_key == root
    assert keystore.signer_certificate == carried
    assert keystore.keys == tuple(keys)


def test_keystore_payload_with_trailing_bytes(lab_pki: LabPki) -> None:
    payload = build_keystore_payload(lab_pki.signer("root").key.public_key(),
                                     lab_pki.signer("keystore-signing").certificate, [])
    with pytest.raises(ImageFormatError) as caught:
        read_keystore_payload(payload + b"\x01\x02\x03\x04\x05")
    assert caught.value.offset == len(payload)


def test_keystore_payload_truncated(lab_pki: LabPki) -> None:
    payload = build_keystore_payload(lab_pki.signer("root").key.public_key(),
                                     lab_pki.signer("keystore-signing").certificate, [])
    with pytest.raises(ImageFormatError) as caught:
        read_keystore_payload(payload[:-3])
    assert caught.value.offset is not None


# --- the keystore image against the fused root hash ---------------------------------------


def test_open_keystore_yields_the_keys(lab_pki: LabPki, fused: bytes, store_image: bytes,
                                       image_signer: Signer) -> None:
    image, keystore = open_keystore(_keystore_image(lab_pki), fused)
    assert image.image_type == ImageType.TrustedKeystore
    assert [k.thumbprint for k in keystore.keys] == [image_signer.thumbprint]
    verify_image(store_image, keystore.keyring, ImageType.UpdateCertStore)


def _other_root_signer(pki: LabPki) -> Signer:
    other_root_key = new_key()
    other_root = issue("Other Root", other_root_key, ca=True)
    key = new_key()
    return Signer(key, issue("Keystore Signing (other root)", key, (other_root, other_root_key),
                             extended_usages=[KEYSTORE_SIGNING_ROLE]))


def _flip_key_list(data: bytes) -> bytes:
    """A bit flipped in the last key of the list (not read before the signature holds)."""
    return _flip(data, locate(data).metadata_start - 5)


REJECTIONS: dict[str, tuple[Callable[[LabPki], bytes], type[Exception], str]] = {
    "signer not issued by the root": (
        lambda pki: _keystore_image(pki, carried=_other_root_signer(pki)),
        UntrustedSignerError, "not certified by the root"),
    "wrong image type": (
        lambda pki: _keystore_image(pki, image_type=ImageType.UpdateCertStore),
        WrongImageTypeError, "expected a TrustedKeystore"),
    "signed by a key other than the carried certificate": (
        lambda pki: _keystore_image(pki, signer=pki.signer("image-signing")),
        UntrustedSignerError, "not signed by the certificate it carries"),
    "tampered key list": (
        lambda pki: _flip_key_list(_keystore_image(pki)),
        SignatureError, "does not verify"),
    "malformed header": (
        lambda pki: _flip(_keystore_image(pki), 3),
        ImageFormatError, "keystore header does not parse"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_open_keystore_rejects(lab_pki: LabPki, fused: bytes, case: str) -> None:
    make, error, text = REJECTIONS[case]
    with pytest.raises(error, match=text):
        open_keystore(make(lab_pki), fused)


def test_open_keystore_rejects_a_root_that_is_not_fused(lab_pki: LabPki) -> None:
    other_fuses = root_key_hash(new_key().public_key())
    with pytest.raises(UntrustedSignerError, match="fused root-key hash"):
        open_keystore(_keystore_image(lab_pki), other_fuses)


def test_open_keystore_rejects_a_tampered_signature(lab_pki: LabPki, fused: bytes) -> None:
    data = _keystore_image(lab_pki)
    with pytest.raises(SignatureError):
        open_keystore(_flip(data, len(data) - 1), fused)


def test_keystore_root_key_on_an_unknown_curve_is_a_format_error(lab_pki: LabPki) -> None:
    payload = bytearray(build_keystore_payload(lab_pki.signer("root").key.public_key(),
                                               lab_pki.signer("keystore-signing").certificate,
                                               []))
    curve_oid = payload.index(bytes.fromhex("06082a8648ce3d030107"))  # prime256v1
    payload[curve_oid + 9] ^= 0x01  # another OID: cryptography knows no such curve
    with pytest.raises(ImageFormatError, match="keystore root key"):
        read_keystore_payload(bytes(payload))


def test_signer_certificate_with_an_impossible_version_is_a_format_error(
    lab_pki: LabPki,
) -> None:
    """cryptography raises InvalidVersion (not a ValueError) for X.509 version 8: it must
    still come out as the typed format error, so a damaged keystore falls back cleanly."""
    signer = lab_pki.signer("keystore-signing")
    payload = build_keystore_payload(new_key().public_key(), signer.certificate, [])
    version_v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (v3) in the TBS
    assert payload.count(version_v3) == 1
    damaged = payload.replace(version_v3, bytes.fromhex("a003020107"))
    with pytest.raises(ImageFormatError, match="signer certificate"):
        read_keystore_payload(damaged)
