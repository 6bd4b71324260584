"""Publish images into an update feed folder, where `fwmodel update --feed` looks for them.

    imagetool feed IMAGE... --keys DIR --channel Retail|RetailEval -o FEED
        [--keystore KS] [--date DATE] [--force]

FEED gets one folder per channel (`FEED/Retail/`), as `firmware_model.agent.feed` reads it:
`manifest.imagepackage`, a BaseSystemUpdateManifest listing each image (type, GUIDs, size,
SHA-256, security version) signed with DIR's image-signing key and dated DATE (default now: its
version; a device refuses a manifest older than the newest it installed, a replay), and each
image as `<image GUID>.imagepackage`. FEED may also name the channel folder itself
(`-o feeds/Retail`).

Everything is checked before anything is written, as the device would check it:
- each image is one the device installs (TrustedKeystore, UpdateCertStore), at most one per
  component;
- a keystore authenticates against DIR's root (the hash a device fuses); every other image
  against the keys of the keystore it will boot with: the set's keystore if it has one, else the
  keystore the device runs (`--keystore`; without it, the one the shipped keystore recipes
  build from DIR: its image-signing key may sign stores and update manifests);
- each image's content passes what the device admits before it writes it
  (`agent.admission.admit_content`: security versions 0..64, a store of one certificate per
  file, a keystore that trusts a manifest signer);
- the manifest's signer may sign manifests under the keystore the device runs.
The channel folder is written whole beside FEED and renamed into place: a channel folder that
is not empty, or a FEED holding anything but channel folders, is refused unless --force
(which replaces the channel folder and nothing else).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware_model.agent.admission import admit_content
from firmware_model.agent.feed import CHANNELS, MANIFEST_NAME, channel_location, image_file_name
from firmware_model.errors import FwModelError, WrongImageTypeError
from firmware_model.image.build import build_package
from firmware_model.image.keystore import Keyring, TrustedKey, root_key_hash
from firmware_model.image.manifest import ManifestEntry, build_manifest
from firmware_model.image.package import ImagePackage, parse_package
from firmware_model.image.sections import ImageType
from firmware_model.trust.chain import open_keystore, verify_image
from firmware_model.trust.components import Component
from policy.errors import UsageError
from policy.files import read_regular
from tools.pki import IMAGE_SIGNING, ROOT, load_certificate, load_public_key, load_signer

#: The manifest's component GUID: that of the shipped manifests (images/recipes/manifest-*.toml).
MANIFEST_COMPONENT = uuid.UUID("f8c320c7-db5e-4805-b1e9-1535cce8f4fc")
#: Manifest image GUIDs are derived from the manifest's bytes in this namespace.
_MANIFEST_IDS = uuid.UUID("6b0bd2a3-1f9e-4d52-9b0a-7a0c3c1f5e11")
#: What the shipped keystore recipes let DIR's image-signing key sign.
DEFAULT_SIGNABLE = (ImageType.UpdateCertStore, ImageType.BaseSystemUpdateManifest)


@dataclass(frozen=True)
class Published:
    """What `publish` wrote: the channel folder, the manifest's date and image GUID, and each
    image (its file in the folder and the package)."""

    folder: Path
    date: int
    manifest_id: uuid.UUID
    images: list[tuple[Path, ImagePackage]]


def _named(path: Path, error: FwModelError) -> FwModelError:
    """`error`, of the same class (so the same exit code), its message prefixed by `path`."""
    return type(error)(f"{path}: {error}")


def running_keyring(keys: Path, keystore: Path | None, fused: bytes) -> Keyring:
    """The keys of the keystore the device runs: `keystore` authenticated against `fused`, or
    DIR's image-signing key allowed what the shipped keystore recipes allow it."""
    if keystore is not None:
        try:
            return open_keystore(read_regular(keystore), fused)[1].keyring
        except FwModelError as error:
            raise _named(keystore, error) from None
    certificate = load_certificate(keys / f"{IMAGE_SIGNING}.pem")
    return Keyring([TrustedKey.from_certificate(certificate, DEFAULT_SIGNABLE)],
                   source=f"the keystore of {keys} (see --keystore)")


def _read(path: Path) -> tuple[bytes, ImagePackage, Component]:
    data = read_regular(path)
    try:
        image = parse_package(data)
    except FwModelError as error:
        raise _named(path, error) from None
    component = Component.for_image_type(image.image_type)
    if component is None:
        raise WrongImageTypeError(f"{path}: a {image.image_type_name} image; a device installs "
                                  "TrustedKeystore and UpdateCertStore images from a feed")
    return data, image, component


