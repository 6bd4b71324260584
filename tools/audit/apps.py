"""Endpoints and bundled roots of an Applications image package: its payload is a filesystem
holding `app_manifest.json`, the ELF executable(s) under `bin/`, and whatever else the app
packs (certificates among them, see `bundle`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from firmware_model.errors import ImageFormatError
from firmware_model.image.cramfs import read_cramfs
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType, image_type_name
from tools.audit.bundle import Bundle, bundle_of
from tools.audit.endpoints import Findings, from_elf, from_manifest
from tools.audit.errors import BadInputError

MANIFEST = "app_manifest.json"
ELF_MAGIC = b"\x7fELF"


def app_files(data: bytes, what: str) -> dict[str, bytes]:
    """The files of an Applications image's payload; BadInputError for anything else.

    The signature is not checked: the audit reads what the app would do, not whether a
    device would install it.
    """
    try:
        package = parse_package(data)
    except ImageFormatError as error:
        raise BadInputError(what, f"not an image package ({error})") from None
    if package.image_type != ImageType.Applications:
        raise BadInputError(
            what, f"image type {image_type_name(package.image_type)}, not Applications"
        )
    try:
        return read_cramfs(package.payload)
    except ImageFormatError as error:
        raise BadInputError(what, f"payload is not a filesystem ({error})") from None


def _entry_point(manifest: bytes) -> str | None:
    try:
        value = json.loads(manifest.decode("utf-8-sig")).get("EntryPoint")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return value.lstrip("/") if isinstance(value, str) else None


def executables(files: Mapping[str, bytes]) -> list[str]:
    """The manifest's EntryPoint, then every other ELF file under `bin/`."""
    entry = _entry_point(files[MANIFEST]) if MANIFEST in files else None
    paths = [entry] if entry else []
    paths += sorted(
        path for path, content in files.items()
        if path.startswith("bin/") and content.startswith(ELF_MAGIC) and path != entry
    )
    return paths


def from_app_image(data: bytes, what: str) -> Findings:
    """Endpoints of the manifest and executables in an Applications image.

    Raises BadInputError when the image itself cannot be read; a manifest or executable
    inside that cannot be read becomes a problem and the rest are still searched.
    """
    return _endpoints(app_files(data, what), what)


def read_app_image(data: bytes, what: str) -> tuple[Findings, Bundle]:
    """The endpoints of an Applications image and the roots it bundles (any file of its
    filesystem); a certificate that does not parse is one more problem. BadInputError when
    the image itself cannot be read."""
    files = app_files(data, what)
    findings = _endpoints(files, what)
    bundle, problems = bundle_of(files, what)
    findings.problems.extend(problems)
    return findings, bundle


def _endpoints(files: Mapping[str, bytes], what: str) -> Findings:
    findings = Findings()
    parts: list[tuple[str, Callable[[bytes, str], Findings]]] = [(MANIFEST, from_manifest)]
    parts += [(path, from_elf) for path in executables(files)]
    if MANIFEST not in files:
        findings.problems.append(f"{what}: no {MANIFEST} in the image")
    for path, reader in parts:
        where = f"{what}:{path}"
        if path not in files:
            if path != MANIFEST:
                findings.problems.append(f"{where}: the manifest's EntryPoint is not in the image")
            continue
        try:
            findings.merge(reader(files[path], where))
        except BadInputError as error:
            findings.problems.append(str(error))
    return findings
