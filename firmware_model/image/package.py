"""The Azure Sphere image package envelope: `payload || metadata || signature`.

metadata = header (u32 magic 0x4D345834, u32 section_count), sections (u16 id, u16 length,
data), then u32 metadata_length (header + sections + this field). The signature (64 bytes raw
r||s for ECDSA P-256, 96 for P-384) covers every byte before it.

Two views of the same bytes:
- `locate` walks only the trailer and the section table (strictly, every error naming its
  offset): all that is needed to authenticate. Nothing else untrusted is parsed before the
  signature holds.
- `parse_package` decodes every section into the fields its construct declaration in
  `sections` parses (with the decoders derived from those declarations).
Both read with struct readers derived from the declarations below; `firmware_model.image.build`
writes the envelope from the same declarations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from construct import (
    Const,
    GreedyBytes,
    Int16ul,
    Int32ul,
    Prefixed,
    Rebuild,
    Struct,
    Tell,
    len_,
    this,
)

from firmware_model.errors import ImageFormatError
from firmware_model.image import derive
from firmware_model.image.sections import (
    SECTION_DECODERS,
    SECTION_FORMATS,
    SIGNATURE_SIZE,
    SectionId,
    SigningType,
    expected_length,
    image_type_name,
    section_tag,
)

MAGIC = 0x4D345834
HEADER_SIZE = 8
TRAILER_SIZE = 4
SECTION_HEADER_SIZE = 4

RawSection = Struct("id" / Int16ul, "data" / Prefixed(Int16ul, GreedyBytes))
Metadata = Struct(
    "magic" / Const(MAGIC, Int32ul),
    "section_count" / Rebuild(Int32ul, len_(this.sections)),
    "sections" / RawSection[this.section_count],
    "_end" / Tell,
    "metadata_length" / Rebuild(Int32ul, this._end + TRAILER_SIZE),
)


class PackageLayout(NamedTuple):
    """Where the parts of an image package sit; section data spans by section id.

    (A NamedTuple rather than a frozen dataclass: it is made on every authentication, and
    costs a third as much to create.)
    """

    metadata_start: int
    metadata_end: int
    signature_size: int
    spans: dict[int, tuple[int, int]]
    order: tuple[int, ...]

    def section_bytes(self, data: bytes | memoryview, section_id: int) -> bytes:
        start, length = self.spans[section_id]
        return bytes(data[start : start + length])


# The readers, derived from the declarations above (values only: the envelope's own checks
# below word its errors).
_HEADER = derive.fields(Metadata, "magic", "section_count").struct
_SECTION_HEADER = derive.Reader(RawSection, "metadata").runs[0].struct.unpack_from  # id, length
_TRAILER = derive.fields(Metadata, "metadata_length").struct.unpack_from
_SIGNING_TYPE = derive.fields(SECTION_FORMATS[SectionId.Signature], "signing_type").struct
_SIGNING_TYPE_AT = derive.fields(SECTION_FORMATS[SectionId.Signature], "thumbprint").size
_IDENTITY, _SIGNATURE = int(SectionId.Identity), int(SectionId.Signature)

def _walk(data: bytes | memoryview, start: int, end: int, sig_size: int) -> PackageLayout:
    """Check the section table between `start` and the trailer at `end - 4`."""
    sections_end = end - TRAILER_SIZE
    _magic, count = _HEADER.unpack_from(data, start)
    if count > (sections_end - start - HEADER_SIZE) // SECTION_HEADER_SIZE:
        raise ImageFormatError(f"section count {count} cannot fit in the metadata", start + 4)
    pos = start + HEADER_SIZE
    spans: dict[int, tuple[int, int]] = {}
    for _ in range(count):
        if pos + SECTION_HEADER_SIZE > sections_end:
            raise ImageFormatError("section header runs past the metadata", pos)
        sid, length = _SECTION_HEADER(data, pos)
        pos += SECTION_HEADER_SIZE
        if pos + length > sections_end:
            raise ImageFormatError(
                f"section '{section_tag(sid)}' length {length} runs past the metadata",
                pos - 2,
            )
        if sid in spans:
            raise ImageFormatError(f"duplicate section '{section_tag(sid)}'",
                                   pos - SECTION_HEADER_SIZE)
        spans[sid] = (pos, length)
        pos += length
    if pos != sections_end:
        raise ImageFormatError(
            f"metadata length does not add up: sections end at {pos:#x}, "
            f"the length field sits at {sections_end:#x}",
            pos,
        )
    # dicts keep insertion order: the keys are the sections in the order they appear
    return PackageLayout(start, end, sig_size, spans, tuple(spans))


def _candidate(data: bytes | memoryview, sig_size: int) -> PackageLayout:
    """The layout if the signature is `sig_size` bytes long; ImageFormatError otherwise."""
    size = len(data)
    if size < sig_size + TRAILER_SIZE + HEADER_SIZE:
        raise ImageFormatError(f"{size} bytes is too short for an image package", 0)
    end = size - sig_size
    (length,) = _TRAILER(data, end - TRAILER_SIZE)
    if length < HEADER_SIZE + TRAILER_SIZE or length > end:
        raise ImageFormatError(f"metadata length {length} is impossible", end - TRAILER_SIZE)
    start = end - length
    if _HEADER.unpack_from(data, start)[0] != MAGIC:
        raise ImageFormatError("no metadata magic 0x4D345834 where the length points", start)
    layout = _walk(data, start, end, sig_size)
    _check_signature_section(data, layout)
    return layout


def _check_signature_section(data: bytes | memoryview, layout: PackageLayout) -> None:
    spans = layout.spans
    identity, signature = spans.get(_IDENTITY), spans.get(_SIGNATURE)
    if identity is None or signature is None:
        missing = SectionId.Identity if identity is None else SectionId.Signature
        raise ImageFormatError(f"no '{section_tag(missing)}' section", layout.metadata_start)
    start, length = signature
    if length != 24:
        raise ImageFormatError(f"'SG' section is {length} bytes, not 24", start - 2)
    (signing_type,) = _SIGNING_TYPE.unpack_from(data, start + _SIGNING_TYPE_AT)
    if SIGNATURE_SIZE.get(signing_type) != layout.signature_size:
        raise ImageFormatError(
            f"signing type {signing_type} does not match a {layout.signature_size}-byte "
            "signature",
            start + _SIGNING_TYPE_AT,
        )
    id_start, id_length = identity
    if id_length != 36:
        raise ImageFormatError(f"'ID' section is {id_length} bytes, not 36", id_start - 2)


def locate(data: bytes | memoryview) -> PackageLayout:
    """Find metadata and signature from the trailer and check the section table.

    Tries a P-256 (64-byte) signature, then P-384 (96 bytes), as the device does. Raises
    ImageFormatError naming the offset of the first problem. A pure function of the bytes:
    for `bytes` (not a view) the answer is remembered, since the agent locates an image it
    accepts and the boot after the reset locates the same bytes read from flash.
    """
    if isinstance(data, bytes):
        found = _LOCATED.get(data)
        if found is None:
            found = _LOCATED[data] = _locate(data)
            while len(_LOCATED) > _LOCATED_KEPT:
                del _LOCATED[next(iter(_LOCATED))]
        return found
    return _locate(data)


_LOCATED: dict[bytes, PackageLayout] = {}  # by the bytes located, oldest first
_LOCATED_KEPT = 8


def _locate(data: bytes | memoryview) -> PackageLayout:
    try:
        return _candidate(data, 64)
    except ImageFormatError as error:
        first_error = error
    try:
        return _candidate(data, 96)
    except ImageFormatError:
        pass
    raise first_error


@dataclass(frozen=True)
class Section:
    """One metadata section: its id, raw data, decoded fields (None if unknown), offset."""

    id: int
    raw: bytes
    fields: dict[str, Any] | None
    offset: int

    @property
    def tag(self) -> str:
        return section_tag(self.id)

    @property
    def known(self) -> bool:
        return self.id in SECTION_FORMATS


def decode_section(section_id: int, raw: bytes, offset: int) -> Section:
    """Decode a section's data into the fields its declaration parses; unknown ids are kept
    raw. ImageFormatError at `offset` (the section header) for a wrong length or a field
    that does not decode."""
    decoder = SECTION_DECODERS.get(section_id)
    if decoder is None:
        return Section(section_id, raw, None, offset)
    want = expected_length(section_id, raw)
    if want != len(raw):
        raise ImageFormatError(
            f"'{section_tag(section_id)}' section is {len(raw)} bytes, expected {want}", offset
        )
    try:
        fields = decoder(raw)
    except ValueError as error:
        raise ImageFormatError(
            f"'{section_tag(section_id)}' section does not decode ({error})", offset
        ) from None
    return Section(section_id, raw, fields, offset)


@dataclass(frozen=True)
class ImagePackage:
    """A fully parsed image package. Parsing alone proves nothing about who signed it."""

    data: bytes
    layout: PackageLayout
    sections: tuple[Section, ...] = field(repr=False)

    def section(self, section_id: int) -> Section | None:
        return self._by_id.get(section_id)

    @cached_property
    def _by_id(self) -> dict[int, Section]:
        """The sections by id (ids are unique: `locate` refuses duplicates)."""
        return {s.id: s for s in self.sections}

    def _field(self, section_id: int, name: str) -> Any:
        section = self._by_id.get(section_id)
        return None if section is None or section.fields is None else section.fields[name]

    def _guid(self, name: str) -> uuid.UUID:
        value = self._field(SectionId.Identity, name)
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

    @property
    def payload(self) -> bytes:
        return self.data[: self.layout.metadata_start]

    @property
    def signature(self) -> bytes:
        return self.data[self.layout.metadata_end :]

    @property
    def image_type(self) -> int:
        return int(self._field(SectionId.Identity, "image_type"))

    @property
    def image_type_name(self) -> str:
        return image_type_name(self.image_type)

    @property
    def component_id(self) -> uuid.UUID:
        return self._guid("component_id")

    @property
    def image_id(self) -> uuid.UUID:
        return self._guid("image_id")

    @property
    def thumbprint(self) -> bytes:
        return bytes(self._field(SectionId.Signature, "thumbprint"))

    @property
    def signing_type(self) -> SigningType:
        return SigningType(self._field(SectionId.Signature, "signing_type"))

    @property
    def name(self) -> str:
        return str(self._field(SectionId.Debug, "name") or "")

    @property
    def build_time(self) -> int:
        return int(self._field(SectionId.Debug, "build_time") or 0)

    @property
    def security_version(self) -> int:
        """The RV section's security version (0 when the image has none)."""
        return int(self._field(SectionId.Revocation, "security_version") or 0)

    @property
    def unknown_sections(self) -> list[Section]:
        return [s for s in self.sections if not s.known]


def parse_package(data: bytes, layout: PackageLayout | None = None) -> ImagePackage:
    """Parse an image package strictly; ImageFormatError names the offset of any problem.
    `layout`, if given, must be `locate(data)`.

    A pure function of the bytes, memoized: the update agent parses the images it accepts and
    the boot after the reset parses the same bytes again (authenticating them anew: only the
    parsing is remembered). Failures are not remembered.
    """
    data = bytes(data)
    parsed = _PARSED.get(data)
    if parsed is None:
        layout = layout or locate(data)
        sections = tuple(
            decode_section(sid, layout.section_bytes(data, sid), layout.spans[sid][0] - 4)
            for sid in layout.order
        )
        parsed = _PARSED[data] = ImagePackage(data, layout, sections)
        while len(_PARSED) > _PARSED_KEPT:
            del _PARSED[next(iter(_PARSED))]
    return parsed


_PARSED: dict[bytes, ImagePackage] = {}  # by the bytes parsed, oldest first
_PARSED_KEPT = 8
