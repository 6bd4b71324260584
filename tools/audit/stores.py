"""The two certificate stores an audit compares: an UpdateCertStore image or a PEM bundle.

An image is authenticated before its payload is read when a keyring is given (the meaning of
`imagetool verify`: one signing certificate, or a keystore image authenticated against the
root public key a device fuses); without one its signature is not checked, and the store
says so (`provenance`). A PEM bundle carries no signature.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import Store

from firmware_model.errors import FwModelError, ImageFormatError
from firmware_model.image.certstore import read_store_payload
from firmware_model.image.keystore import Keyring, TrustedKey, root_key_hash
from firmware_model.image.package import ImagePackage, parse_package
from firmware_model.image.sections import ImageType, image_type_name
from firmware_model.trust.chain import open_keystore, verify_image
from policy.files import read_regular
from tools.audit.errors import BadInputError
from tools.pki import load_certificate, load_public_key

PEM_MARK = b"-----BEGIN CERTIFICATE-----"


class Provenance(enum.StrEnum):
    """Where a store's roots came from, and whether their signature was checked."""

    PEM_BUNDLE = "PEM bundle"
    UNAUTHENTICATED_IMAGE = "image, signature not checked"
    AUTHENTICATED_IMAGE = "image, authenticated"
    MERGED = "merged"


@dataclass(frozen=True)
class TrustStore:
    """A set of trusted roots; `names` gives each root's short name (its common name, else
    its whole subject, the same whether the store came as an image or a PEM bundle), or the
    name `labels` gives it; `called` is how a reason names the store."""

    label: str
    roots: tuple[x509.Certificate, ...]
    provenance: Provenance = Provenance.PEM_BUNDLE
    labels: tuple[str, ...] = ()
    called: str = "the store"

    @cached_property
    def store(self) -> Store | None:
        """The verification store; None when there is no root at all."""
        return Store(list(self.roots)) if self.roots else None

    @cached_property
    def names(self) -> dict[x509.Certificate, str]:
        if self.labels:
            return dict(zip(self.roots, self.labels, strict=True))
        return {root: common_name(root.subject) for root in self.roots}

    @cached_property
    def subjects(self) -> frozenset[x509.Name]:
        return frozenset(root.subject for root in self.roots)

    @cached_property
    def _names_by_identity(self) -> dict[int, str]:
        return {id(root): name for root, name in self.names.items()}

    def name_of(self, certificate: x509.Certificate) -> str | None:
        """The short name of `certificate` if it is one of the roots, else None.

        Verification hands back the store's own objects, so identity answers first (hashing
        a certificate costs microseconds, which add up over a thousand endpoints)."""
        found = self._names_by_identity.get(id(certificate))
        return found if found is not None else self.names.get(certificate)

    def __contains__(self, certificate: object) -> bool:
        return certificate in self.names

    def union(self, other: TrustStore) -> TrustStore:
        """Both stores' roots, this store's first."""
        return from_roots(f"{self.label}+{other.label}", [*self.roots, *other.roots],
                          Provenance.MERGED)

    def sharing(self, other: TrustStore) -> TrustStore:
        """This store with the roots it has in common with `other` as `other`'s objects."""
        mine = {root: root for root in other.roots}
        return replace(self, roots=tuple(mine.get(root, root) for root in self.roots))


def common_name(name: x509.Name) -> str:
    """The common name of `name`, else the whole name (RFC 4514)."""
    names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


def from_roots(
    label: str, roots: Sequence[x509.Certificate],
    provenance: Provenance = Provenance.PEM_BUNDLE,
) -> TrustStore:
    """A store of `roots` (duplicates dropped)."""
    return TrustStore(label, tuple(dict.fromkeys(roots)), provenance)


def _authenticated(data: bytes, what: str, keyring: Keyring) -> ImagePackage:
    """The image, its signature checked against `keyring` before anything else is read."""
    try:
        return verify_image(data, keyring, expected_type=ImageType.UpdateCertStore)
    except ImageFormatError as error:
        raise BadInputError(what, f"not a certificate store image ({error})") from None
    except FwModelError as error:  # trust: bad signature, unknown or revoked signer, type
        raise BadInputError(what, f"store image not authenticated: {error}") from None


def _from_image(data: bytes, what: str, keyring: Keyring | None) -> TrustStore:
    try:
        if keyring is not None:
            package = _authenticated(data, what, keyring)
            provenance = Provenance.AUTHENTICATED_IMAGE
        else:
            package = parse_package(data)
            provenance = Provenance.UNAUTHENTICATED_IMAGE
        if package.image_type != ImageType.UpdateCertStore:
            raise BadInputError(
                what, f"image type {image_type_name(package.image_type)}, not UpdateCertStore"
            )
        roots = [cert for _, cert in read_store_payload(package.payload)]
    except ImageFormatError as error:
        raise BadInputError(what, f"not a certificate store image ({error})") from None
    return from_roots(what, roots, provenance)


def _from_pem(data: bytes, what: str) -> TrustStore:
    try:
        with warnings.catch_warnings():  # some public roots have non-positive serials
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            roots = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise BadInputError(what, f"PEM bundle does not parse ({error})") from None
    return from_roots(what, roots)


def load_store(path: Path, keyring: Keyring | None = None) -> TrustStore:
    """The store in `path`, an UpdateCertStore image or a PEM bundle; BadInputError else.

    With `keyring`, an image must be signed by a key of it allowed to sign UpdateCertStore
    images (BadInputError otherwise); a PEM bundle is taken as it is."""
    what = str(path)
    data = _read(path)
    if PEM_MARK in data:
        return _from_pem(data, what)
    return _from_image(data, what, keyring)


def _read(path: Path) -> bytes:
    try:
        return read_regular(path)
    except OSError as error:
        raise BadInputError(str(path), f"cannot read ({error.strerror or error})") from None


def store_keyring(
    cert: Path | None = None, keystore: Path | None = None, root_pubkey: Path | None = None
) -> Keyring | None:
    """The keys store images must be signed with, as `imagetool verify` takes them: one
    signing certificate (PEM), or a keystore image authenticated against the root public
    key (PEM key or certificate) whose hash a device fuses. None when neither is given.

    Raises BadInputError naming the file that cannot be used."""
    if cert is not None:
        try:
            return Keyring([TrustedKey.from_certificate(load_certificate(cert))],
                           source=f"the certificate {cert}")
        except FwModelError:
            raise BadInputError(str(cert), "not a PEM signing certificate with an EC key"
                                ) from None
        except OSError as error:
            raise BadInputError(str(cert), f"cannot read ({error.strerror or error})") from None
    if keystore is None:
        return None
    if root_pubkey is None:
        raise BadInputError(str(keystore), "a keystore needs the root public key to trust it")
    try:
        fused = root_key_hash(load_public_key(root_pubkey))
    except FwModelError:
        raise BadInputError(str(root_pubkey), "holds no PEM EC public key or certificate"
                            ) from None
    except OSError as error:
        raise BadInputError(str(root_pubkey), f"cannot read ({error.strerror or error})"
                            ) from None
    try:
        return open_keystore(_read(keystore), fused)[1].keyring
    except FwModelError as error:
        raise BadInputError(str(keystore), f"keystore not usable: {error}") from None
