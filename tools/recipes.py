"""Build signed images from TOML recipes.

A recipe names the image (type, name, GUIDs, build time, security version, signing key) and
its contents in one table named after the kind:

    type = "UpdateCertStore"            # or TrustedKeystore, BaseSystemUpdateManifest
    name = "certstore-2025-02"          # DB section, at most 32 bytes of UTF-8
    component_id = "a2a4a79c-..."       # GUIDs
    image_id = "5b6d2a0e-..."
    build_time = 2025-02-10T00:00:00Z
    security_version = 2
    signing_key = "image-signing"       # stem of KEY.key / KEY.pem in the --keys folder

    [store]                             # PEM files, relative to the recipe
    certificates = ["../roots/DigiCert_Global_Root_G2.pem"]
    bundles = []                        # PEM bundles: every certificate in them

    [keystore]                          # image-signing keys, certificates in --keys
    keys = [{ certificate = "image-signing.pem", image_types = ["UpdateCertStore"] }]

    [manifest]                          # built images, relative to the output folder
    images = ["certstore-2025-02.imagepackage"]

    [app]                               # Applications: path in the image = file (recipe-relative)
    files = { "app_manifest.json" = "app_manifest.json", "bin/app" = "build/app" }
    # or, without an executable of your own, a stand-in (tools/elfstub.py): an ELF32 ARM file
    # whose read-only data holds these strings (the endpoints the app reaches)
    stand_in_executables = { "bin/app" = ["https://telemetry.example.com/v1/readings"] }
"""

from __future__ import annotations

import datetime as dt
import tomllib
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509

from firmware_model.errors import ImageFormatError
from firmware_model.image.build import build_package
from firmware_model.image.certstore import build_store_payload, file_stem, load_pem_bundle
from firmware_model.image.cramfs import build_cramfs
from firmware_model.image.keystore import (
    KEYSTORE_SIGNING_ROLE,
    TrustedKey,
    build_keystore_payload,
    has_keystore_signing_role,
)
from firmware_model.image.manifest import ManifestEntry, build_manifest
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from firmware_model.trust.fuses import MAX_SECURITY_VERSION
from policy.files import read_regular, read_regular_text
from tools.elfstub import arm_executable
from tools.files import write_atomic
from tools.pki import IMAGE_SIGNING, KEYSTORE_SIGNING, ROOT, load_certificate, load_signer


