"""Talk to Microsoft's `azuresphere-imagemetadata` (the oracle) from its own virtual environment.

Run with the Microsoft venv's python, never imported by our code (it pins cryptography < 49):

    .venv-ms/bin/python tests/oracle/ms_helper.py read [--cert C.pem --key K.pem] IMAGE...
    .venv-ms/bin/python tests/oracle/ms_helper.py compose OUT_DIR
    .venv-ms/bin/python tests/oracle/ms_helper.py time IMAGE --cert C.pem --key K.pem

Each command prints one JSON document on stdout. Field names follow our section declarations
(firmware_model/image/sections.py) so the tests compare like with like; the values are what
Microsoft's classes read or wrote.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import timeit
from importlib.resources import files
from pathlib import Path
from typing import Any

from azuresphere_imagemetadata.image import Image
from azuresphere_imagemetadata.image_manifest import ImageManifest
from azuresphere_imagemetadata.metadata_sections import (
    ABIDependsSection,
    ABIProvidesSection,
    CompressionSection,
    DebugSection,
    IdentitySection,
    ImagePolicySection,
    RequiredOffsetSection,
    RevocationSection,
    SignatureSection,
    TempImageMetadataSection,
)
from azuresphere_imagemetadata.metadata_sections.abi import ABIIdentity
from azuresphere_imagemetadata.signing.signer import Signer, SigningMap
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

TEST_PFX = files("azuresphere_imagemetadata") / "certificates" / "app_test_sign.pfx"


def section_fields(section: Any) -> dict[str, Any]:
    """A Microsoft section object's values, under our field names."""
    if isinstance(section, IdentitySection):
        return {"image_type": section.image_type, "reserved": section.reserved,
                "component_id": section.component_uid, "image_id": section.image_uid}
    if isinstance(section, SignatureSection):
        return {"thumbprint": bytes(section.signing_cert_thumbprint).hex(),
                "signing_type": section.signing_type.signing_type}
    if isinstance(section, DebugSection):
        return {"build_time": section.debug_time, "name": section.image_name}
    if isinstance(section, RevocationSection):
        return {"security_version": section.version}
    if isinstance(section, TempImageMetadataSection | ImagePolicySection):
        return {"flags": section.flags.flags}
    if isinstance(section, ABIDependsSection | ABIProvidesSection):
        return {"count": section.version_count,
                "versions": [{"version": v.version, "type": v.type} for v in section.versions]}
    if isinstance(section, CompressionSection):
        return {"uncompressed_size": section.uncompressed_size,
                "compression_type": section.compression_type.compression_type}
    if isinstance(section, RequiredOffsetSection):
        return {"offset": section.offset}
    raise SystemExit(f"ms_helper: no field mapping for {type(section).__name__}")


def describe(data: bytes, signer: Signer | None) -> dict[str, Any]:
    """What Microsoft's Image reads from `data`; whether `signer` validates its signature."""
    image = Image(data)
    identity = image.metadata.identity
    result: dict[str, Any] = {
        "image_type": identity.image_type,
        "component_id": identity.component_uid,
        "image_id": identity.image_uid,
        "payload_size": len(image.data),
        "metadata_start": image.metadata.start_of_metadata,
        "signature_size": image.metadata.signature_size,
        "sections": [{"id": int(s.section_id), "name": s.name, "fields": section_fields(s)}
                     for s in image.metadata.sections],
    }
    if signer is not None:
        result["signature_valid"] = image.has_valid_signature([signer])
    if identity.image_type == 23:  # BaseSystemUpdateManifest
        manifest = ImageManifest.from_image_metadata(image.metadata)
        result["manifest"] = {
            "version": manifest.header.version,
            "entry_size": manifest.header.manifest_entry_size,
            "build_date": manifest.header.build_date,
            "entries": [{"image_id": e.image_uid, "component_id": e.component_uid,
                         "image_type": e.image_type, "partition_type": e.partition_type,
                         "size": e.image_file_size}
                        for e in manifest.entries],
        }
    return result


def signer_for(cert_path: str, key_path: str) -> Signer:
    """Microsoft's Signer around our PEM certificate and key (wrapped as PKCS#12)."""
    certificate = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    blob = pkcs12.serialize_key_and_certificates(
        b"sphere-fwmodel", key, certificate, None, serialization.NoEncryption()  # type: ignore[arg-type]
    )
    return Signer(SigningMap(ecdsa_256=pkcs12.load_pkcs12(blob, None)))


def _abi(section: Any, pairs: list[tuple[int, int]]) -> Any:
    for version, kind in pairs:
        section.versions.append(ABIIdentity(struct.pack("<II", version, kind)))
    return section


