"""Applications images: the example recipe in images/recipes (app manifest with
AllowedConnections and the two SysEvent capabilities, an executable, a bundled root), the
stand-in executables recipes can make, and `imagetool show` listing an app image's files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from elftools.elf.elffile import ELFFile

from firmware_model.image.cramfs import read_cramfs
from firmware_model.image.package import parse_package
from firmware_model.image.sections import ImageType
from tests.firmware_model.devicelab import Lab
from tests.fixtures import device_lab, lab_pki
from tests.tools.imagetool_call import call
from tools.elfstub import arm_executable
from tools.pki import LabPki

__all__ = ["device_lab", "lab_pki"]

REPO = Path(__file__).resolve().parents[2]
ROOTS = REPO / "images" / "roots"
G2 = "DigiCert_Global_Root_G2.pem"




@pytest.fixture(scope="module")
def example(device_lab: Lab) -> Path:
    """The example app as tools/build_images.py built it."""
    return device_lab.folder / "app-example.imagepackage"


def subject(pem_file: Path) -> str:
    return x509.load_pem_x509_certificate(pem_file.read_bytes()).subject.rfc4514_string()


def test_the_example_app_is_built_with_the_shipped_images(example: Path) -> None:
    image = parse_package(example.read_bytes())
    assert image.image_type == ImageType.Applications and image.name == "app-example"
    files = read_cramfs(image.payload)
    assert sorted(files) == ["app_manifest.json", "bin/app", f"certs/{G2}"]
    manifest = json.loads(files["app_manifest.json"])
    assert manifest["ComponentId"] == str(image.component_id)
    capabilities = manifest["Capabilities"]
    assert capabilities["SystemEventNotifications"] is True
    assert capabilities["SoftwareUpdateDeferral"] is True
    assert "telemetry.example.com" in capabilities["AllowedConnections"]
    assert manifest["EntryPoint"] == "/bin/app"
    assert files[f"certs/{G2}"] == (ROOTS / G2).read_bytes()  # the real root, bundled


def test_the_example_executable_is_an_arm_elf_naming_its_endpoint(example: Path,
                                                                  tmp_path: Path) -> None:
    executable = read_cramfs(parse_package(example.read_bytes()).payload)["bin/app"]
    (tmp_path / "app").write_bytes(executable)
    with (tmp_path / "app").open("rb") as stream:
        elf = ELFFile(stream)
        assert (elf.elfclass, elf.header["e_machine"], elf.header["e_type"]) == (
            32, "EM_ARM", "ET_EXEC")
        rodata = elf.get_section_by_name(".rodata").data()
    assert b"https://telemetry.example.com/v1/readings\0" in rodata
    readelf = subprocess.run(["readelf", "-a", "-W", str(tmp_path / "app")],
                             capture_output=True, text=True, check=False, timeout=30)
    assert readelf.returncode == 0 and readelf.stderr == "", readelf.stderr
    assert "LOAD" in readelf.stdout and ".rodata" in readelf.stdout


def test_a_stand_in_holds_exactly_its_strings() -> None:
    for strings, rodata in ((["a.example.com"], b"a.example.com\0\0\0"),
                            (["a.example.com", "b"], b"a.example.com\0b\0"),
                            ([], b"")):
        elf = ELFFile(io.BytesIO(arm_executable(strings)))
        assert elf.get_section_by_name(".rodata").data() == rodata
        assert elf.get_section_by_name(".text").data() == b"\x70\x47"  # bx lr


def test_show_lists_the_files_of_an_app_image(example: Path) -> None:
    done = call("show", example, "--json")
    assert done.returncode == 0, done.stderr
    files: list[dict[str, Any]] = json.loads(done.stdout)["files"]
    contents = read_cramfs(parse_package(example.read_bytes()).payload)
    assert [f["path"] for f in files] == sorted(contents)
    assert all(f["size"] == len(contents[f["path"]]) for f in files)
    by_path = {f["path"]: f for f in files}
    assert by_path[f"certs/{G2}"]["subjects"] == [subject(ROOTS / G2)]
    assert "subjects" not in by_path["bin/app"] and "subjects" not in by_path["app_manifest.json"]
    text = call("show", example)
    assert text.returncode == 0
    assert f"  File: certs/{G2} ({(ROOTS / G2).stat().st_size} bytes)" in text.stdout
    assert f"    Certificate:   {subject(ROOTS / G2)}" in text.stdout
    assert f"  File: bin/app ({len(contents['bin/app'])} bytes)" in text.stdout


def app_recipe(folder: Path, app: str) -> Path:
    recipe = folder / "app.toml"
    recipe.write_text(
        'type = "Applications"\nname = "myapp"\n'
        'component_id = "11111111-2222-4333-8444-555555555555"\n'
        'image_id = "66666666-7777-4888-8999-aaaaaaaaaaaa"\n' + app)
    return recipe


def test_show_names_every_certificate_of_a_bundle_and_of_der(lab_pki: LabPki,
                                                             tmp_path: Path) -> None:
    """A PEM bundle lists each subject; a DER certificate is recognised too."""
    roots = sorted(ROOTS.glob("*.pem"))
    (tmp_path / "bundle.pem").write_bytes(b"".join(p.read_bytes() for p in roots))
    der = x509.load_pem_x509_certificate((ROOTS / G2).read_bytes()).public_bytes(
        serialization.Encoding.DER)
    (tmp_path / "root.der").write_bytes(der)
    (tmp_path / "broken.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    recipe = app_recipe(tmp_path, '[app]\nfiles = { "certs/all.pem" = "bundle.pem", '
                                  '"certs/g2.der" = "root.der", "certs/broken.pem" = '
                                  '"broken.pem" }\n')
    out = tmp_path / "app.imagepackage"
    assert call("build", recipe, "--keys", lab_pki.folder, "-o", out).returncode == 0
    files = {f["path"]: f for f in json.loads(call("show", out, "--json").stdout)["files"]}
    assert files["certs/all.pem"]["subjects"] == [subject(p) for p in roots]
    assert files["certs/g2.der"]["subjects"] == [subject(ROOTS / G2)]
    assert "subjects" not in files["certs/broken.pem"]


@pytest.mark.parametrize(("app", "text"), [
    ('[app]\nstand_in_executables = { "bin/app" = "https://x.example.com" }\n',
     "stand_in_executables.bin/app is not a list of strings"),
    ('[app]\nfiles = { "bin/app" = "app.toml" }\nstand_in_executables = { "bin/app" = [] }\n',
     "bin/app is both a file and a stand-in executable"),
    ('[app]\nfiles = ["app.toml"]\n', "app.files is not a table"),
    ("app = 3\n", "'app' is not a table"),
    ("[app]\n", "an Applications image with no file"),
])
def test_bad_app_recipes_are_refused(app: str, text: str, lab_pki: LabPki,
                                     tmp_path: Path) -> None:
    out = tmp_path / "app.imagepackage"
    done = call("build", app_recipe(tmp_path, app), "--keys", lab_pki.folder, "-o", out)
    assert done.returncode == 2 and text in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1 and not out.exists()


def test_show_through_a_real_process(example: Path) -> None:
    done = subprocess.run([sys.executable, "tools/imagetool.py", "show", str(example)],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "  File: app_manifest.json (" in done.stdout, done.stderr
