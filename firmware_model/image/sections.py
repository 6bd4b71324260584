"""Metadata sections of an Azure Sphere image package, declared once with construct.

Each declaration parses and builds; it is the specification. Layouts follow Microsoft's
`azuresphere-imagemetadata` (the oracle): little-endian, GUIDs in .NET byte order.
`SECTION_DECODERS` read the same fields with struct, into the dicts the declarations parse
(`plain(SECTION_FORMATS[id].parse(data))`), several times faster; the tests check the two
against each other on arbitrary bytes.
"""

from __future__ import annotations

import enum
import struct
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


Guid: Construct = ExprAdapter(
    Bytes(16),
    lambda raw, ctx: uuid.UUID(bytes_le=bytes(raw)),
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
_U32 = struct.Struct("<I")
_TWO_U32 = struct.Struct("<II")
_IDENTITY = struct.Struct("<HH16s16s")
_SIGNATURE = struct.Struct("<20sI")
_DEBUG = struct.Struct("<Q32s")

#: The size of each fixed-size section's data, from its declaration.
SECTION_SIZES: dict[int, int] = {
    sid: int(fmt.sizeof()) for sid, fmt in SECTION_FORMATS.items() if sid not in _ABI_LISTS
}


def expected_length(section_id: int, data: bytes | memoryview) -> int | None:
    """The length a known section's data must have (ABI lists: from their count), else None."""
    if section_id in _ABI_LISTS:
        if len(data) < 4:
            return 4
        return 4 + 8 * int(_U32.unpack_from(data)[0])
    return SECTION_SIZES.get(section_id)


Decoder = Callable[[bytes | memoryview], dict[str, Any]]


def _identity(data: bytes | memoryview) -> dict[str, Any]:
    image_type, reserved, component_id, image_id = _IDENTITY.unpack_from(data)
    return {"image_type": image_type, "reserved": reserved,
            "component_id": uuid.UUID(bytes_le=component_id),
            "image_id": uuid.UUID(bytes_le=image_id)}


def _signature(data: bytes | memoryview) -> dict[str, Any]:
    thumb, signing_type = _SIGNATURE.unpack_from(data)
    return {"thumbprint": thumb, "signing_type": signing_type}


def _debug(data: bytes | memoryview) -> dict[str, Any]:
    """PaddedString(32, "utf8"): trailing NULs stripped, the rest must be UTF-8."""
    build_time, padded = _DEBUG.unpack_from(data)
    name = padded.rstrip(b"\0")
    try:
        text = name.decode("utf8")
    except UnicodeDecodeError:
        raise ValueError(f"cannot use encoding 'utf8' to decode {name!r}") from None
    return {"build_time": build_time, "name": text}


def _abi_list(data: bytes | memoryview) -> dict[str, Any]:
    count = _U32.unpack_from(data)[0]
    pairs = _TWO_U32.iter_unpack(memoryview(data)[4 : 4 + 8 * count])
    return {"count": count, "versions": [{"version": v, "type": t} for v, t in pairs]}


def _one_u32(name: str) -> Decoder:
    def decode(data: bytes | memoryview) -> dict[str, Any]:
        return {name: _U32.unpack_from(data)[0]}
    return decode


def _two_u32(first: str, second: str) -> Decoder:
    def decode(data: bytes | memoryview) -> dict[str, Any]:
        a, b = _TWO_U32.unpack_from(data)
        return {first: a, second: b}
    return decode


#: Struct decoders of each known section's data (exactly `expected_length` bytes): the dict
#: `plain(SECTION_FORMATS[id].parse(data))` gives. ValueError where that parse fails (a DB
#: name that is not UTF-8), with the same text.
SECTION_DECODERS: dict[int, Decoder] = {
    SectionId.Identity: _identity,
    SectionId.Signature: _signature,
    SectionId.Debug: _debug,
    SectionId.Revocation: _one_u32("security_version"),
    SectionId.TemporaryImage: _one_u32("flags"),
    SectionId.ABIDepends: _abi_list,
    SectionId.ABIProvides: _abi_list,
    SectionId.Compression: _two_u32("uncompressed_size", "compression_type"),
    SectionId.RequiredFlashOffset: _one_u32("offset"),
    SectionId.ImagePolicy: _one_u32("flags"),
}


def plain(value: Any) -> Any:
    """A construct Container turned into plain dicts/lists, hidden `_` keys dropped."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