def _composed(image_type: int, component: str, image_id: str, payload: bytes,
              full: bool) -> Image:
    image = Image(None)
    image.data = payload
    identity = IdentitySection()
    identity.image_type = image_type
    identity.component_uid = component
    identity.image_uid = image_id
    debug = DebugSection()
    debug.debug_time = 1_739_145_600
    debug.image_name_raw = b"ms-composed".ljust(32, b"\0")
    sections: list[Any] = [identity, debug]
    if full:
        revocation = RevocationSection()
        revocation.version = 7
        temporary = TempImageMetadataSection()
        temporary.flags.flags = 0x3
        compression = CompressionSection()
        compression.uncompressed_size = 123_456
        compression.compression_type.compression_type = 1
        offset = RequiredOffsetSection()
        offset.offset = 0x40000
        policy = ImagePolicySection()
        policy.flags.flags = 0x2
        sections += [revocation, temporary, _abi(ABIDependsSection(), [(3, 2), (1, 1)]),
                     _abi(ABIProvidesSection(), [(5, 3)]), compression, offset, policy]
    for section in sections:
        image.metadata.add_section(section)
    return image


COMPOSITIONS = {
    # every section kind the library writes, odd payload length (the library pads it)
    "ms-all-sections": (10, "0b7c39b2-6a0f-4c39-9fd1-1d2f6f4b8a01",
                        "7e0c3e57-2b93-4f6e-8cde-52f0c1e9d402", bytes(range(256)) * 4 + b"abc",
                        True),
    "ms-certstore": (22, "e5f5f3fc-2eb5-4d1b-a650-b72364446807",
                     "c0ffee00-1234-4abc-8def-0123456789ab", b"\x01\x02\x03", False),
    # a TrustedKeystore in a layout that is not ours (Microsoft's own is not public)
    "ms-keystore": (19, "6a1e0b4c-0d6f-4d3c-9a51-0c2f8e9d7b11",
                    "5b3e9a20-7c41-4f0e-8d2a-3e6f1b9c0d22", b"MSKS" + bytes(60), False),
    "ms-empty-payload": (20, "f8c320c7-db5e-4805-b1e9-1535cce8f4fc",
                         "00000000-0000-0000-0000-000000000001", b"", False),
}


def compose(out_dir: Path) -> dict[str, Any]:
    """Images composed and signed by Microsoft's library with its app-test certificate."""
    out_dir.mkdir(parents=True, exist_ok=True)
    test_cert = pkcs12.load_pkcs12(TEST_PFX.read_bytes(), None).cert.certificate  # type: ignore[union-attr]
    cert_path = out_dir / "app_test_sign.pem"
    cert_path.write_bytes(test_cert.public_bytes(serialization.Encoding.PEM))
    images = {}
    for name, (image_type, component, image_id, payload, full) in COMPOSITIONS.items():
        data = _composed(image_type, component, image_id, payload, full).serialize()
        path = out_dir / f"{name}.imagepackage"
        path.write_bytes(data)
        images[name] = {"path": str(path), "payload": payload.hex(),
                        "described": describe(data, None)}
    return {"certificate": str(cert_path), "images": images}


ROUNDS = 41  # as bench/verify.py: the best of many short runs resists other load


def time_verify(data: bytes, signer: Signer, budget: float) -> dict[str, Any]:
    """Seconds per `Image(data)` + `has_valid_signature` (best of ROUNDS timeit runs)."""
    def op() -> None:
        if not Image(data).has_valid_signature([signer]):
            raise SystemExit("ms_helper: signature did not verify while timing")

    number = max(1, int(budget / ROUNDS / max(timeit.timeit(op, number=3) / 3, 1e-9)))
    best = min(timeit.repeat(op, number=number, repeat=ROUNDS))
    return {"seconds_per_op": best / number, "number": number, "rounds": ROUNDS}


def main() -> None:
    top = argparse.ArgumentParser(prog="ms_helper")
    sub = top.add_subparsers(dest="command", required=True)
    read = sub.add_parser("read")
    read.add_argument("images", nargs="+")
    read.add_argument("--cert")
    read.add_argument("--key")
    comp = sub.add_parser("compose")
    comp.add_argument("out_dir")
    tim = sub.add_parser("time")
    tim.add_argument("image")
    tim.add_argument("--cert", required=True)
    tim.add_argument("--key", required=True)
    tim.add_argument("--budget", type=float, default=1.0, help="seconds to spend, roughly")
    args = top.parse_args()
    if args.command == "read":
        signer = signer_for(args.cert, args.key) if args.cert else None
        result: Any = [describe(Path(p).read_bytes(), signer) for p in args.images]
    elif args.command == "compose":
        result = compose(Path(args.out_dir))
    else:
        result = time_verify(Path(args.image).read_bytes(), signer_for(args.cert, args.key),
                             args.budget)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
