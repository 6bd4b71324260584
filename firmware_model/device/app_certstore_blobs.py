"""What the app certificate store takes and tells: certificates and keys as apps hand them in,
the names and dates it reports, and the refusals (each an errno) they can meet.

A certificate blob is PEM (one `CERTIFICATE` block, white space around it allowed, nothing
else) or DER (one certificate, no trailing bytes). A private key blob is PEM or DER too, in any
form cryptography reads (PKCS#8, traditional, encrypted or not). Names read as OpenSSL's
one-line form (`/C=US/O=Org/CN=Name`, as the device REST API shows them), at most 300
characters (`CERTSTORE_SUBJECTNAME_MAX_LENGTH`); longer ones are cut there.
"""

from __future__ import annotations

import enum
import errno
import functools
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from firmware_model.device.tls import iso
from firmware_model.errors import CertStoreError, certstore_error
from firmware_model.image.certstore import BAD_CERTIFICATE, real_world_roots

#: CERTSTORE_SUBJECTNAME_MAX_LENGTH and CERTSTORE_ISSUERNAME_MAX_LENGTH (certstore_structs.h).
NAME_MAX_LENGTH = 300
_PEM_BEGIN, _PEM_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
#: OpenSSL short names for attributes cryptography writes as dotted OIDs in RFC 4514 strings.
_SHORT_NAMES = {
    x509.NameOID.EMAIL_ADDRESS: "emailAddress",
    x509.NameOID.SERIAL_NUMBER: "serialNumber",
    x509.NameOID.TITLE: "title",
    x509.NameOID.GIVEN_NAME: "GN",
    x509.NameOID.SURNAME: "SN",
    x509.NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
}


class CertKind(enum.Enum):
    """What an identifier holds; the values are the device REST API's `certType`s."""

    ROOT_CA = "rootca"
    CLIENT = "client"


class Refusal(enum.Enum):
    """Why the store refused, finer than the errno (`CertStoreError.reason` is the value)."""

    IDENTIFIER_LENGTH = ("identifier-length", errno.ERANGE)
    IDENTIFIER_CHARACTERS = ("identifier-characters", errno.EINVAL)
    CERTIFICATE_LENGTH = ("certificate-length", errno.ERANGE)
    CERTIFICATE_INVALID = ("certificate-invalid", errno.EINVAL)
    KEY_LENGTH = ("key-length", errno.ERANGE)
    KEY_INVALID = ("key-invalid", errno.EINVAL)
    KEY_PASSWORD = ("key-password", errno.EINVAL)
    KEY_MISMATCH = ("key-mismatch", errno.EINVAL)
    PASSWORD_LENGTH = ("password-length", errno.ERANGE)
    PASSWORD_NOT_ALLOWED = ("password-not-allowed", errno.EINVAL)
    INDEX_RANGE = ("index-range", errno.ERANGE)
    NOT_FOUND = ("not-found", errno.ENOENT)
    NO_SPACE = ("no-space", errno.ENOSPC)

    @property
    def errno(self) -> int:
        return int(self.value[1])

    def error(self, message: str) -> CertStoreError:
        """The typed error of this refusal (its kind follows its errno)."""
        return certstore_error(self.errno, str(self.value[0]), message)


def check_length(blob: bytes, limit: int, what: str, refusal: Refusal) -> None:
    """`refusal` (an ERANGE) unless 1 <= len(blob) <= limit."""
    if not 1 <= len(blob) <= limit:
        raise refusal.error(f"the {what} is {len(blob)} bytes; it must be 1 to {limit}")


def load_certificate(blob: bytes) -> x509.Certificate:
    """The one certificate of a PEM or DER blob; CERTIFICATE_INVALID (EINVAL) otherwise."""
    try:
        return _load_certificate(bytes(blob))
    except (*BAD_CERTIFICATE, UnicodeDecodeError):
        raise Refusal.CERTIFICATE_INVALID.error(
            "the certificate is not one X.509 certificate in PEM or DER") from None


@functools.lru_cache(maxsize=64)
def _load_certificate(blob: bytes) -> x509.Certificate:
    """A pure function of the bytes, memoized: a listing describes every entry each time."""
    text = blob.strip()
    with real_world_roots():
        if not text.startswith(b"-----"):
            return x509.load_der_x509_certificate(blob)
        text.decode("ascii")  # a PEM blob is text
        if (not text.startswith(_PEM_BEGIN) or not text.endswith(_PEM_END)
                or text.count(b"-----BEGIN") != 1):
            raise ValueError("not one PEM CERTIFICATE block")
        return x509.load_pem_x509_certificate(text)


def load_private_key(blob: bytes, password: bytes | None) -> PrivateKeyTypes:
    """The private key of a PEM or DER blob, decrypted with `password` if it is encrypted.

    KEY_INVALID if it is no key cryptography can use, KEY_PASSWORD if it is encrypted and the
    password is missing or does not decrypt it, PASSWORD_NOT_ALLOWED if a password is given
    for a key that is not encrypted (all EINVAL).
    """
    loader = (serialization.load_pem_private_key if blob.lstrip().startswith(b"-----")
              else serialization.load_der_private_key)
    try:
        key = loader(blob, None)
    except TypeError:  # cryptography's word for "it is encrypted and no password was given"
        if password is None:
            raise Refusal.KEY_PASSWORD.error(
                "the private key is encrypted and no password was given") from None
        try:
            return loader(blob, password)
        except (TypeError, ValueError, UnsupportedAlgorithm):
            raise Refusal.KEY_PASSWORD.error(
                "the password does not decrypt the private key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise Refusal.KEY_INVALID.error(
            "the private key is not a key in PEM or DER that the store can use") from None
    if password is not None:
        raise Refusal.PASSWORD_NOT_ALLOWED.error(
            "a password was given but the private key is not encrypted")
    return key


def check_key_pair(certificate: x509.Certificate, key: PrivateKeyTypes) -> None:
    """KEY_MISMATCH unless `key` is the private half of the certificate's public key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise Refusal.KEY_MISMATCH.error("the private key does not match the certificate")


def one_line_name(name: x509.Name) -> str:
    """`/C=US/O=Org/CN=Name`, in the certificate's order, at most NAME_MAX_LENGTH characters."""
    parts = []
    for attribute in name:
        label = _SHORT_NAMES.get(attribute.oid, attribute.rfc4514_attribute_name)
        value = attribute.value
        text = value if isinstance(value, str) else value.hex()
        parts.append(f"/{label}={text}")
    return "".join(parts)[:NAME_MAX_LENGTH]


@dataclass(frozen=True)
class CertInfo:
    """What the store tells about one certificate (CertStore_GetCertificate*): its kind, the
    bytes it takes of the store, subject and issuer names, validity (UTC)."""

    identifier: str
    kind: CertKind
    size: int
    subject_name: str
    issuer_name: str
    not_before: datetime
    not_after: datetime

    @classmethod
    def of(cls, identifier: str, kind: CertKind, size: int, blob: bytes) -> CertInfo:
        certificate = load_certificate(blob)
        return cls(identifier, kind, size, one_line_name(certificate.subject),
                   one_line_name(certificate.issuer), certificate.not_valid_before_utc,
                   certificate.not_valid_after_utc)

    def to_json(self) -> dict[str, object]:
        return {"id": self.identifier, "type": self.kind.value, "bytes": self.size,
                "subject_name": self.subject_name, "issuer_name": self.issuer_name,
                "not_before": iso(self.not_before), "not_after": iso(self.not_after)}
