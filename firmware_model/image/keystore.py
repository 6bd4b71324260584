"""TrustedKeystore payload and the device's chain of trust for images.

fused root-key hash (OTP) -> keystore image -> image-signing keys -> images.

The keystore payload carries the root public key (its SHA-256 is what a device fuses), the
certificate of the key that signed this keystore image (issued by that root), and the
image-signing keys: public key, certificate thumbprint, which image types each may sign, and
whether it is revoked.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from construct import (
    Array,
    Bytes,
    Const,
    GreedyBytes,
    Int16ul,
    Int32ul,
    Prefixed,
    Rebuild,
    Struct,
    len_,
    this,
)
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import (
    RevokedError,
    UntrustedSignerError,
    WrongImageTypeError,
)
from firmware_model.image.fastparse import (
    Block,
    Field,
    LoadedCertificate,
    blob,
    load_certificate,
    load_ec_key,
)
from firmware_model.image.package import ImagePackage, Layout, locate, parse_package
from firmware_model.image.sections import ImageType, SectionId, image_type_name
from firmware_model.image.signing import Verifier, thumbprint, verifier, verify_with
from firmware_model.image.strict import check_trailing

MAGIC = b"KSTR"
FLAG_REVOKED = 0x1

KeyEntry = Struct(
    "thumbprint" / Bytes(20),
    "image_types" / Int32ul,
    "flags" / Int32ul,
    "public_key" / Prefixed(Int16ul, GreedyBytes),
)

KeystoreHeader = Struct(
    "magic" / Const(MAGIC),
    "version" / Const(1, Int32ul),
    "root_public_key" / Prefixed(Int16ul, GreedyBytes),
    "signer_certificate" / Prefixed(Int16ul, GreedyBytes),
)
KeyList = Struct(
    "key_count" / Rebuild(Int32ul, len_(this.keys)),
    "keys" / Array(this.key_count, KeyEntry),
)
KeystorePayload = Struct(*KeystoreHeader.subcons, *KeyList.subcons)


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo DER of a public key."""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def root_key_hash(key: ec.EllipticCurvePublicKey) -> bytes:
    """The 32 bytes a device fuses: SHA-256 of the root key's SubjectPublicKeyInfo."""
    return hashlib.sha256(spki(key)).digest()


def _mask(image_types: Iterable[int]) -> int:
    return sum(1 << int(t) for t in set(image_types))


@dataclass(frozen=True)
class TrustedKey:
    """An image-signing key the device trusts, for some image types."""

    thumbprint: bytes
    public_key: ec.EllipticCurvePublicKey
    image_types: frozenset[int]
    revoked: bool = False

    @classmethod
    def from_certificate(
        cls, certificate: x509.Certificate, image_types: Iterable[int] = tuple(ImageType)
    ) -> TrustedKey:
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise UntrustedSignerError("image-signing certificates carry EC keys only")
        return cls(thumbprint(certificate), key, frozenset(int(t) for t in image_types))

    @cached_property
    def verifier(self) -> Verifier:
        """The key ready to verify with (worked out on first use; SignatureError, not
        remembered, for a curve images cannot use)."""
        return verifier(self.public_key)

    def to_json(self) -> dict[str, object]:
        return {
            "thumbprint": self.thumbprint.hex(),
            "curve": self.public_key.curve.name,
            "image_types": sorted(image_type_name(t) for t in self.image_types),
            "revoked": self.revoked,
        }


class Keyring:
    """Image-signing keys by certificate thumbprint; `source` names where they came from."""

    def __init__(self, keys: Iterable[TrustedKey], source: str = "the keystore") -> None:
        self.keys = {key.thumbprint: key for key in keys}
        self.source = source

    def trusted(self, thumb: bytes, image_type: int) -> TrustedKey:
        """The trusted key that may sign `image_type` under `thumb`; a TrustError if none may."""
        key = self.keys.get(thumb)
        if key is None:
            raise UntrustedSignerError(f"signer {thumb.hex()} is not in {self.source}")
        if key.revoked:
            raise RevokedError(f"signer {thumb.hex()} is revoked")
        if image_type not in key.image_types:
            raise UntrustedSignerError(
                f"signer {thumb.hex()} may not sign {image_type_name(image_type)} images"
            )
        return key

    def key_for(self, thumb: bytes, image_type: int) -> ec.EllipticCurvePublicKey:
        """The key that may sign `image_type` under `thumb`; a TrustError if none may."""
        return self.trusted(bytes(thumb), image_type).public_key


