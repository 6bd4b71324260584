"""BaseSystemUpdateManifest payload: the images an update consists of.

Modelled on Azure Sphere's image manifest v3 (16-byte header, then fixed-size entries: image
GUID, component GUID, u16 image type, u16 partition type, u32 file size, u32 uncompressed size,
two ABI provides and two ABI depends identities). Our entries add two fields after those 76
bytes, the image's u32 security version and the SHA-256 of its whole package (so the manifest
binds each image by its bytes, not by its GUID alone), and say so in the header's entry size
(112): readers of v3 that honour the entry size (Microsoft's does) read the rest unchanged.
The header's u64 build date (seconds since 1970) is the manifest's version: a device remembers
the newest it installed and refuses an older one (a replay).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from construct import Array, Bytes, Const, Int16ul, Int32ul, Int64ul, Rebuild, Struct, len_, this

from firmware_model.image import derive
from firmware_model.image.package import ImagePackage
from firmware_model.image.sections import AbiIdentity, Guid, image_type_name
from firmware_model.image.strict import check_trailing

VERSION = 3
HEADER_SIZE = 16
ENTRY_SIZE = 112
DIGEST_SIZE = 32
PARTITION_FIRMWARE = 1

Entry = Struct(
    "image_id" / Guid,
    "component_id" / Guid,
    "image_type" / Int16ul,
    "partition_type" / Int16ul,
    "image_file_size" / Int32ul,
    "uncompressed_image_size" / Int32ul,
    "provides" / Array(2, AbiIdentity),
    "depends" / Array(2, AbiIdentity),
    "security_version" / Int32ul,
    "sha256" / Bytes(DIGEST_SIZE),
)

Manifest = Struct(
    "version" / Const(VERSION, Int16ul),
    "image_count" / Rebuild(Int16ul, len_(this.entries)),
    "header_size" / Const(HEADER_SIZE, Int16ul),
    "entry_size" / Const(ENTRY_SIZE, Int16ul),
    "build_date" / Int64ul,
    "entries" / Array(this.image_count, Entry),
)


# The readers, derived from the declarations above.
_HEADER = derive.fields(Manifest, "version", "image_count", "header_size", "entry_size",
                        "build_date")
_ENTRY = derive.run(Entry, "entries")
_IMAGE_ID, _COMPONENT_ID, _IMAGE_TYPE, _SIZE, _SECURITY, _SHA256 = (
    _ENTRY.index(f"entries -> {name}") for name in
    ("image_id", "component_id", "image_type", "image_file_size", "security_version", "sha256"))
_BUILD_DATE = _HEADER.index("build_date")


@dataclass(frozen=True)
class ManifestEntry:
    """One image of an update, as the manifest pins it down."""

    image_id: uuid.UUID
    component_id: uuid.UUID
    image_type: int
    size: int
    security_version: int
    sha256: bytes

    @classmethod
    def for_image(cls, image: ImagePackage) -> ManifestEntry:
        """The entry that pins `image` exactly (GUIDs, type, size, security version, bytes)."""
        return cls(image.image_id, image.component_id, image.image_type, len(image.data),
                   image.security_version, hashlib.sha256(image.data).digest())

    def to_json(self) -> dict[str, object]:
        return {
            "image_id": str(self.image_id),
            "component_id": str(self.component_id),
            "image_type": image_type_name(self.image_type),
            "image_type_id": self.image_type,
            "size": self.size,
            "security_version": self.security_version,
            "sha256": self.sha256.hex(),
        }


_NO_ABI = [{"version": 0, "type": 0}] * 2


def build_manifest(entries: Sequence[ManifestEntry], build_date: int = 0) -> bytes:
    """The manifest payload listing `entries`."""
    return bytes(Manifest.build({
        "build_date": build_date,
        "entries": [
            {"image_id": e.image_id, "component_id": e.component_id, "image_type": e.image_type,
             "partition_type": PARTITION_FIRMWARE, "image_file_size": e.size,
             "uncompressed_image_size": e.size, "provides": _NO_ABI, "depends": _NO_ABI,
             "security_version": e.security_version, "sha256": e.sha256}
            for e in entries
        ],
    }))


def read_manifest(payload: bytes | memoryview) -> list[ManifestEntry]:
    """The entries of a manifest payload; ImageFormatError if it is not one, exactly (each
    error names the field at fault and where it starts). A pure function of the bytes,
    memoized (a device checks the same manifest again and again)."""
    return list(_read_manifest(bytes(payload)))


@functools.lru_cache(maxsize=8)
def _read_manifest(payload: bytes) -> tuple[ManifestEntry, ...]:
    count = _HEADER.unpack(payload, 0, "manifest")[1]
    entries = []
    at = _HEADER.size
    for _ in range(count):
        values = _ENTRY.unpack(payload, at, "manifest")
        entries.append(ManifestEntry(values[_IMAGE_ID], values[_COMPONENT_ID],
                                     values[_IMAGE_TYPE], values[_SIZE], values[_SECURITY],
                                     values[_SHA256]))
        at += _ENTRY.size
    check_trailing(payload, at, "manifest")
    return tuple(entries)


def manifest_date(payload: bytes | memoryview) -> int:
    """The build date (the manifest's version) of a manifest payload; ImageFormatError if its
    header does not parse."""
    return int(_HEADER.unpack(payload, 0, "manifest")[_BUILD_DATE])
