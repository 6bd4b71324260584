"""The two certificate stores an audit compares: an UpdateCertStore image or a PEM bundle."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import Store

from firmware_model.certstore import read_store_payload
from firmware_model.errors import ImageFormatError
from firmware_model.package import parse_package
from firmware_model.sections import ImageType, image_type_name
from tools.audit.errors import BadInputError

PEM_MARK = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class TrustStore:
    """A set of trusted roots; `names` gives each root's short name (its common name, else
    its whole subject), the same whether the store came as an image or a PEM bundle."""

    label: str
    roots: tuple[x509.Certificate, ...]

    @cached_property
    def store(self) -> Store | None:
        """The verification store; None when there is no root at all."""
        return Store(list(self.roots)) if self.roots else None

    @cached_property
    def names(self) -> dict[x509.Certificate, str]:
        return {root: common_name(root.subject) for root in self.roots}

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
        return from_roots(f"{self.label}+{other.label}", [*self.roots, *other.roots])

    def sharing(self, other: TrustStore) -> TrustStore:
        """This store with the roots it has in common with `other` as `other`'s objects."""
        mine = {root: root for root in other.roots}
        return TrustStore(self.label, tuple(mine.get(root, root) for root in self.roots))


def common_name(name: x509.Name) -> str:
    """The common name of `name`, else the whole name (RFC 4514)."""
    names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


def from_roots(label: str, roots: Sequence[x509.Certificate]) -> TrustStore:
    """A store of `roots` (duplicates dropped)."""
    return TrustStore(label, tuple(dict.fromkeys(roots)))


def _from_image(data: bytes, what: str) -> TrustStore:
    try:
        package = parse_package(data)
        if package.image_type != ImageType.UpdateCertStore:
            raise BadInputError(
                what, f"image type {image_type_name(package.image_type)}, not UpdateCertStore"
            )
        return from_roots(what, [cert for _, cert in read_store_payload(package.payload)])
    except ImageFormatError as error:
        raise BadInputError(what, f"not a certificate store image ({error})") from None


def _from_pem(data: bytes, what: str) -> TrustStore:
    try:
        with warnings.catch_warnings():  # some public roots have non-positive serials
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            roots = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise BadInputError(what, f"PEM bundle does not parse ({error})") from None
    return from_roots(what, roots)


def load_store(path: Path) -> TrustStore:
    """The store in `path`, an UpdateCertStore image or a PEM bundle; BadInputError else."""
    what = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInputError(what, f"cannot read ({error.strerror or error})") from None
    if PEM_MARK in data:
        return _from_pem(data, what)
    return _from_image(data, what)
