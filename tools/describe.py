"""Describe an image package: every section decoded, and its payload where we know it.

The JSON shape is the contract of `imagetool show --json`; the text follows the manner of
`azsphere image-package show`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from firmware_model.errors import ImageFormatError
from firmware_model.image.certstore import BAD_CERTIFICATE, read_store_payload, real_world_roots
from firmware_model.image.cramfs import read_cramfs
from firmware_model.image.keystore import read_keystore_payload
from firmware_model.image.manifest import read_manifest
from firmware_model.image.package import ImagePackage, Section
from firmware_model.image.sections import ImageType, SectionId, SigningType, image_type_name

_NAMES: dict[int, str] = {
    SectionId.Identity: "Identity",
    SectionId.Signature: "Signature",
    SectionId.Debug: "Debug",
    SectionId.Revocation: "Revocation",
    SectionId.TemporaryImage: "Temporary Image",
    SectionId.ABIDepends: "ABI Depends",
    SectionId.ABIProvides: "ABI Provides",
    SectionId.Compression: "Compression",
    SectionId.RequiredFlashOffset: "Required Offset",
    SectionId.ImagePolicy: "Image Policy",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, int | str | float | bool | type(None)) else str(value)


def section_json(section: Section) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": section.tag, "name": _NAMES.get(section.id, "Unknown"),
                             "offset": section.offset, "length": len(section.raw)}
    if section.fields is None:
        entry["raw"] = section.raw.hex()
    else:
        entry["fields"] = _jsonable(section.fields)
    return entry


def certificate_json(name: str, cert: x509.Certificate) -> dict[str, Any]:
    return {
        "file": f"certs/{name}.pem",
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def describe(image: ImagePackage) -> dict[str, Any]:
    """Everything `show --json` prints about an image (parsed, not authenticated)."""
    result: dict[str, Any] = {
        "image_type": image.image_type_name,
        "image_type_id": image.image_type,
        "component_id": str(image.component_id),
        "image_id": str(image.image_id),
        "name": image.name,
        "build_time": image.build_time,
        "security_version": image.security_version,
        "signing_type": SigningType(image.signing_type).name,
        "thumbprint": image.thumbprint.hex(),
        "size": len(image.data),
        "payload_size": image.layout.metadata_start,
        "sections": [section_json(s) for s in image.sections],
    }
    try:
        result |= _payload_json(image)
    except ImageFormatError as error:  # e.g. a keystore in Microsoft's own layout
        result["payload_error"] = str(error)
    return result


def _payload_json(image: ImagePackage) -> dict[str, Any]:
    """The payload decoded, for the image types whose payload we know (ImageFormatError if it
    does not decode)."""
    if image.image_type == ImageType.UpdateCertStore:
        return {"certificates": [certificate_json(n, c)
                                 for n, c in read_store_payload(image.payload)]}
    if image.image_type == ImageType.TrustedKeystore:
        keystore = read_keystore_payload(image.payload)
        return {"keys": [k.to_json() for k in keystore.keys],
                "keystore_signer": keystore.signer_certificate.subject.rfc4514_string()}
    if image.image_type == ImageType.BaseSystemUpdateManifest:
        return {"entries": [e.to_json() for e in read_manifest(image.payload)]}
    if image.image_type == ImageType.Applications:
        return {"files": [file_json(path, content) for path, content
                          in sorted(read_cramfs(image.payload).items())]}
    return {}


def certificate_subjects(content: bytes) -> list[str]:
    """The subjects of the certificates a file holds (PEM, one or a bundle, or DER); empty
    when it holds none (or anything else)."""
    try:
        with real_world_roots():
            if b"-----BEGIN CERTIFICATE-----" in content:
                certificates = x509.load_pem_x509_certificates(content)
            elif content[:1] == b"\x30":  # a DER SEQUENCE
                certificates = [x509.load_der_x509_certificate(content)]
            else:
                return []
    except BAD_CERTIFICATE:
        return []
    return [certificate.subject.rfc4514_string() for certificate in certificates]


def file_json(path: str, content: bytes) -> dict[str, Any]:
    """A file of an Applications image: its path, size, and for a certificate file the
    subject of each certificate in it."""
    entry: dict[str, Any] = {"path": path, "size": len(content)}
    subjects = certificate_subjects(content)
    if subjects:
        entry["subjects"] = subjects
    return entry


def _field_lines(section: dict[str, Any]) -> list[str]:
    if "raw" in section:
        return [f"Raw data:          {section['raw']}"]
    lines = []
    for key, value in section["fields"].items():
        if key == "image_type":
            value = f"{image_type_name(value)} ({value})"
        elif key == "build_time":
            value = dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        elif key == "signing_type" and value in (1, 2):
            value = SigningType(value).name
        lines.append(f"{key.replace('_', ' ').capitalize() + ':':<19}{value}")
    return lines


def render_text(info: dict[str, Any]) -> str:
    """The human-readable form of `describe`'s result."""
    lines = ["Image package metadata:"]
    for section in info["sections"]:
        lines.append(f"  Section: {section['name']} ('{section['id']}', {section['length']} bytes)")
        lines += [f"    {line}" for line in _field_lines(section)]
    for cert in info.get("certificates", []):
        lines.append(f"  Certificate: {cert['file']}")
        for key in ("subject", "issuer", "not_before", "not_after", "sha256"):
            lines.append(f"    {key.replace('_', ' ').capitalize() + ':':<15}{cert[key]}")
    for key in info.get("keys", []):
        lines.append(f"  Key: {key['thumbprint']} ({key['curve']})"
                     f"{' REVOKED' if key['revoked'] else ''}")
        lines.append(f"    May sign:      {', '.join(key['image_types'])}")
    for entry in info.get("entries", []):
        lines.append(f"  Entry: {entry['image_type']} image {entry['image_id']}")
        lines.append(f"    Component:     {entry['component_id']}")
        lines.append(f"    Size:          {entry['size']}  security version "
                     f"{entry['security_version']}")
    for file in info.get("files", []):
        lines.append(f"  File: {file['path']} ({file['size']} bytes)")
        lines += [f"    Certificate:   {subject}" for subject in file.get("subjects", [])]
    if "payload_error" in info:
        lines.append(f"  Payload: could not be decoded ({info['payload_error']})")
    return "\n".join(lines)
