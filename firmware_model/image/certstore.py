"""UpdateCertStore payload: a cramfs filesystem holding `certs/<Name>.pem`, one root each.

`read_store_payload` is the one reader of store payloads (the device's TLS store, `imagetool
show` and `verify`, `imagetool feed`, the endpoint audit): a store holds regular files directly
in `certs/`, each named `<Name>.pem` (any non-empty name) and each holding exactly one PEM
certificate; anything else is an ImageFormatError, so no reader ever sees a subset of a file.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from cryptography import utils as crypto_utils
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware_model.errors import ImageFormatError
from firmware_model.image.cramfs import build_cramfs, read_cramfs

CERT_DIR = "certs/"
#: What cryptography raises for bytes that are not a certificate it can load.
BAD_CERTIFICATE = (ValueError, x509.InvalidVersion)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^-\r\n]*)-----")


@contextmanager
def real_world_roots() -> Iterator[None]:
    """Load roots as stores ship them: several of Mozilla's have serial number 0, which
    RFC 5280 disallows and cryptography warns about. A store carries them all the same."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parsed a serial number",
                                category=crypto_utils.CryptographyDeprecationWarning)
        yield


def load_pem_bundle(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; ImageFormatError if it holds none or garbage."""
    try:
        with real_world_roots():
            return x509.load_pem_x509_certificates(data)
    except BAD_CERTIFICATE as error:
        raise ImageFormatError(f"not a PEM certificate bundle ({error})") from None


def load_one_certificate(data: bytes, what: str) -> x509.Certificate:
    """The one certificate of a PEM file: exactly one PEM block, a CERTIFICATE (text around it
    is allowed, as RFC 7468 allows it); ImageFormatError naming `what` for none, several
    certificates (a bundle), or another PEM block beside it. Never the first of several."""
    blocks = _PEM_BLOCK.findall(data)
    try:
        with real_world_roots():
            certificates = x509.load_pem_x509_certificates(data)
    except BAD_CERTIFICATE:
        raise ImageFormatError(f"{what} is not a PEM certificate") from None
    if len(certificates) > 1:
        raise ImageFormatError(f"{what} holds {len(certificates)} certificates, not one")
    if len(blocks) != 1:
        kinds = ", ".join(sorted({b.decode("ascii", "replace") for b in blocks}))
        raise ImageFormatError(f"{what} holds {len(blocks)} PEM blocks ({kinds}), not one "
                               "certificate alone")
    return certificates[0]


def file_stem(certificate: x509.Certificate) -> str:
    """A file name stem for a root: its common name (else the whole subject), made safe."""
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    text = str(names[0].value) if names else certificate.subject.rfc4514_string()
    return _UNSAFE.sub("_", text).strip("_") or "certificate"


def build_store_payload(certificates: Sequence[tuple[str, x509.Certificate]]) -> bytes:
    """A store filesystem with `certs/<name>.pem` for each (name, certificate)."""
    files: dict[str, bytes] = {}
    for name, certificate in certificates:
        path = f"{CERT_DIR}{name}.pem"
        if path in files:
            raise ImageFormatError(f"two certificates named {name!r}")
        files[path] = certificate.public_bytes(serialization.Encoding.PEM)
    return build_cramfs(files)


def read_store_payload(payload: bytes) -> list[tuple[str, x509.Certificate]]:
    """Every (name, certificate) of a store, sorted by name; ImageFormatError for a payload
    that is not a cramfs (`read_cramfs`), a file other than `certs/<Name>.pem` (a non-empty
    name, directly in certs/), or a file that does not hold exactly one PEM certificate
    (`load_one_certificate`: a bundle in one file is refused, never read in part)."""
    roots = []
    for path, content in sorted(read_cramfs(payload).items()):
        name = path[len(CERT_DIR) : -len(".pem")]
        if not (path.startswith(CERT_DIR) and path.endswith(".pem") and name
                and "/" not in name):
            raise ImageFormatError(f"store holds {path!r}, not certs/<Name>.pem")
        roots.append((name, load_one_certificate(content, path)))
    return sorted(roots, key=lambda root: root[0])
