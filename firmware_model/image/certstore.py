"""UpdateCertStore payload: a cramfs filesystem holding `certs/<Name>.pem`, one root each."""

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
    """Every (name, certificate) of a store, sorted by name; ImageFormatError for anything
    else."""
    roots = []
    with real_world_roots():
        for path, content in sorted(read_cramfs(payload).items()):
            if not (path.startswith(CERT_DIR) and path.endswith(".pem") and "/" not in path[6:]):
                raise ImageFormatError(f"store holds {path!r}, not certs/<Name>.pem")
            try:
                certificate = x509.load_pem_x509_certificate(content)
            except BAD_CERTIFICATE:
                raise ImageFormatError(f"{path} is not a PEM certificate") from None
            roots.append((path[len(CERT_DIR) : -len(".pem")], certificate))
    return sorted(roots, key=lambda root: root[0])
