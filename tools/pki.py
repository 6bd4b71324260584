"""A lab PKI for image signing: a root key (whose public-key hash a device fuses), the
keystore signing certificate and an image-signing certificate, all ECDSA P-256 X.509."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware_model.errors import ImageFormatError
from firmware_model.image.certstore import BAD_CERTIFICATE, load_one_certificate
from firmware_model.image.keystore import (
    KEYSTORE_SIGNING_ROLE,
    has_keystore_signing_role,
    root_key_hash,
)
from firmware_model.image.signing import Signer
from policy.errors import UsageError
from policy.files import read_regular
from tools.files import write_atomic

ROOT = "root"
KEYSTORE_SIGNING = "keystore-signing"
IMAGE_SIGNING = "image-signing"
#: The image-signing key of the July 2024 rotation (a lab stand-in for the key AS3 signs with
#: since 24 July 2024): the July 2024 keystore adds it beside IMAGE_SIGNING.
IMAGE_SIGNING_2024_07 = "image-signing-2024-07"
#: Common names of the image-signing certificates keygen issues, by stem.
IMAGE_SIGNERS = {IMAGE_SIGNING: "Lab Image Signing",
                 IMAGE_SIGNING_2024_07: "Lab Image Signing (July 2024)"}
VALIDITY = dt.timedelta(days=3650)
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def new_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def issue(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    not_before: dt.datetime = EPOCH,
    names: list[x509.GeneralName] | None = None,
    not_after: dt.datetime | None = None,
    path_length: int | None = None,
    extended_usages: Sequence[x509.ObjectIdentifier] = (),
) -> x509.Certificate:
    """A certificate for `key`, self-signed when `issuer` is None; `names` go in its
    subjectAltName (what TLS clients check). Valid from `not_before` to `not_after` (default
    VALIDITY later); a CA's `path_length` limits the CAs below it; `extended_usages` (e.g.
    ExtendedKeyUsageOID.SERVER_AUTH for a web server) make an extendedKeyUsage extension."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sphere-fwmodel lab"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, signing_key = (subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    usage = x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                          decipher_only=False)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + VALIDITY if not_after is None else not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                       critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signing_key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if extended_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_usages)),
                                        critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def general_name(name: str) -> x509.GeneralName:
    """A subjectAltName entry: an IP address when `name` is one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a PKCS#8 PEM private key readable by its owner only (0600 from creation)."""
    write_atomic(path, key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), 0o600)


def write_certificate(path: Path, certificate: x509.Certificate) -> None:
    write_atomic(path, certificate.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class LabPki:
    """Where keygen put things."""

    folder: Path

    def signer(self, stem: str) -> Signer:
        return load_signer(self.folder / f"{stem}.key", self.folder / f"{stem}.pem")


KEYGEN_FILES = [f"{stem}{suffix}" for stem in (ROOT, KEYSTORE_SIGNING, *IMAGE_SIGNERS)
                for suffix in (".key", ".pem")] + [f"{ROOT}.pub.pem", f"{ROOT}.hash"]


def keygen(folder: Path, *, force: bool = False) -> LabPki:
    """Create root, keystore-signing and image-signing keys and certificates in `folder` (two
    image-signing keys: IMAGE_SIGNING and the July 2024 one, IMAGE_SIGNING_2024_07).

    The keystore-signing certificate carries the keystore-signing role (an extended key usage,
    `KEYSTORE_SIGNING_ROLE`); the image-signing one does not, so it cannot sign keystores.
    Also writes the root public key (`root.pub.pem`) and the hash a device fuses
    (`root.hash`, hex). Refuses (UsageError, nothing written) to replace an existing lab PKI
    unless `force`: devices may have fused that root already.
    """
    existing = [name for name in KEYGEN_FILES if (folder / name).exists()]
    if existing and not force:
        raise UsageError(f"{folder / existing[0]} exists: keygen would replace a lab PKI "
                           "whose root a device may have fused (use --force to replace it)")
    folder.mkdir(parents=True, exist_ok=True)
    root_key = new_key()
    root = issue("Lab Root (fused)", root_key, ca=True)
    for stem, key, cert in [(ROOT, root_key, root)] + [
        (stem, k, issue(name, k, (root, root_key), extended_usages=usages))
        for stem, name, k, usages in [
            (KEYSTORE_SIGNING, "Lab Keystore Signing", new_key(), [KEYSTORE_SIGNING_ROLE]),
            *((stem, name, new_key(), []) for stem, name in IMAGE_SIGNERS.items())]
    ]:
        write_private_key(folder / f"{stem}.key", key)
        write_certificate(folder / f"{stem}.pem", cert)
    public = root_key.public_key()
    write_atomic(folder / f"{ROOT}.pub.pem", public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    write_atomic(folder / f"{ROOT}.hash", (root_key_hash(public).hex() + "\n").encode())
    return LabPki(folder)


def complete_lab_pki(folder: Path) -> list[str]:
    """Bring a lab PKI made by an older keygen up to date, under its own root: issue each
    image-signing key of IMAGE_SIGNERS it lacks (the July 2024 one), and re-issue the
    keystore-signing certificate, same key and name, with the keystore-signing role if it lacks
    it (every device refuses a keystore signed without it). The root and the keys already there
    are kept: a device that fused that root still trusts what they signed. Returns the stems
    of the certificates issued."""
    root = load_signer(folder / f"{ROOT}.key", folder / f"{ROOT}.pem")
    made = []
    for stem, name in IMAGE_SIGNERS.items():
        if (folder / f"{stem}.key").exists() and (folder / f"{stem}.pem").exists():
            continue
        key = new_key()
        write_private_key(folder / f"{stem}.key", key)
        write_certificate(folder / f"{stem}.pem",
                          issue(name, key, (root.certificate, root.key)))
        made.append(stem)
    signer = load_signer(folder / f"{KEYSTORE_SIGNING}.key", folder / f"{KEYSTORE_SIGNING}.pem")
    if not has_keystore_signing_role(signer.certificate):
        common = signer.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        write_certificate(folder / f"{KEYSTORE_SIGNING}.pem",
                          issue(str(common[0].value), signer.key, (root.certificate, root.key),
                                extended_usages=[KEYSTORE_SIGNING_ROLE]))
        made.append(KEYSTORE_SIGNING)
    return made


def load_certificate(path: Path) -> x509.Certificate:
    """The one PEM certificate `path` holds; ImageFormatError for none or several (a bundle is
    refused, never read as its first certificate)."""
    return load_one_certificate(read_regular(path), str(path))


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """An EC public key from a PEM file holding a public key or a certificate."""
    data = read_regular(path)
    try:
        key = (load_one_certificate(data, str(path)).public_key() if b"CERTIFICATE" in data
               else serialization.load_pem_public_key(data))
    except BAD_CERTIFICATE:
        raise ImageFormatError(f"{path} holds no PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ImageFormatError(f"{path} does not hold an EC public key")
    return key


def load_signer(key_path: Path, cert_path: Path) -> Signer:
    """A Signer from a PEM private key and the PEM certificate naming it."""
    try:
        key = serialization.load_pem_private_key(read_regular(key_path), password=None)
    except (ValueError, TypeError):
        raise ImageFormatError(f"{key_path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ImageFormatError(f"{key_path} is not an EC private key")
    certificate = load_certificate(cert_path)
    if certificate.public_key() != key.public_key():
        raise ImageFormatError(f"{cert_path} does not certify the key in {key_path}")
    return Signer(key, certificate)
