"""Interop with Microsoft's own implementation, `azuresphere-imagemetadata` (the oracle).

(a) What our tools write, Microsoft's `Image` reads with the same identity, sections and field
    values, and accepts the signature given our certificate.
(b) What Microsoft composes and signs with its app-test certificate, we read with the same values
    and verify, in the library and through `imagetool verify`.

Microsoft's library runs in `.venv-ms` (see tests/oracle/msvenv.py), through ms_helper.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from firmware_model.errors import UntrustedSignerError
from firmware_model.image.build import build_package, encode_section
from firmware_model.image.keystore import Keyring, TrustedKey
from firmware_model.image.manifest import ENTRY_SIZE, read_manifest
from firmware_model.image.package import ImagePackage, parse_package
from firmware_model.image.sections import ImageType, SectionId
from firmware_model.trust.chain import verify_image
from tests.oracle.msvenv import REPO, ask_microsoft
from tools.build_images import build_all
from tools.pki import IMAGE_SIGNING, KEYSTORE_SIGNING, load_signer

pytestmark = pytest.mark.oracle

OURS = ["certstore-2024", "keystore-2024", "manifest-retail", "all-sections"]

EXTRA_SECTIONS = [
    encode_section(SectionId.TemporaryImage, {"flags": 0x1}),
    encode_section(SectionId.ABIDepends, {"versions": [{"version": 3, "type": 2},
                                                       {"version": 1, "type": 1}]}),
    encode_section(SectionId.ABIProvides, {"versions": [{"version": 7, "type": 3}]}),
    encode_section(SectionId.Compression, {"uncompressed_size": 65_536, "compression_type": 1}),
    encode_section(SectionId.RequiredFlashOffset, {"offset": 0x10000}),
    encode_section(SectionId.ImagePolicy, {"flags": 0x3}),
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _our_sections(image: ImagePackage) -> list[dict[str, Any]]:
    return [{"id": s.id, "fields": _jsonable(s.fields)} for s in image.sections]


def _their_sections(described: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": s["id"], "fields": s["fields"]} for s in described["sections"]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shipped recipe built by our tools, plus an image with every section kind."""
    out = tmp_path_factory.mktemp("ours")
    build_all(out)
    keys = out / "keys"
    signer = load_signer(keys / f"{IMAGE_SIGNING}.key", keys / f"{IMAGE_SIGNING}.pem")
    data = build_package(bytes(range(251)) * 3, image_type=ImageType.Applications,
                         component_id=uuid.uuid4(), image_id=uuid.uuid4(), signer=signer,
                         name="every-section", build_time=1_739_145_600, security_version=9,
                         extra_sections=EXTRA_SECTIONS)
    (out / "all-sections.imagepackage").write_bytes(data)
    tampered = bytearray(data)
    tampered[10] ^= 0x40
    (out / "tampered.imagepackage").write_bytes(bytes(tampered))
    return out


def _read(ms_python: Path, out: Path, stem: str, names: list[str]) -> dict[str, Any]:
    keys = out / "keys"
    answer = ask_microsoft(ms_python, "read", "--cert", str(keys / f"{stem}.pem"),
                           "--key", str(keys / f"{stem}.key"),
                           *[str(out / f"{n}.imagepackage") for n in names])
    return dict(zip(names, answer, strict=True))


@pytest.fixture(scope="module")
def ms_with_image_signer(ms_python: Path, built: Path) -> dict[str, Any]:
    return _read(ms_python, built, IMAGE_SIGNING, [*OURS, "tampered"])


@pytest.fixture(scope="module")
def ms_with_keystore_signer(ms_python: Path, built: Path) -> dict[str, Any]:
    return _read(ms_python, built, KEYSTORE_SIGNING, ["keystore-2024"])


# --- (a) ours -> Microsoft ----------------------------------------------------------------


@pytest.mark.parametrize("name", OURS)
def test_microsoft_reads_our_identity_and_sections(built: Path, name: str,
                                                  ms_with_image_signer: dict[str, Any]) -> None:
    ours = parse_package((built / f"{name}.imagepackage").read_bytes())
    theirs = ms_with_image_signer[name]
    assert (theirs["image_type"], theirs["component_id"], theirs["image_id"]) == (
        ours.image_type, str(ours.component_id), str(ours.image_id))
    assert _their_sections(theirs) == _our_sections(ours)
    assert (theirs["metadata_start"], theirs["signature_size"]) == (
        ours.layout.metadata_start, ours.layout.signature_size)


def test_our_all_sections_image_has_every_kind(ms_with_image_signer: dict[str, Any]) -> None:
    ids = {s["id"] for s in ms_with_image_signer["all-sections"]["sections"]}
    assert ids == {int(sid) for sid in SectionId}


@pytest.mark.parametrize("name", ["certstore-2024", "manifest-retail", "all-sections"])
def test_microsoft_accepts_our_image_signature(name: str,
                                               ms_with_image_signer: dict[str, Any]) -> None:
    assert ms_with_image_signer[name]["signature_valid"] is True


