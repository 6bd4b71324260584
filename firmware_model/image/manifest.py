"""BaseSystemUpdateManifest payload: the images an update consists of.

Modelled on Azure Sphere's image manifest v3 (16-byte header, then fixed-size entries: image
GUID, component GUID, u16 image type, u16 partition type, u32 file size, u32 uncompressed size,
two ABI provides and two ABI depends identities). Our entries add one field after those 76
bytes, the image's u32 security version, and say so in the header's entry size (80), so
readers of v3 that honour the entry size (Microsoft's does) read the rest unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from construct import Array, Const, Int16ul, Int32ul, Int64ul, Rebuild, Struct, len_, this

from firmware_model.image import derive
from firmware_model.image.package import ImagePackage
from firmware_model.image.sections import AbiIdentity, Guid, image_type_name
from firmware_model.image.strict import check_trailing

VERSION = 3
HEADER_SIZE = 16
ENTRY_SIZE = 80
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
_IMAGE_ID, _COMPONENT_ID, _IMAGE_TYPE, _SIZE, _SECURITY = (
    _ENTRY.index(f"entries -> {name}") for name in
    ("image_id", "component_id", "image_type", "image_file_size", "security_version"))


@dataclass(frozen=True)
class ManifestEntry:
    """One image of an update, as the manifest pins it down."""

    image_id: uuid.UUID
    component_id: uuid.UUID
    image_type: int
    size: int
    security_version: int

    @classmethod
    def for_image(cls, image: ImagePackage) -> ManifestEntry:
        """The entry that pins `image` exactly (GUIDs, type, size, security version)."""
        return cls(image.image_id, image.component_id, image.image_type, len(image.data),
                   image.security_version)

    def to_json(self) -> dict[str, object]:
        return {
            "image_id": str(self.image_id),
            "component_id": str(self.component_id),
            "image_type": image_type_name(self.image_type),
            "image_type_id": self.image_type,
            "size": self.size,
            "security_version": self.security_version,
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
             "security_version": e.security_version}
            for e in entries
        ],
    }))


def read_manifest(payload: bytes | memoryview) -> list[ManifestEntry]:
    """The entries of a manifest payload; ImageFormatError if it is not one, exactly (each
    error names the field at fault and where it starts)."""
    count = _HEADER.unpack(payload, 0, "manifest")[1]
    entries = []
    at = _HEADER.size
    for _ in range(count):
        values = _ENTRY.unpack(payload, at, "manifest")
        entries.append(ManifestEntry(values[_IMAGE_ID], values[_COMPONENT_ID],
                                     values[_IMAGE_TYPE], values[_SIZE], values[_SECURITY]))
        at += _ENTRY.size
    check_trailing(payload, at, "manifest")
    return entries