_U16 = struct.Struct("<H").unpack_from
_IDENTITY, _SIGNATURE = int(SectionId.Identity), int(SectionId.Signature)


def _id_fields(data: bytes | memoryview, layout: Layout) -> tuple[int, bytes]:
    """Image type and SG thumbprint, read straight from the checked section table."""
    sg_start = layout.spans[_SIGNATURE][0]
    return _U16(data, layout.spans[_IDENTITY][0])[0], bytes(data[sg_start : sg_start + 20])


def authenticate(
    data: bytes | memoryview, keyring: Keyring, layout: Layout | None = None
) -> Layout:
    """Locate the metadata and verify the signature with a key allowed for the image type.

    Only the trailer, the section table, the image type and the thumbprint are read first.
    `layout`, if given, must be `locate(data)` (a caller that already located these bytes).
    """
    view = memoryview(data)
    if layout is None:
        layout = locate(view)
    end = layout.metadata_end
    image_type, thumb = _id_fields(view, layout)
    verify_with(keyring.trusted(thumb, image_type).verifier, view[:end], view[end:])
    return layout


def verify_image(
    data: bytes, keyring: Keyring, expected_type: int | None = None, layout: Layout | None = None
) -> ImagePackage:
    """Authenticate, then parse in full; WrongImageTypeError if it is not `expected_type`.
    `layout`, if given, must be `locate(data)`."""
    image = parse_package(data, authenticate(data, keyring, layout))
    if expected_type is not None and image.image_type != expected_type:
        raise WrongImageTypeError(
            f"expected a {image_type_name(expected_type)} image, got {image.image_type_name}"
        )
    return image


@dataclass(frozen=True)
class Keystore:
    """A parsed keystore payload."""

    root_public_key: ec.EllipticCurvePublicKey
    signer_certificate: x509.Certificate
    keys: tuple[TrustedKey, ...]

    @cached_property
    def keyring(self) -> Keyring:
        """The keys by thumbprint (made once per keystore)."""
        return Keyring(self.keys)


def build_keystore_payload(
    root_public_key: ec.EllipticCurvePublicKey,
    signer_certificate: x509.Certificate,
    keys: Sequence[TrustedKey],
) -> bytes:
    """A keystore payload naming its root, its signer and its image-signing keys."""
    return bytes(KeystorePayload.build({
        "root_public_key": spki(root_public_key),
        "signer_certificate": signer_certificate.public_bytes(serialization.Encoding.DER),
        "keys": [
            {"thumbprint": k.thumbprint, "image_types": _mask(k.image_types),
             "flags": FLAG_REVOKED if k.revoked else 0, "public_key": spki(k.public_key)}
            for k in keys
        ],
    }))


# The same layout for the reader (fastparse): paths as construct names them.
_HEADER = Block(Field("magic", "4s", MAGIC), Field("version", "I", 1))
_KEY_COUNT = Block(Field("key_count", "I"))
_KEY = Block(Field("keys -> thumbprint", "20s"), Field("keys -> image_types", "I"),
             Field("keys -> flags", "I"), Field("keys -> public_key", "H"))


class _Header(NamedTuple):
    root_public_key: bytes
    signer_certificate: bytes
    keys_start: int


def _read_header(payload: bytes | memoryview) -> _Header:
    """`KeystoreHeader`, read with struct as strictly as `strict.parse_prefix` parses it."""
    what = "keystore header"
    _HEADER.unpack(payload, 0, what)
    root_start, root_end = blob(payload, _HEADER.size, what, "root_public_key")
    cert_start, cert_end = blob(payload, root_end, what, "signer_certificate")
    return _Header(bytes(payload[root_start:root_end]), bytes(payload[cert_start:cert_end]),
                   cert_end)


