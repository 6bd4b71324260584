"""`python tools/imagetool.py ...` as a user runs it: real subprocesses from the repository root.

Exit codes: 0 ok, 1 trust (bad signature, signer not trusted for the type), 2 malformed or
unreadable. Errors are one line on stderr, never a traceback; bad input writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from firmware_model.image.build import build_package
from firmware_model.image.cramfs import read_cramfs
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from tests.tools.imagetool_call import call
from tools.pki import load_signer

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "images" / "recipes"
ROOTS = REPO / "images" / "roots"
OFFSET = re.compile(r"at offset 0x[0-9a-f]+")


def run(*args: str | Path, tool: str = "tools/imagetool.py") -> subprocess.CompletedProcess[str]:
    """The tool in a subprocess of its own, exactly as a user runs it."""
    return subprocess.run([sys.executable, tool, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)




def assert_fails(done: subprocess.CompletedProcess[str], code: int, *,
                 offset: bool = False, prog: str = "imagetool") -> str:
    """The command failed with `code` and one line on stderr (naming an offset if asked)."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), done.stderr
    if offset:
        assert OFFSET.search(lines[0]), lines[0]
    return lines[0]


pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number:UserWarning")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every recipe built by tools/build_images.py (its lab PKI in out/keys)."""
    folder = tmp_path_factory.mktemp("images")
    done = run("--out", folder, tool="tools/build_images.py")
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def keys(out: Path) -> Path:
    return out / "keys"


