"""The chain of trust for images: fused root-key hash (OTP) -> keystore image -> image-signing
keys -> images.

`open_keystore` authenticates a keystore image against the fused hash (its root key, the
certificate of its signer issued by that root with the keystore-signing role, the signature);
`open_keystore_signed_by` checks one against a keystore-signing certificate alone (no root);
`authenticate` checks any other image's signature with a key of a keystore's `Keyring` that may
sign its type; `verify_image` authenticates, then parses, refusing a section the device does not
know. Nothing untrusted is parsed further than needed to authenticate
it: the trailer, the section table, the image type and the thumbprint (and for a keystore its
header) before the signature; the sections and the payload after.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_model.errors import ImageFormatError, UntrustedSignerError, WrongImageTypeError
from firmware_model.image import derive
from firmware_model.image.keystore import (
    KEYSTORE_SIGNING_ROLE,
    Header,
    Keyring,
    Keystore,
    LoadedCertificate,
    has_keystore_signing_role,
    read_header,
    read_keys,
)
from firmware_model.image.package import ImagePackage, PackageLayout, locate, parse_package
from firmware_model.image.sections import SECTION_FORMATS, ImageType, SectionId, image_type_name
from firmware_model.image.signing import verifier, verify_with

_IMAGE_TYPE = derive.fields(SECTION_FORMATS[SectionId.Identity], "image_type").struct
_THUMBPRINT = derive.fields(SECTION_FORMATS[SectionId.Signature], "thumbprint").struct
_IDENTITY, _SIGNATURE = int(SectionId.Identity), int(SectionId.Signature)


def _id_fields(data: bytes | memoryview, layout: PackageLayout) -> tuple[int, bytes]:
    """Image type and SG thumbprint, read straight from the checked section table."""
    (image_type,) = _IMAGE_TYPE.unpack_from(data, layout.spans[_IDENTITY][0])
    (thumb,) = _THUMBPRINT.unpack_from(data, layout.spans[_SIGNATURE][0])
    return image_type, thumb


def authenticate(
    data: bytes | memoryview, keyring: Keyring, layout: PackageLayout | None = None
) -> PackageLayout:
    """Locate the metadata and verify the signature with a key allowed for the image type.

    Only the trailer, the section table, the image type and the thumbprint are read first.
    `layout`, if given, must be `locate(data)` (a caller that already located these bytes).
    """
    if layout is None:
        layout = locate(data)
    view = memoryview(data)
    end = layout.metadata_end
    image_type, thumb = _id_fields(view, layout)
    verify_with(keyring.trusted(thumb, image_type).verifier, view[:end], view[end:])
    return layout


def verify_image(
    data: bytes,
    keyring: Keyring,
    expected_type: int | None = None,
    layout: PackageLayout | None = None,
) -> ImagePackage:
    """Authenticate, then parse in full; WrongImageTypeError if it is not `expected_type`.
    `layout`, if given, must be `locate(data)`."""
    image = _known_sections_only(parse_package(data, authenticate(data, keyring, layout)))
    if expected_type is not None and image.image_type != expected_type:
        raise WrongImageTypeError(
            f"expected a {image_type_name(expected_type)} image, got {image.image_type_name}"
        )
    return image


def _known_sections_only(image: ImagePackage) -> ImagePackage:
    """The image, unless it has a section the device does not know: a device refuses what it
    cannot interpret, however well it is signed (ImageFormatError at that section)."""
    unknown = image.unknown_sections
    if unknown:
        raise ImageFormatError(f"unknown section '{unknown[0].tag}'", unknown[0].offset)
    return image


def _check_issued_by_root(signer: LoadedCertificate, root: ec.EllipticCurvePublicKey) -> None:
    certificate = signer.certificate
    try:
        algorithm = certificate.signature_hash_algorithm
        if algorithm is None:
            raise UntrustedSignerError("keystore signer certificate names no hash algorithm")
        root.verify(certificate.signature, signer.tbs_certificate, ec.ECDSA(algorithm))
    except (InvalidSignature, UnsupportedAlgorithm):
        raise UntrustedSignerError("keystore signer is not certified by the root key") from None


def _keystore_header(view: memoryview, layout: PackageLayout) -> tuple[Header, bytes]:
    """The keystore payload's header and the SG thumbprint; WrongImageTypeError if the image
    is not a TrustedKeystore."""
    image_type, thumb = _id_fields(view, layout)
    if image_type != ImageType.TrustedKeystore:
        raise WrongImageTypeError(
            f"expected a TrustedKeystore image, got {image_type_name(image_type)}"
        )
    return read_header(view[: layout.metadata_start]), thumb


def _require_role(has_role: bool) -> None:
    if not has_role:
        raise UntrustedSignerError(
            "keystore signer certificate lacks the keystore-signing role (extended key usage "
            f"{KEYSTORE_SIGNING_ROLE.dotted_string})")


def _signed_by_its_signer(
    data: bytes, layout: PackageLayout, header: Header, thumb: bytes
) -> tuple[ImagePackage, Keystore]:
    """The checks of a keystore after who issued its signer: the role, the SG thumbprint
    naming the signer, the signature, no unknown section; then the keys."""
    signer = header.signer
    _require_role(signer.keystore_signing)
    if signer.thumbprint != thumb:
        raise UntrustedSignerError("keystore is not signed by the certificate it carries")
    signer_key = signer.certificate.public_key()
    if not isinstance(signer_key, ec.EllipticCurvePublicKey):
        raise UntrustedSignerError("keystore signer key is not an EC key")
    view = memoryview(data)
    end = layout.metadata_end
    verify_with(verifier(signer_key), view[:end], view[end:])
    image = _known_sections_only(parse_package(data, layout))
    keys = read_keys(view[: layout.metadata_start], header.keys_start)
    return image, Keystore(header.root_public_key, signer.certificate, keys)


def open_keystore(
    data: bytes, fused_root_hash: bytes, layout: PackageLayout | None = None
) -> tuple[ImagePackage, Keystore]:
    """Authenticate a keystore image against the fused root-key hash and return its keys.

    Checks, in order: envelope, image type, root key against the fuses, signer certificate
    issued by that root and marked with the keystore-signing role (KEYSTORE_SIGNING_ROLE: an
    image-signing certificate, also issued by the root, may not sign keystores), SG thumbprint
    naming that certificate, the image signature, no unknown section, the key list.
    `layout`, if given, must be `locate(data)` (a caller that already located these bytes).
    """
    if layout is None:
        layout = locate(data)
    header, thumb = _keystore_header(memoryview(data), layout)
    if header.root_hash != fused_root_hash:
        raise UntrustedSignerError("keystore root key does not match the fused root-key hash")
    _check_issued_by_root(header.signer, header.root_public_key)
    return _signed_by_its_signer(data, layout, header, thumb)


def open_keystore_signed_by(
    data: bytes, certificate: x509.Certificate, source: str
) -> tuple[ImagePackage, Keystore]:
    """A keystore image checked against one keystore-signing certificate, where no root is at
    hand (`imagetool verify --cert`): `certificate` (named by `source`) must carry the
    keystore-signing role and be the signer certificate the keystore carries; then every check
    of `open_keystore` but the two that need the root (its hash against the fuses, the signer
    issued by it)."""
    layout = locate(data)
    header, thumb = _keystore_header(memoryview(data), layout)
    _require_role(has_keystore_signing_role(certificate))
    if header.signer.certificate != certificate:
        raise UntrustedSignerError(
            f"keystore carries the signer certificate {header.signer.thumbprint.hex()}, not "
            f"{source}")
    return _signed_by_its_signer(data, layout, header, thumb)