def _authenticated(paths: Sequence[Path], fused: bytes, running: Keyring
                   ) -> list[tuple[Path, ImagePackage]]:
    """Each image read and authenticated as the device would (module doc)."""
    read = [(path, *_read(path)) for path in paths]
    seen: dict[Component, Path] = {}
    for path, _data, _image, component in read:
        if component in seen:
            raise UsageError(f"{seen[component]} and {path} are both {component.value} images: "
                             "an update holds one image per component")
        seen[component] = path
    ids = {image.image_id: path for path, _data, image, _component in read}
    if len(ids) < len(read):
        raise UsageError("two images with one image GUID: a feed serves each under its GUID")
    keyring = running
    result = []
    for path, data, _image, component in sorted(read, key=lambda r: r[3] != Component.KEYSTORE):
        try:
            if component is Component.KEYSTORE:
                image, keystore = open_keystore(data, fused)
                keyring = keystore.keyring
            else:
                image = verify_image(data, keyring, ImageType.UpdateCertStore)
            admit_content(image)
        except FwModelError as error:
            raise _named(path, error) from None
        result.append((path, image))
    return result


def _manifest(images: Sequence[ImagePackage], keys: Path, channel: str, date: int,
              running: Keyring) -> tuple[bytes, uuid.UUID]:
    payload = build_manifest([ManifestEntry.for_image(image) for image in images], date)
    image_id = uuid.uuid5(_MANIFEST_IDS, hashlib.sha256(payload).hexdigest())
    stamp = dt.datetime.fromtimestamp(date, dt.UTC).strftime("%Y%m%dT%H%M%S")
    manifest = build_package(
        payload, image_type=ImageType.BaseSystemUpdateManifest, component_id=MANIFEST_COMPONENT,
        image_id=image_id, signer=load_signer(keys / f"{IMAGE_SIGNING}.key",
                                              keys / f"{IMAGE_SIGNING}.pem"),
        name=f"feed-{channel}-{stamp}", build_time=date)
    try:
        verify_image(manifest, running, ImageType.BaseSystemUpdateManifest)
    except FwModelError as error:
        raise type(error)(f"the manifest, signed with {keys / IMAGE_SIGNING}.key: {error}"
                          ) from None
    return manifest, image_id


def channel_folder(out: Path, channel: str) -> Path:
    """The channel folder `-o out` names: `out` itself when its name is the channel's, else
    `out/channel` (FeedLocationError, bad usage, for an unknown channel or another channel's
    folder)."""
    return Path(channel_location(os.fspath(out), channel))


def _check_output(out: Path, folder: Path, force: bool) -> None:
    """Refuse (UsageError) to write where other content is, unless `force` (module doc)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if force:
        return
    if folder.is_dir() and any(folder.iterdir()):
        raise UsageError(f"{folder} exists and is not empty: it holds a feed already "
                         "(--force replaces it)")
    if folder != out and out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in CHANNELS)
        if other:
            raise UsageError(f"{out} holds {other[0]}, which is not a channel folder: not a "
                             "feed folder (--force writes the channel folder beside it)")


def _write_folder(folder: Path, files: dict[str, bytes]) -> None:
    """Make `folder` hold exactly `files`: written whole beside it, then renamed into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
    shutil.rmtree(temp, ignore_errors=True)
    try:
        temp.mkdir()
        for name, data in files.items():
            (temp / name).write_bytes(data)
        if folder.exists():
            folder.rename(old)
        temp.rename(folder)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def publish(images: Sequence[Path], keys: Path, channel: str, out: Path, *, date: int,
            keystore: Path | None = None, force: bool = False) -> Published:
    """Check `images` and write the channel folder (module doc); nothing is written when a
    check fails. `date` is the manifest's build date (seconds since 1970)."""
    folder = channel_folder(out, channel)
    _check_output(out, folder, force)
    if not images:
        raise UsageError("no image to publish")
    fused = root_key_hash(load_public_key(keys / f"{ROOT}.pub.pem"))
    running = running_keyring(keys, keystore, fused)
    checked = _authenticated(images, fused, running)
    manifest, manifest_id = _manifest([image for _, image in checked], keys, channel, date,
                                      running)
    files = {MANIFEST_NAME: manifest}
    files |= {image_file_name(image.image_id): image.data for _, image in checked}
    _write_folder(folder, files)
    return Published(folder, date, manifest_id,
                     [(folder / image_file_name(image.image_id), image) for _, image in checked])
