"""Metadata sections of an Azure Sphere image package, declared once with construct.

Each declaration parses and builds; it is the specification. Layouts follow Microsoft's
`azuresphere-imagemetadata` (the oracle): little-endian, GUIDs in .NET byte order.
`SECTION_DECODERS` are derived from them (`derive`): they read the same fields with struct into
the dicts the declarations parse, several times faster; the tests hold the two to each other
on arbitrary bytes.
"""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Callable
from typing import Any

from construct import (
    Array,
    Bytes,
    Construct,
    ExprAdapter,
    Int16ul,
    Int32ul,
    Int64ul,
    PaddedString,
    Rebuild,
    Struct,
    len_,
    this,
)

from firmware_model.image import derive


class ImageType(enum.IntEnum):
    """Image types, as numbered by Azure Sphere (0..28)."""

    Invalid = 0
    OneBL = 1
    PlutonRuntime = 2
    WifiFirmware = 3
    SecurityMonitor = 4
    NormalWorldLoader = 5
    NormalWorldDTB = 6
    NormalWorldKernel = 7
    RootFs = 8
    Services = 9
    Applications = 10
    FirmwareConfig = 13
    BootManifest = 16
    NormalWorldFileSystem = 17
    TrustedKeystore = 19
    Policy = 20
    CustomerBoardConfig = 21
    UpdateCertStore = 22
    BaseSystemUpdateManifest = 23
    FirmwareUpdateManifest = 24
    CustomerUpdateManifest = 25
    RecoveryManifest = 26
    ManifestSet = 27
    Other = 28


def image_type_name(value: int) -> str:
    """The enum name of an image type id, or `Unknown(N)`."""
    try:
        return ImageType(value).name
    except ValueError:
        return f"Unknown({value})"


class SectionId(enum.IntEnum):
    """Section ids: two ASCII letters read as a little-endian u16 ('ID' on disk is 0x4449)."""

    Identity = 0x4449  # ID
    Signature = 0x4753  # SG
    Debug = 0x4244  # DB
    Revocation = 0x5652  # RV
    TemporaryImage = 0x5054  # TP
    ABIDepends = 0x444E  # ND
    ABIProvides = 0x504E  # NP
    Compression = 0x4D43  # CM
    RequiredFlashOffset = 0x4F52  # RO
    ImagePolicy = 0x5049  # IP


class SigningType(enum.IntEnum):
    """The signature algorithm an SG section names."""

    Invalid = 0
    ECDsa256 = 1
    ECDsa384 = 2


SIGNATURE_SIZE: dict[int, int] = {SigningType.ECDsa256: 64, SigningType.ECDsa384: 96}


def section_tag(section_id: int) -> str:
    """The two letters of a section id as they appear on disk ('ID', 'SG'), or hex."""
    raw = section_id.to_bytes(2, "little")
    text = raw.decode("latin-1")
    return text if text.isascii() and text.isalpha() else f"{section_id:#06x}"


@functools.lru_cache(maxsize=256)
def guid(bytes_le: bytes) -> uuid.UUID:
    """A GUID from its .NET byte order (memoized: a device meets the same few again and
    again)."""
    return uuid.UUID(bytes_le=bytes_le)


Guid: Construct = ExprAdapter(
    Bytes(16),
    lambda raw, ctx: guid(bytes(raw)),
    lambda value, ctx: value.bytes_le,
)

AbiIdentity = Struct("version" / Int32ul, "type" / Int32ul)

AbiList = Struct(
    "count" / Rebuild(Int32ul, len_(this.versions)),
    "versions" / Array(this.count, AbiIdentity),
)

SECTION_FORMATS: dict[int, Construct] = {
    SectionId.Identity: Struct(
        "image_type" / Int16ul,
        "reserved" / Int16ul,
        "component_id" / Guid,
        "image_id" / Guid,
    ),
    SectionId.Signature: Struct("thumbprint" / Bytes(20), "signing_type" / Int32ul),
    SectionId.Debug: Struct("build_time" / Int64ul, "name" / PaddedString(32, "utf8")),
    SectionId.Revocation: Struct("security_version" / Int32ul),
    SectionId.TemporaryImage: Struct("flags" / Int32ul),
    SectionId.ABIDepends: AbiList,
    SectionId.ABIProvides: AbiList,
    SectionId.Compression: Struct("uncompressed_size" / Int32ul, "compression_type" / Int32ul),
    SectionId.RequiredFlashOffset: Struct("offset" / Int32ul),
    SectionId.ImagePolicy: Struct("flags" / Int32ul),
}


_ABI_LISTS = (SectionId.ABIDepends, SectionId.ABIProvides)
_ABI_COUNT = derive.fields(AbiList, "count").struct
_ABI_PAIR = derive.run(AbiIdentity, "versions")
_ABI_KEYS = derive.names(AbiIdentity)

#: The size of each fixed-size section's data, from its declaration.
SECTION_SIZES: dict[int, int] = {
    sid: int(fmt.sizeof()) for sid, fmt in SECTION_FORMATS.items() if sid not in _ABI_LISTS
}


def expected_length(section_id: int, data: bytes | memoryview) -> int | None:
    """The length a known section's data must have (ABI lists: from their count), else None."""
    if section_id in _ABI_LISTS:
        if len(data) < _ABI_COUNT.size:
            return _ABI_COUNT.size
        return _ABI_COUNT.size + _ABI_PAIR.size * int(_ABI_COUNT.unpack_from(data)[0])
    return SECTION_SIZES.get(section_id)


Decoder = Callable[[bytes | memoryview], dict[str, Any]]


def _abi_list(data: bytes | memoryview) -> dict[str, Any]:
    """`AbiList`: its count, then that many pairs (the declaration's variable part)."""
    (count,) = _ABI_COUNT.unpack_from(data)
    start, size = _ABI_COUNT.size, _ABI_PAIR.size
    versions = [dict(zip(_ABI_KEYS, _ABI_PAIR.unpack(data, start + size * i, "section",
                                                      check=False), strict=True))
                for i in range(count)]
    return {"count": count, "versions": versions}


#: Decoders of each known section's data (exactly `expected_length` bytes), derived from the
#: declarations: the dict `plain(SECTION_FORMATS[id].parse(data))` gives. ValueError where that
#: parse fails (a DB name that is not UTF-8), with the same text.
SECTION_DECODERS: dict[int, Decoder] = {
    sid: _abi_list if sid in _ABI_LISTS else derive.dict_reader(fmt)
    for sid, fmt in SECTION_FORMATS.items()
}
