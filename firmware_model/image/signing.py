"""ECDSA signatures as image packages store them: raw r || s, big-endian, fixed width.

P-256 signs the SHA-256 of the covered bytes (64-byte signature); P-384 the SHA-384 (96 bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from firmware_model.errors import SignatureError
from firmware_model.image.sections import SIGNATURE_SIZE, SigningType

_CURVES = {"secp256r1": SigningType.ECDsa256, "secp384r1": SigningType.ECDsa384}
_HASHES = {
    SigningType.ECDsa256: (hashlib.sha256, ec.ECDSA(utils.Prehashed(hashes.SHA256()))),
    SigningType.ECDsa384: (hashlib.sha384, ec.ECDSA(utils.Prehashed(hashes.SHA384()))),
}


def signing_type_of(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> SigningType:
    """The signing type for a key's curve; SignatureError for curves images cannot use."""
    try:
        return _CURVES[key.curve.name]
    except KeyError:
        raise SignatureError(f"curve {key.curve.name} cannot sign image packages") from None


def thumbprint(certificate: x509.Certificate) -> bytes:
    """The 20-byte SHA-1 thumbprint that an SG section names a signing certificate by."""
    return certificate.fingerprint(hashes.SHA1())


@dataclass(frozen=True)
class Signer:
    """A private key and the certificate that names it."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def thumbprint(self) -> bytes:
        return thumbprint(self.certificate)

    @property
    def signing_type(self) -> SigningType:
        return signing_type_of(self.key)

    def sign(self, covered: bytes) -> bytes:
        """The raw r || s signature over `covered`."""
        digest, algorithm = _HASHES[self.signing_type]
        der = self.key.sign(digest(covered).digest(), algorithm)
        r, s = utils.decode_dss_signature(der)
        width = SIGNATURE_SIZE[self.signing_type] // 2
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")


class Verifier(NamedTuple):
    """A public key with what verifying under it takes: its signing type, the width of r and
    of s, the hash and the prehashed ECDSA algorithm (worked out once per key)."""

    key: ec.EllipticCurvePublicKey
    signing_type: SigningType
    width: int
    digest: Callable[..., Any]
    algorithm: ec.ECDSA


def verifier(public_key: ec.EllipticCurvePublicKey) -> Verifier:
    """The verifier for `public_key`; SignatureError for curves images cannot use."""
    signing_type = signing_type_of(public_key)
    digest, algorithm = _HASHES[signing_type]
    return Verifier(public_key, signing_type, SIGNATURE_SIZE[signing_type] // 2, digest,
                    algorithm)


def verify_with(
    key: Verifier, covered: bytes | memoryview, signature: bytes | memoryview
) -> None:
    """Check a raw r || s signature over `covered` under `key`; SignatureError if it does
    not hold."""
    width = key.width
    if len(signature) != 2 * width:
        raise SignatureError(
            f"{len(signature)}-byte signature for a {key.signing_type.name} key"
        )
    raw = bytes(signature)
    der = der_signature(raw[:width], raw[width:])
    try:
        key.key.verify(der, key.digest(covered).digest(), key.algorithm)
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None


def _der_integer(value: bytes) -> bytes:
    """A DER INTEGER of the unsigned big-endian `value` (at most 126 bytes)."""
    value = value.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return b"\x02" + len(value).to_bytes(1, "big") + value


def der_signature(r: bytes, s: bytes) -> bytes:
    """The DER ECDSA-Sig-Value of big-endian `r` and `s` (what
    `utils.encode_dss_signature(int(r), int(s))` gives; short-form lengths suffice for
    P-256 and P-384)."""
    body = _der_integer(r) + _der_integer(s)
    return b"\x30" + len(body).to_bytes(1, "big") + body


def verify_raw(
    public_key: ec.EllipticCurvePublicKey,
    covered: bytes | memoryview,
    signature: bytes | memoryview,
) -> None:
    """Check a raw r || s signature over `covered`; SignatureError if it does not hold."""
    verify_with(verifier(public_key), covered, signature)