def _read_keys(payload: bytes | memoryview, start: int) -> tuple[TrustedKey, ...]:
    """`KeyList` from `start` to the end, read with struct as strictly as
    `strict.parse_strict` parses it (every byte accounted for; offsets in `payload`)."""
    what = "keystore key list"
    count = _KEY_COUNT.unpack(payload, start, what)[0]
    at = start + _KEY_COUNT.size
    keys = []
    for _ in range(count):
        thumb, image_types, flags, _length = _KEY.unpack(payload, at, what)
        key_start, at = blob(payload, at + _KEY.size - 2, what, "keys -> public_key")
        keys.append(TrustedKey(thumb, load_ec_key(bytes(payload[key_start:at]), "keystore key"),
                               frozenset(t for t in range(32) if image_types >> t & 1),
                               bool(flags & FLAG_REVOKED)))
    check_trailing(payload, at, what)
    return tuple(keys)


@functools.lru_cache(maxsize=16)
def _root_key(der: bytes) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    """The keystore's root key and its `root_key_hash` (memoized, as `load_ec_key`)."""
    key = load_ec_key(der, "keystore root key")
    return key, root_key_hash(key)


def read_keystore_payload(payload: bytes | memoryview) -> Keystore:
    """Parse a keystore payload strictly (ImageFormatError on anything off)."""
    header = _read_header(payload)
    signer = load_certificate(header.signer_certificate, "keystore signer certificate")
    root, _ = _root_key(header.root_public_key)
    return Keystore(root, signer.certificate, _read_keys(payload, header.keys_start))


def _check_issued_by_root(signer: LoadedCertificate, root: ec.EllipticCurvePublicKey) -> None:
    certificate = signer.certificate
    try:
        algorithm = certificate.signature_hash_algorithm
        if algorithm is None:
            raise UntrustedSignerError("keystore signer certificate names no hash algorithm")
        root.verify(certificate.signature, signer.tbs_certificate, ec.ECDSA(algorithm))
    except (InvalidSignature, UnsupportedAlgorithm):
        raise UntrustedSignerError("keystore signer is not certified by the root key") from None


def open_keystore(
    data: bytes, fused_root_hash: bytes, layout: Layout | None = None
) -> tuple[ImagePackage, Keystore]:
    """Authenticate a keystore image against the fused root-key hash and return its keys.

    Checks, in order: envelope, image type, root key against the fuses, signer certificate
    issued by that root, SG thumbprint naming that certificate, the image signature.
    `layout`, if given, must be `locate(data)` (a caller that already located these bytes).
    """
    view = memoryview(data)
    if layout is None:
        layout = locate(view)
    image_type, thumb = _id_fields(view, layout)
    if image_type != ImageType.TrustedKeystore:
        raise WrongImageTypeError(
            f"expected a TrustedKeystore image, got {image_type_name(image_type)}"
        )
    payload = view[: layout.metadata_start]
    header = _read_header(payload)
    signer = load_certificate(header.signer_certificate, "keystore signer certificate")
    root, root_hash = _root_key(header.root_public_key)
    if root_hash != fused_root_hash:
        raise UntrustedSignerError("keystore root key does not match the fused root-key hash")
    _check_issued_by_root(signer, root)
    if signer.thumbprint != thumb:
        raise UntrustedSignerError("keystore is not signed by the certificate it carries")
    signer_key = signer.certificate.public_key()
    if not isinstance(signer_key, ec.EllipticCurvePublicKey):
        raise UntrustedSignerError("keystore signer key is not an EC key")
    end = layout.metadata_end
    verify_with(verifier(signer_key), view[:end], view[end:])
    image = parse_package(data, layout)
    return image, Keystore(root, signer.certificate, _read_keys(payload, header.keys_start))