def load_recipe(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(read_regular_text(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ImageFormatError(f"{path} is not a TOML recipe ({error})") from None


def _need(recipe: dict[str, Any], key: str, path: Path) -> Any:
    if key not in recipe:
        raise ImageFormatError(f"{path}: recipe has no '{key}'")
    return recipe[key]


def _image_type(name: str, path: Path) -> ImageType:
    try:
        return ImageType[name]
    except KeyError:
        raise ImageFormatError(f"{path}: unknown image type {name!r}") from None


def _store_payload(table: dict[str, Any], base: Path, path: Path) -> bytes:
    named: list[tuple[str, x509.Certificate]] = []
    for file in table.get("certificates", []):
        try:
            cert = load_certificate(base / file)
        except ImageFormatError as error:
            raise ImageFormatError(f"{path}: store.certificates: {error} (a store file holds "
                                   "one root: list a bundle under store.bundles, which "
                                   "gives each of its certificates a file of its own)") from None
        named.append((Path(file).stem, cert))
    for bundle in table.get("bundles", []):
        for cert in load_pem_bundle(read_regular(base / bundle)):
            named.append((file_stem(cert), cert))
    if not named:
        raise ImageFormatError(f"{path}: a store with no root would leave a device unable to "
                               "reach any HTTPS endpoint, its feed included")
    return build_store_payload(_unique(named))


def _unique(named: list[tuple[str, x509.Certificate]]) -> list[tuple[str, x509.Certificate]]:
    """Names made unique the way a file system needs them (`Name`, `Name_2`, ...)."""
    seen: dict[str, int] = {}
    result = []
    for name, cert in named:
        seen[name] = seen.get(name, 0) + 1
        result.append((name if seen[name] == 1 else f"{name}_{seen[name]}", cert))
    return result


def _subtable(table: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise ImageFormatError(f"{path}: app.{key} is not a table (path in the image = ...)")
    return value


def _app_files(table: dict[str, Any], path: Path) -> dict[str, bytes]:
    """The files of an Applications image: `files` read from disk, `stand_in_executables`
    made by `tools.elfstub`."""
    if not isinstance(table, dict):
        raise ImageFormatError(f"{path}: 'app' is not a table")
    files = {name: read_regular(path.parent / str(file))
             for name, file in _subtable(table, "files", path).items()}
    for name, strings in _subtable(table, "stand_in_executables", path).items():
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise ImageFormatError(f"{path}: stand_in_executables.{name} is not a list of "
                                   "strings")
        if name in files:
            raise ImageFormatError(f"{path}: {name} is both a file and a stand-in executable")
        files[name] = arm_executable(strings)
    if not files:
        raise ImageFormatError(f"{path}: an Applications image with no file")
    return files


def _keystore_payload(table: dict[str, Any], keys: Path, stem: str, path: Path) -> bytes:
    """The keystore's payload, carrying `stem`.pem as its signer certificate: the device
    authenticates the keystore with it, and refuses it without the keystore-signing role."""
    entries = [
        TrustedKey.from_certificate(
            load_certificate(keys / k["certificate"]),
            [_image_type(t, path) for t in k["image_types"]],
        )
        for k in table.get("keys", [])
    ]
    if not any(ImageType.BaseSystemUpdateManifest in key.image_types and not key.revoked
               for key in entries):
        raise ImageFormatError(f"{path}: no key of this keystore may sign an update manifest: "
                               "a device that installed it could never update again")
    root = load_certificate(keys / f"{ROOT}.pem").public_key()
    signer = load_certificate(keys / f"{stem}.pem")
    if not has_keystore_signing_role(signer):
        raise ImageFormatError(
            f"{path}: {keys / stem}.pem lacks the keystore-signing role "
            f"({KEYSTORE_SIGNING_ROLE.dotted_string}): every device would refuse a keystore it "
            f"signs (sign keystores with {KEYSTORE_SIGNING}; a lab PKI made before the role "
            f"existed gets it from imagetool keygen --update --out {keys})")
    return build_keystore_payload(root, signer, entries)  # type: ignore[arg-type]


def _manifest_payload(table: dict[str, Any], out_dir: Path, build_date: int) -> bytes:
    entries = [ManifestEntry.for_image(parse_package(read_regular(out_dir / f)))
               for f in table.get("images", [])]
    return build_manifest(entries, build_date)


def _timestamp(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp())
    return int(value or 0)


def _security_version(recipe: dict[str, Any], path: Path) -> int | None:
    """The recipe's security version: a whole number a device's counter can hold."""
    version = recipe.get("security_version")
    if version is None:
        return None
    if not isinstance(version, int) or isinstance(version, bool) or not (
            0 <= version <= MAX_SECURITY_VERSION):
        raise ImageFormatError(f"{path}: security_version {version!r}: a device's counter "
                               f"holds 0..{MAX_SECURITY_VERSION}")
    return version


def build_from_recipe(path: Path, keys: Path, out: Path) -> bytes:
    """Build, sign and write the image `path` describes; return its bytes."""
    recipe = load_recipe(path)
    image_type = _image_type(_need(recipe, "type", path), path)
    build_time = _timestamp(recipe.get("build_time"))
    default_key = KEYSTORE_SIGNING if image_type == ImageType.TrustedKeystore else IMAGE_SIGNING
    stem = str(recipe.get("signing_key", default_key))
    if image_type == ImageType.UpdateCertStore:
        payload = _store_payload(_need(recipe, "store", path), path.parent, path)
    elif image_type == ImageType.TrustedKeystore:
        payload = _keystore_payload(_need(recipe, "keystore", path), keys, stem, path)
    elif image_type == ImageType.BaseSystemUpdateManifest:
        payload = _manifest_payload(_need(recipe, "manifest", path), out.parent, build_time)
    elif image_type == ImageType.Applications:
        payload = build_cramfs(_app_files(_need(recipe, "app", path), path))
    else:
        raise ImageFormatError(
            f"{path}: recipes build stores, keystores, manifests and applications only")
    try:
        ids = (uuid.UUID(_need(recipe, "component_id", path)),
               uuid.UUID(_need(recipe, "image_id", path)))
    except ValueError as error:
        raise ImageFormatError(f"{path}: bad GUID ({error})") from None
    name = str(recipe.get("name", path.stem))
    if len(name.encode()) > 32:
        raise ImageFormatError(f"{path}: name {name!r} is longer than 32 bytes")
    image = build_package(
        payload, image_type=image_type, component_id=ids[0], image_id=ids[1],
        signer=load_signer(keys / f"{stem}.key", keys / f"{stem}.pem"), name=name,
        build_time=build_time, security_version=_security_version(recipe, path),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, image)
    return image
