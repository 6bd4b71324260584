"""TrustedKeystore payload: the image-signing keys a device trusts, and where they come from.

The payload carries the root public key (its SHA-256 is what a device fuses), the certificate
of the key that signed this keystore image (issued by that root), and the image-signing keys:
public key, certificate thumbprint, which image types each may sign, and whether it is revoked.
Declared once (construct); the reader is derived from the declaration (`derive`). Loading a key
or certificate is a pure function of its DER bytes, and a device meets the same few at every
update and boot: those loads are memoized by the bytes (failures are not cached). Authenticating
a keystore image against the fuses is the chain of trust's job (`firmware_model.trust.chain`).
"""

from __future__ import annotations

import functools
import hashlib
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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import ImageFormatError, RevokedError, UntrustedSignerError
from firmware_model.image import derive
from firmware_model.image.certstore import BAD_CERTIFICATE
from firmware_model.image.sections import ImageType, image_type_name
from firmware_model.image.signing import Verifier, thumbprint, verifier
from firmware_model.image.strict import check_trailing

MAGIC = b"KSTR"
FLAG_REVOKED = 0x1
#: The extended key usage that marks the keystore-signing role: only a certificate carrying it
#: (and issued by the fused root) may sign a TrustedKeystore. An OID of this project's own, in
#: the UUID arc (ITU-T X.667: 2.25.<UUID as an integer>) that needs no registration.
KEYSTORE_SIGNING_ROLE = x509.ObjectIdentifier("2.25.20600141693649646239011723282069340299")

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



# The readers, derived from the declarations above.
_HEADER = derive.Reader(KeystoreHeader, "keystore header")
_KEY_COUNT = derive.fields(KeyList, "key_count")
_KEY = derive.Reader(KeyEntry, "keystore key list", "keys")


@functools.lru_cache(maxsize=64)
def load_ec_key(der: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """The EC public key a SubjectPublicKeyInfo DER holds; ImageFormatError naming `what`."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise ImageFormatError(f"{what} is not a DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ImageFormatError(f"{what} is not an EC key")
    return key


class LoadedCertificate(NamedTuple):
    """A certificate and what follows from its bytes alone."""

    certificate: x509.Certificate
    thumbprint: bytes  # SHA-1 of the DER: what an SG section names a certificate by
    tbs_certificate: bytes  # the bytes its issuer's signature covers
    keystore_signing: bool  # it carries the KEYSTORE_SIGNING_ROLE extended key usage


def has_keystore_signing_role(certificate: x509.Certificate) -> bool:
    """True if `certificate` carries the KEYSTORE_SIGNING_ROLE extended key usage."""
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    except (x509.DuplicateExtension, ValueError):  # extensions that do not parse mark nothing
        return False
    return KEYSTORE_SIGNING_ROLE in usages


@functools.lru_cache(maxsize=16)
def load_certificate(der: bytes, what: str) -> LoadedCertificate:
    """An X.509 DER certificate loaded; ImageFormatError (`what` is not DER X.509)."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except BAD_CERTIFICATE:
        raise ImageFormatError(f"{what} is not DER X.509") from None
    return LoadedCertificate(certificate, hashlib.sha1(der).digest(),
                             certificate.tbs_certificate_bytes,
                             has_keystore_signing_role(certificate))


@functools.lru_cache(maxsize=16)
def _root_key(der: bytes) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    """The keystore's root key and its `root_key_hash` (memoized, as `load_ec_key`)."""
    key = load_ec_key(der, "keystore root key")
    return key, root_key_hash(key)


class Header(NamedTuple):
    """What a keystore payload says before its keys: the root key (and the hash a device would
    fuse for it), the certificate of the keystore's signer, and where the key list starts."""

    root_public_key: ec.EllipticCurvePublicKey
    root_hash: bytes
    signer: LoadedCertificate
    keys_start: int


def read_header(payload: bytes | memoryview) -> Header:
    """`KeystoreHeader`, strictly (ImageFormatError naming the field and its offset); the root
    key and signer certificate loaded."""
    (_magic, _version, (root_start, root_end), (cert_start, cert_end)), end = _HEADER.read(
        payload, 0)
    signer = load_certificate(bytes(payload[cert_start:cert_end]), "keystore signer certificate")
    root, root_hash = _root_key(bytes(payload[root_start:root_end]))
    return Header(root, root_hash, signer, end)


def read_keys(payload: bytes | memoryview, start: int) -> tuple[TrustedKey, ...]:
    """`KeyList` from `start` to the end of the payload, strictly: every byte accounted for
    (envelope padding aside), errors at offsets in `payload`; the layout is read whole before
    any key is loaded, as a construct parse of the declaration would."""
    what = "keystore key list"
    (count,) = _KEY_COUNT.unpack(payload, start, what)
    at = start + _KEY_COUNT.size
    entries = []
    for _ in range(count):
        entry, at = _KEY.read(payload, at)
        entries.append(entry)
    check_trailing(payload, at, what)
    return tuple(
        TrustedKey(thumb, load_ec_key(bytes(payload[key_start:key_end]), "keystore key"),
                   frozenset(t for t in range(32) if image_types >> t & 1),
                   bool(flags & FLAG_REVOKED))
        for thumb, image_types, flags, (key_start, key_end) in entries)


def read_keystore_payload(payload: bytes | memoryview) -> Keystore:
    """Parse a keystore payload strictly (ImageFormatError on anything off); nothing about who
    signed it is checked here."""
    header = read_header(payload)
    return Keystore(header.root_public_key, header.signer.certificate,
                    read_keys(payload, header.keys_start))