def show_json(path: Path, *, subprocess_run: bool = False) -> dict[str, Any]:
    done = (run if subprocess_run else call)("show", path, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


# --- keygen and build ---------------------------------------------------------------------


def test_keygen_writes_a_lab_pki(tmp_path: Path) -> None:
    done = run("keygen", "--out", tmp_path / "pki")
    assert done.returncode == 0, done.stderr
    pki = tmp_path / "pki"
    for stem in ("root", "keystore-signing", "image-signing", "image-signing-2024-07"):
        assert (pki / f"{stem}.key").stat().st_mode & 0o777 == 0o600
        assert (pki / f"{stem}.pem").exists()
        load_signer(pki / f"{stem}.key", pki / f"{stem}.pem")  # key and certificate match
    root_spki = serialization.load_pem_public_key((pki / "root.pub.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    fused = hashlib.sha256(root_spki).hexdigest()
    assert (pki / "root.hash").read_text().strip() == fused
    assert fused in done.stdout


def test_every_recipe_is_built(out: Path) -> None:
    for recipe in sorted(RECIPES.glob("*.toml")):
        image = parse_package((out / f"{recipe.stem}.imagepackage").read_bytes())
        assert image.name and image.layout.signature_size == 64, recipe.name
    for channel in ("Retail", "RetailEval"):
        assert (out / "feeds" / channel / "manifest.imagepackage").exists()


# --- show ---------------------------------------------------------------------------------


def _readme_fingerprints() -> dict[str, str]:
    rows = re.findall(r"^\| `([^`]+\.pem)` \|.*\| `([0-9A-F:]{95})` \|$",
                      (ROOTS / "README.md").read_text(), re.MULTILINE)
    return {name: fp.replace(":", "").lower() for name, fp in rows}


def test_show_json_of_a_store(out: Path, keys: Path) -> None:
    info = show_json(out / "certstore-2024.imagepackage", subprocess_run=True)
    image_signing = x509.load_pem_x509_certificate((keys / "image-signing.pem").read_bytes())
    assert info["image_type"] == "UpdateCertStore" and info["image_type_id"] == 22
    assert info["component_id"] == "e5f5f3fc-2eb5-4d1b-a650-b72364446807"
    assert info["image_id"] == "4010c57a-fe73-4fb6-b80e-bac553117ba0"
    assert info["signing_type"] == "ECDsa256"
    assert info["thumbprint"] == image_signing.fingerprint(hashes.SHA1()).hex()
    assert [s["id"] for s in info["sections"]] == ["ID", "DB", "RV", "SG"]
    assert {c["file"]: c["sha256"] for c in info["certificates"]} == {
        f"certs/{name}": fp for name, fp in _readme_fingerprints().items()}


def test_show_json_after_the_february_2025_update(out: Path) -> None:
    info = show_json(out / "certstore-2025-02.imagepackage")
    files = [c["file"] for c in info["certificates"]]
    assert files == ["certs/DigiCert_Global_Root_G2.pem",
                     "certs/Microsoft_RSA_Root_Certificate_Authority_2017.pem"]


def test_show_json_of_a_keystore(out: Path, keys: Path) -> None:
    info = show_json(out / "keystore-2024.imagepackage")
    image_signing = x509.load_pem_x509_certificate((keys / "image-signing.pem").read_bytes())
    assert info["image_type"] == "TrustedKeystore" and info["image_type_id"] == 19
    assert info["keys"] == [{"thumbprint": image_signing.fingerprint(hashes.SHA1()).hex(),
                             "curve": "secp256r1",
                             "image_types": ["BaseSystemUpdateManifest", "UpdateCertStore"],
                             "revoked": False}]


def test_show_json_of_a_manifest(out: Path) -> None:
    info = show_json(out / "manifest-retail.imagepackage")
    assert info["image_type"] == "BaseSystemUpdateManifest" and info["image_type_id"] == 23
    listed = [(e["image_id"], e["image_type"], e["size"]) for e in info["entries"]]
    expected = []
    for stem in ("certstore-2025-02", "keystore-2025-02"):
        image = parse_package((out / f"{stem}.imagepackage").read_bytes())
        expected.append((str(image.image_id), image.image_type_name, len(image.data)))
    assert listed == expected


def test_show_text(out: Path) -> None:
    store = run("show", out / "certstore-2024.imagepackage")
    assert store.returncode == 0
    assert "Section: Identity ('ID', 36 bytes)" in store.stdout
    assert "UpdateCertStore (22)" in store.stdout
    assert "Certificate: certs/Baltimore_CyberTrust_Root.pem" in store.stdout
    keystore = call("show", out / "keystore-2024.imagepackage")
    assert "May sign:      BaseSystemUpdateManifest, UpdateCertStore" in keystore.stdout
    manifest = call("show", out / "manifest-retaileval.imagepackage")
    assert manifest.stdout.count("Entry: ") == 2


def test_show_names_unknown_sections(tmp_path: Path, keys: Path) -> None:
    signer = load_signer(keys / "image-signing.key", keys / "image-signing.pem")
    path = tmp_path / "unknown.imagepackage"
    path.write_bytes(build_package(b"", image_type=ImageType.Policy, component_id=uuid.uuid4(),
                                   image_id=uuid.uuid4(), signer=signer,
                                   extra_sections=[{"id": 0x5A5A, "data": b"\xca\xfe"}]))
    sections = show_json(path)["sections"]
    assert {"id": "ZZ", "name": "Unknown", "raw": "cafe"}.items() <= sections[-2].items()
    assert "Raw data:          cafe" in call("show", path).stdout


# --- verify and sign ----------------------------------------------------------------------


def test_verify_with_a_certificate(out: Path, keys: Path) -> None:
    store = out / "certstore-2024.imagepackage"
    done = run("verify", store, "--cert", keys / "image-signing.pem")
    assert done.returncode == 0 and "valid UpdateCertStore image" in done.stdout
    assert_fails(run("verify", store, "--cert", keys / "keystore-signing.pem"), 1)


def test_verify_with_the_keystore(out: Path, keys: Path) -> None:
    keystore = out / "keystore-2024.imagepackage"
    for stem in ("certstore-2025-02", "manifest-retail"):
        done = call("verify", out / f"{stem}.imagepackage", "--keystore", keystore,
                   "--root-pubkey", keys / "root.pub.pem")
        assert done.returncode == 0, done.stderr
    # a keystore image is checked against the root, as a device checks a new keystore
    done = run("verify", out / "keystore-2025-02.imagepackage", "--keystore", keystore,
               "--root-pubkey", keys / "root.pub.pem")
    assert done.returncode == 0 and "valid TrustedKeystore image" in done.stdout
    # (a keystore signed by a key without the keystore-signing role: test_imagetool_verify)


def test_verify_with_a_root_that_is_not_fused(out: Path, tmp_path: Path) -> None:
    assert call("keygen", "--out", tmp_path / "other").returncode == 0
    line = assert_fails(call("verify", out / "certstore-2024.imagepackage", "--keystore",
                            out / "keystore-2024.imagepackage", "--root-pubkey",
                            tmp_path / "other" / "root.pub.pem"), 1)
    assert "fused" in line


def test_verify_needs_a_trust_anchor(out: Path) -> None:
    assert_fails(call("verify", out / "certstore-2024.imagepackage"), 2)


def test_sign_with_another_key(out: Path, keys: Path, tmp_path: Path) -> None:
    resigned = tmp_path / "resigned.imagepackage"
    done = run("sign", out / "certstore-2024.imagepackage", "--key", keys / "keystore-signing.key",
               "--cert", keys / "keystore-signing.pem", "-o", resigned)
    assert done.returncode == 0, done.stderr
    assert call("verify", resigned, "--cert", keys / "keystore-signing.pem").returncode == 0
    assert_fails(call("verify", resigned, "--cert", keys / "image-signing.pem"), 1)
    before = parse_package((out / "certstore-2024.imagepackage").read_bytes())
    after = parse_package(resigned.read_bytes())
    assert (after.payload, after.image_id, after.name) == (before.payload, before.image_id,
                                                          before.name)


def test_sign_with_a_key_the_certificate_does_not_name(out: Path, keys: Path,
                                                       tmp_path: Path) -> None:
    target = tmp_path / "never.imagepackage"
    line = assert_fails(call("sign", out / "certstore-2024.imagepackage", "--key",
                            keys / "root.key", "--cert", keys / "image-signing.pem", "-o",
                            target), 2)
    assert "does not certify" in line and not target.exists()


# --- bad input ----------------------------------------------------------------------------


def _damaged(good: bytes, how: str) -> bytes:
    if how == "truncated":
        return good[: len(good) // 2]
    if how == "oversized":
        return good + b"GARBAGE!" * 5
    if how == "garbage":
        return bytes((i * 37 + 11) % 256 for i in range(3000))
    if how == "empty":
        return b""
    if how == "bad-section-count":
        data = bytearray(good)
        start = parse_package(good).layout.metadata_start
        data[start + 4] = 0x40
        return bytes(data)
    raise AssertionError(how)


MALFORMED = ["truncated", "oversized", "garbage", "empty", "bad-section-count"]


@pytest.fixture(scope="module")
def damaged(out: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("damaged")
    good = (out / "certstore-2024.imagepackage").read_bytes()
    paths = {}
    for how in MALFORMED:
        paths[how] = folder / f"{how}.imagepackage"
        paths[how].write_bytes(_damaged(good, how))
    return paths


@pytest.mark.parametrize("how", MALFORMED)
def test_malformed_images_are_refused_with_the_offset(how: str, damaged: dict[str, Path],
                                                      keys: Path, tmp_path: Path) -> None:
    path = damaged[how]
    assert_fails(call("show", path), 2, offset=True)
    assert_fails(call("verify", path, "--cert", keys / "image-signing.pem"), 2, offset=True)
    target = tmp_path / "signed.imagepackage"
    target.write_bytes(b"old")
    assert_fails(call("sign", path, "--key", keys / "image-signing.key", "--cert",
                     keys / "image-signing.pem", "-o", target), 2, offset=True)
    assert target.read_bytes() == b"old"


def test_malformed_input_when_verifying_with_the_keystore(damaged: dict[str, Path], out: Path,
                                                         keys: Path) -> None:
    root = keys / "root.pub.pem"
    assert_fails(call("verify", damaged["truncated"], "--keystore",
                      out / "keystore-2024.imagepackage", "--root-pubkey", root), 2, offset=True)
    assert_fails(call("verify", out / "certstore-2024.imagepackage", "--keystore",
                      damaged["oversized"], "--root-pubkey", root), 2, offset=True)
    line = assert_fails(call("verify", out / "certstore-2024.imagepackage", "--keystore",
                             out / "keystore-2024.imagepackage", "--root-pubkey",
                             damaged["garbage"]), 2)
    assert "no PEM public key" in line


def test_bad_input_through_a_real_process(damaged: dict[str, Path], keys: Path,
                                         tmp_path: Path) -> None:
    """The same promises with the interpreter in the loop: no traceback, one line, no output."""
    assert_fails(run("show", damaged["truncated"]), 2, offset=True)
    target = tmp_path / "signed.imagepackage"
    assert_fails(run("sign", damaged["garbage"], "--key", keys / "image-signing.key", "--cert",
                     keys / "image-signing.pem", "-o", target), 2, offset=True)
    assert not target.exists()
    recipe = tmp_path / "bad.toml"
    recipe.write_text(BAD_RECIPES["missing PEM"])
    assert_fails(run("build", recipe, "--keys", keys, "-o", target), 2)
    assert not target.exists()


def test_tampered_images_fail_verification(out: Path, keys: Path, tmp_path: Path) -> None:
    good = (out / "certstore-2024.imagepackage").read_bytes()
    layout = parse_package(good).layout
    for index in (100, layout.spans[0x4244][0] + 9, len(good) - 1):  # payload, DB name, sig
        tampered = bytearray(good)
        tampered[index] ^= 0x20
        path = tmp_path / f"tampered-{index}.imagepackage"
        path.write_bytes(bytes(tampered))
        line = assert_fails(call("verify", path, "--cert", keys / "image-signing.pem"), 1)
        assert "signature does not verify" in line


def test_missing_files(tmp_path: Path, keys: Path) -> None:
    line = assert_fails(call("show", tmp_path / "nope.imagepackage"), 2)
    assert "nope.imagepackage" in line
    assert_fails(call("verify", tmp_path / "nope", "--cert", keys / "image-signing.pem"), 2)


RECIPE_HEAD = """type = "UpdateCertStore"
component_id = "e5f5f3fc-2eb5-4d1b-a650-b72364446807"
image_id = "4010c57a-fe73-4fb6-b80e-bac553117ba0"
"""
BAD_RECIPES = {
    "not TOML": "type = = 3",
    "unknown image type": RECIPE_HEAD.replace("UpdateCertStore", "Toaster") + "[store]\n",
    "missing PEM": RECIPE_HEAD + '[store]\ncertificates = ["missing.pem"]\n',
    "PEM that is not a certificate": RECIPE_HEAD + '[store]\ncertificates = ["junk.pem"]\n',
    "bundle listed as one certificate": RECIPE_HEAD + '[store]\ncertificates = ["bundle.pem"]\n',
    "bad GUID": RECIPE_HEAD.replace("4010c57a", "zzzz") + "[store]\n",
    "name too long": RECIPE_HEAD + f'name = "{"n" * 33}"\n[store]\n',
    "no contents table": RECIPE_HEAD,
    # recipes a device would take and then fail to boot or strand (issue 9): refused at build
    "store version past the counter": RECIPE_HEAD + "security_version = 65\n"
    + f'[store]\ncertificates = ["{ROOTS / "DigiCert_Global_Root_G2.pem"}"]\n',
    "negative security version": RECIPE_HEAD + "security_version = -1\n"
    + f'[store]\ncertificates = ["{ROOTS / "DigiCert_Global_Root_G2.pem"}"]\n',
    "store with no root": RECIPE_HEAD + "[store]\ncertificates = []\n",
    "keystore that trusts no manifest signer": RECIPE_HEAD.replace(
        "UpdateCertStore", "TrustedKeystore")
    + '[keystore]\nkeys = [{ certificate = "image-signing.pem", image_types = '
      '["UpdateCertStore"] }]\n',
    "keystore signed by the image-signing key": RECIPE_HEAD.replace(
        "UpdateCertStore", "TrustedKeystore") + 'signing_key = "image-signing"\n'
    + '[keystore]\nkeys = [{ certificate = "image-signing.pem", image_types = '
      '["BaseSystemUpdateManifest", "UpdateCertStore"] }]\n',
}


REASONS = {
    "bundle listed as one certificate": "bundle.pem holds 2 certificates, not one (a store file "
                                        "holds one root: list a bundle under store.bundles",
    "store version past the counter": "counter holds 0..64",
    "negative security version": "counter holds 0..64",
    "store with no root": "a store with no root",
    "keystore that trusts no manifest signer": "could never update again",
    "keystore signed by the image-signing key": "lacks the keystore-signing role",
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_bad_recipes_write_nothing(case: str, tmp_path: Path, keys: Path) -> None:
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    (tmp_path / "bundle.pem").write_bytes((ROOTS / "DigiCert_Global_Root_G2.pem").read_bytes()
                                          + (ROOTS / "Baltimore_CyberTrust_Root.pem").read_bytes())
    recipe = tmp_path / "bad.toml"
    recipe.write_text(BAD_RECIPES[case])
    target = tmp_path / "built" / "bad.imagepackage"
    line = assert_fails(call("build", recipe, "--keys", keys, "-o", target), 2)
    assert REASONS.get(case, "") in line
    assert not target.exists()


# --- real roots and the whole Mozilla set -------------------------------------------------


def test_certifi_is_the_pinned_release() -> None:
    pin = re.search(r'"certifi==([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    assert pin is not None and certifi.__version__ == pin.group(1)
    assert pin.group(1) in (ROOTS / "README.md").read_text()


def test_roots_match_their_readme_and_the_pinned_certifi() -> None:
    readme = _readme_fingerprints()
    files = sorted(p.name for p in ROOTS.glob("*.pem"))
    assert sorted(readme) == files and len(files) == 3
    mozilla = {c.public_bytes(serialization.Encoding.DER)
               for c in x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes())}
    for name in files:
        cert = x509.load_pem_x509_certificate((ROOTS / name).read_bytes())
        assert _sha256(cert) == readme[name], name
        assert cert.public_bytes(serialization.Encoding.DER) in mozilla, name


def test_the_whole_mozilla_set_builds_shows_and_verifies(tmp_path: Path, keys: Path,
                                                         out: Path) -> None:
    recipe = tmp_path / "mozilla.toml"
    recipe.write_text(RECIPE_HEAD + 'name = "mozilla-certifi"\nsecurity_version = 3\n'
                      f"[store]\nbundles = [{json.dumps(certifi.where())}]\n")
    image = tmp_path / "mozilla.imagepackage"
    done = run("build", recipe, "--keys", keys, "-o", image)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr

    bundle = x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes())
    shown = show_json(image)["certificates"]
    assert len(shown) == len(bundle) > 140
    assert sorted(c["sha256"] for c in shown) == sorted(_sha256(c) for c in bundle)
    assert len({c["file"] for c in shown}) == len(shown)
    assert any(c.serial_number <= 0 for c in bundle)  # real-world quirks are in there

    assert call("verify", image, "--cert", keys / "image-signing.pem").returncode == 0
    assert call("verify", image, "--keystore", out / "keystore-2024.imagepackage",
               "--root-pubkey", keys / "root.pub.pem").returncode == 0


def test_keygen_refuses_to_replace_a_lab_pki(tmp_path: Path) -> None:
    """A device may have fused the root already: keygen never loses it by accident."""
    keys = tmp_path / "lab-keys"
    assert call("keygen", "--out", keys).returncode == 0
    before = {p.name: p.read_bytes() for p in keys.iterdir()}
    line = assert_fails(call("keygen", "--out", keys), 2)
    assert "--force" in line
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == before
    assert call("keygen", "--out", keys, "--force").returncode == 0
    assert (keys / "root.key").read_bytes() != before["root.key"]
    assert (keys / "root.key").stat().st_mode & 0o777 == 0o600


def test_a_write_that_fails_leaves_the_old_output_whole(out: Path, keys: Path,
                                                        tmp_path: Path) -> None:
    """`sign -o EXISTING` into a file system that refuses the write: the old file stays."""
    existing = tmp_path / "existing.imagepackage"
    existing.write_bytes(b"the previous output")
    script = ("import resource, sys; sys.argv[0] = 'tools/imagetool.py'; "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)); "
              "import signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "import runpy; runpy.run_path('tools/imagetool.py', run_name='__main__')")
    done = subprocess.run(
        [sys.executable, "-c", script, "sign", str(out / "certstore-2024.imagepackage"),
         "--key", str(keys / "image-signing.key"), "--cert", str(keys / "image-signing.pem"),
         "-o", str(existing)], cwd=REPO, capture_output=True, text=True, timeout=60)
    line = assert_fails(done, 2)
    assert str(existing) in line
    assert existing.read_bytes() == b"the previous output"
    assert [p.name for p in tmp_path.iterdir()] == ["existing.imagepackage"]


def test_build_an_applications_image(keys: Path, tmp_path: Path) -> None:
    """An app image (what the endpoint audit reads) from a recipe: manifest + executable."""
    (tmp_path / "app_manifest.json").write_text('{"Capabilities": {"AllowedConnections": []}}')
    (tmp_path / "app").write_bytes(b"\x7fELF not really")
    recipe = tmp_path / "app.toml"
    recipe.write_text(
        'type = "Applications"\nname = "myapp"\n'
        'component_id = "11111111-2222-3333-4444-555555555555"\n'
        'image_id = "66666666-7777-8888-9999-000000000000"\n'
        '[app]\nfiles = { "app_manifest.json" = "app_manifest.json", "bin/app" = "app" }\n')
    image = tmp_path / "myapp.imagepackage"
    done = run("build", recipe, "--keys", keys, "-o", image)
    assert done.returncode == 0, done.stderr
    package = parse_package(image.read_bytes())
    assert package.image_type_name == "Applications"
    assert read_cramfs(package.payload) == {
        "app_manifest.json": (tmp_path / "app_manifest.json").read_bytes(),
        "bin/app": b"\x7fELF not really"}