def test_microsoft_accepts_our_keystore_signature(
        ms_with_keystore_signer: dict[str, Any], ms_with_image_signer: dict[str, Any]) -> None:
    assert ms_with_keystore_signer["keystore-2024"]["signature_valid"] is True
    # the same image under the wrong certificate, and a tampered image: refused
    assert ms_with_image_signer["keystore-2024"]["signature_valid"] is False
    assert ms_with_image_signer["tampered"]["signature_valid"] is False


def test_microsoft_reads_our_manifest_entries(built: Path,
                                              ms_with_image_signer: dict[str, Any]) -> None:
    ours = parse_package((built / "manifest-retail.imagepackage").read_bytes())
    entries = read_manifest(ours.payload)
    theirs = ms_with_image_signer["manifest-retail"]["manifest"]
    assert (theirs["version"], theirs["entry_size"]) == (3, ENTRY_SIZE)
    assert theirs["build_date"] == ours.build_time
    assert [(e["image_id"], e["component_id"], e["image_type"], e["size"])
            for e in theirs["entries"]] == [
        (str(e.image_id), str(e.component_id), e.image_type, e.size) for e in entries]
    assert len(entries) == 2


# --- (b) Microsoft -> ours ----------------------------------------------------------------


@pytest.fixture(scope="module")
def composed(ms_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result: dict[str, Any] = ask_microsoft(ms_python, "compose",
                                           str(tmp_path_factory.mktemp("theirs")))
    return result


@pytest.fixture(scope="module")
def their_keyring(composed: dict[str, Any]) -> Keyring:
    cert = x509.load_pem_x509_certificate(Path(composed["certificate"]).read_bytes())
    return Keyring([TrustedKey.from_certificate(cert)])


def _theirs(composed: dict[str, Any], name: str) -> tuple[bytes, dict[str, Any], bytes]:
    image = composed["images"][name]
    return Path(image["path"]).read_bytes(), image["described"], bytes.fromhex(image["payload"])


COMPOSED = ["ms-all-sections", "ms-certstore", "ms-keystore", "ms-empty-payload"]


@pytest.mark.parametrize("name", COMPOSED)
def test_we_read_microsoft_images_with_the_same_values(composed: dict[str, Any],
                                                       name: str) -> None:
    data, theirs, payload = _theirs(composed, name)
    ours = parse_package(data)
    assert (ours.image_type, str(ours.component_id), str(ours.image_id)) == (
        theirs["image_type"], theirs["component_id"], theirs["image_id"])
    assert _our_sections(ours) == _their_sections(theirs)
    padded = payload + b"\0" * (-len(payload) % 4)
    assert ours.payload == padded and ours.layout.metadata_start == theirs["metadata_start"]
    assert ours.unknown_sections == []


def test_microsoft_wrote_every_section_kind(composed: dict[str, Any]) -> None:
    data, _, _ = _theirs(composed, "ms-all-sections")
    assert set(parse_package(data).layout.order) == {int(sid) for sid in SectionId}


@pytest.mark.parametrize("name", COMPOSED)
def test_we_verify_microsoft_signatures(composed: dict[str, Any], their_keyring: Keyring,
                                        name: str) -> None:
    data, theirs, _ = _theirs(composed, name)
    image = verify_image(data, their_keyring, theirs["image_type"])
    assert image.thumbprint in their_keyring.keys


def test_microsoft_signatures_are_not_trusted_under_our_keys(composed: dict[str, Any],
                                                             built: Path) -> None:
    data, _, _ = _theirs(composed, "ms-certstore")
    ours = x509.load_pem_x509_certificate((built / "keys" / "image-signing.pem").read_bytes())
    with pytest.raises(UntrustedSignerError):
        verify_image(data, Keyring([TrustedKey.from_certificate(ours)]))


def _imagetool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "tools/imagetool.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def test_imagetool_verifies_a_microsoft_image(composed: dict[str, Any]) -> None:
    path = composed["images"]["ms-all-sections"]["path"]
    done = _imagetool("verify", path, "--cert", composed["certificate"])
    assert done.returncode == 0, done.stderr
    assert "valid Applications image" in done.stdout
    tampered = Path(path).with_name("tampered.imagepackage")
    data = bytearray(Path(path).read_bytes())
    data[0] ^= 1
    tampered.write_bytes(bytes(data))
    done = _imagetool("verify", str(tampered), "--cert", composed["certificate"])
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("name", ["ms-keystore", "ms-certstore"])
def test_imagetool_shows_the_envelope_of_a_payload_it_cannot_decode(
        composed: dict[str, Any], name: str) -> None:
    path = composed["images"][name]["path"]
    done = _imagetool("show", path, "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["image_id"] == composed["images"][name]["described"]["image_id"]
    assert {s["name"] for s in info["sections"]} >= {"Identity", "Debug", "Signature"}
    assert info["payload_error"] and "keys" not in info and "certificates" not in info
    text = _imagetool("show", path)
    assert text.returncode == 0, text.stderr
    assert "Section: Identity" in text.stdout
    assert "Payload: could not be decoded" in text.stdout.splitlines()[-1]
