"""Writing image packages: sections built from their declarations, the metadata block, the
signature over everything before it (`seal`), and re-signing an image under another key."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from firmware_model.image.package import Metadata, parse_package
from firmware_model.image.sections import SECTION_FORMATS, SectionId
from firmware_model.image.signing import Signer


def _pad4(payload: bytes) -> bytes:
    return payload + b"\0" * (-len(payload) % 4)


def encode_section(section_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    """A section ready for `Metadata.build`, its data built from its declaration."""
    return {"id": int(section_id), "data": SECTION_FORMATS[section_id].build(fields)}


def build_metadata(sections: Sequence[dict[str, Any]]) -> bytes:
    """The metadata block for `sections` ({id, data} each), length and count rebuilt."""
    return bytes(Metadata.build({"sections": list(sections)}))


def identity_sections(
    *,
    image_type: int,
    component_id: uuid.UUID,
    image_id: uuid.UUID,
    name: str = "",
    build_time: int = 0,
    security_version: int | None = None,
) -> list[dict[str, Any]]:
    """ID, DB and (when a security version is given) RV sections."""
    sections = [
        encode_section(
            SectionId.Identity,
            {"image_type": image_type, "reserved": 0, "component_id": component_id,
             "image_id": image_id},
        ),
        encode_section(SectionId.Debug, {"build_time": build_time, "name": name}),
    ]
    if security_version is not None:
        sections.append(
            encode_section(SectionId.Revocation, {"security_version": security_version})
        )
    return sections


def seal(payload: bytes, sections: Iterable[dict[str, Any]], signer: Signer) -> bytes:
    """Append metadata (`sections` plus a fresh SG section, last) and sign everything."""
    signature_section = encode_section(
        SectionId.Signature,
        {"thumbprint": signer.thumbprint, "signing_type": int(signer.signing_type)},
    )
    body = _pad4(payload) + build_metadata([*sections, signature_section])
    return body + signer.sign(body)


def build_package(
    payload: bytes,
    *,
    image_type: int,
    component_id: uuid.UUID,
    image_id: uuid.UUID,
    signer: Signer,
    name: str = "",
    build_time: int = 0,
    security_version: int | None = None,
    extra_sections: Sequence[dict[str, Any]] = (),
) -> bytes:
    """A signed image package around `payload` (padded to 4 bytes as Azure Sphere does)."""
    sections = identity_sections(
        image_type=image_type,
        component_id=component_id,
        image_id=image_id,
        name=name,
        build_time=build_time,
        security_version=security_version,
    )
    return seal(payload, [*sections, *extra_sections], signer)


def resign(data: bytes, signer: Signer) -> bytes:
    """The same image with its SG section and signature replaced; other sections kept."""
    package = parse_package(data)
    kept = [{"id": s.id, "data": s.raw} for s in package.sections if s.id != SectionId.Signature]
    return seal(package.payload, kept, signer)
