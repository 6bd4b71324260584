"""`fwmodel certstore` end to end on a device kept in flash files: separate processes see one
store; every refusal is one line naming its errno, exits by the documented code, and leaves the
device files byte-identical. (The refusal matrix runs `fwmodel`'s main in this process, on the
same files, to keep the suite fast; the persistence tests run real subprocesses.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_model.cli.commands import certstore
from firmware_model.cli.fwmodel import build_parser, main
from firmware_model.device.model import Device
from hal.soft.files import device_files
from hal.soft.machine import SoftwareMachine
from policy.cli import ExitCode
from tests.firmware_model.certlab import Client, certificate, der_of_size, pem
from tests.firmware_model.devicelab import Lab

TIMEOUT = 60


def fwmodel(*args: str, hal: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware_model", "--hal", hal, *args],
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def files_of(flash: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in device_files(flash) if path.exists()}


@pytest.fixture(scope="module")
def template(device_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A device provisioned once; each test works on a copy of its files."""
    flash = tmp_path_factory.mktemp("certstore-template") / "dev.flash"
    ok(fwmodel("provision", "--images", str(device_lab.folder), hal=f"fake:{flash}"))
    return flash


@pytest.fixture
def flash(template: Path, tmp_path: Path) -> Path:
    for path in device_files(template):
        if path.exists():
            shutil.copy(path, tmp_path / path.name)
    return tmp_path / template.name


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates, keys and password files to install."""
    folder = tmp_path_factory.mktemp("certstore-files")
    client = Client.make("wifi client")
    blobs = {"root.pem": pem(certificate("Lab Root")), "client.pem": pem(client.cert),
             "client.key": client.key_pem(b"secret"), "plain.key": client.key_pem(),
             "pw": b"secret\n", "wrong-pw": b"nope\n", "garbage.pem": b"-----BEGIN nothing",
             "8192.der": der_of_size(8192), "8193.der": der_of_size(8193),
             "8130.der": der_of_size(8130), "other.der": der_of_size(8192, "Other")}
    for name, data in blobs.items():
        (folder / name).write_bytes(data)
    return folder


def test_separate_processes_share_one_store_and_status_shows_it_apart_from_the_os_store(
        flash: Path, files: Path) -> None:
    hal = f"fake:{flash}"
    assert ok(fwmodel("certstore", "space", hal=hal)).startswith("24514 bytes available")
    line = ok(fwmodel("certstore", "install", "Lab-Root", str(files / "root.pem"), hal=hal))
    root_size = len((files / "root.pem").read_bytes())
    assert line == (f"installed rootca certificate Lab-Root ({root_size} bytes); "
                    f"{24514 - root_size} bytes available\n")
    ok(fwmodel("certstore", "install", "wifi", str(files / "client.pem"), "--client-key",
               str(files / "client.key"), "--password-file", str(files / "pw"), hal=hal))
    listing = json.loads(ok(fwmodel("certstore", "list", "--json", hal=hal)))
    assert [(c["id"], c["type"]) for c in listing["certificates"]] == [
        ("Lab-Root", "rootca"), ("wifi", "client")]
    client_size = sum(len((files / n).read_bytes()) for n in ("client.pem", "client.key"))
    assert listing["available_space"] == 24514 - root_size - client_size - len(b"secret")
    shown = json.loads(ok(fwmodel("certstore", "show", "wifi", "--json", hal=hal)))
    assert (shown["subject_name"], shown["issuer_name"]) == ("/C=US/O=Lab/CN=wifi client",
                                                             "/CN=Lab Root")
    assert ok(fwmodel("certstore", "move", "wifi", "Lab-Root", hal=hal)) == (
        "moved client certificate wifi to Lab-Root, replacing a rootca certificate\n")
    status = json.loads(ok(fwmodel("status", "--json", hal=hal)))
    apps = status["app_certificate_store"]
    assert [(c["id"], c["type"]) for c in apps["certificates"]] == [("Lab-Root", "client")]
    assert status["store"]["label"] == "OS trusted root store"
    assert "Baltimore_CyberTrust_Root" in {c["name"] for c in status["store"]["certificates"]}
    text = ok(fwmodel("status", hal=hal))
    assert "OS trusted root store (TLS and updates; a real device does not list it):" in text
    assert "app certificate store (apps, device REST API): 1 certificate, " in text
    ok(fwmodel("certstore", "delete", "Lab-Root", hal=hal))
    space = json.loads(ok(fwmodel("certstore", "space", "--json", hal=hal)))
    assert space == {"available_space": 24514, "used": 0, "available_when_empty": 24514,
                     "capacity": 24576, "reserved": 62}


REFUSALS = [  # (arguments after `certstore`, @NAME a file, exit code, the line's start)
    (["install", "four", "@root.pem"], ExitCode.REFUSED, "certstore: ENOSPC: "),
    (["install", "one", "@8193.der"], ExitCode.BAD_INPUT, "certstore: ERANGE: "),
    (["install", "a" * 17, "@root.pem"], ExitCode.BAD_INPUT, "certstore: ERANGE: identifier"),
    (["install", "a/b", "@root.pem"], ExitCode.BAD_INPUT, "certstore: EINVAL: identifier"),
    (["install", "x", "@garbage.pem"], ExitCode.BAD_INPUT, "certstore: EINVAL: the certificate"),
    (["install", "x", "@client.pem", "--client-key", "@client.key", "--password-file",
      "@wrong-pw"], ExitCode.BAD_INPUT, "certstore: EINVAL: the password does not decrypt"),
    (["install", "x", "@client.pem", "--client-key", "@plain.key", "--password-file", "@pw"],
     ExitCode.BAD_INPUT, "certstore: EINVAL: a password was given"),
    (["delete", "nope"], ExitCode.REFUSED, "certstore: ENOENT: "),
    (["move", "nope", "one"], ExitCode.REFUSED, "certstore: ENOENT: "),
    (["move", "one", "a b"], ExitCode.BAD_INPUT, "certstore: EINVAL: "),
    (["show", "nope"], ExitCode.REFUSED, "certstore: ENOENT: "),
    (["install", "x", "@root.pem", "--password-file", "@pw"], ExitCode.BAD_INPUT,
     "--password-file is the password of --client-key"),
    (["install", "x", "@missing.pem"], ExitCode.BAD_INPUT, "cannot read or write"),
]


def test_each_refusal_is_one_line_naming_its_errno_and_leaves_the_device_files_as_they_were(
        flash: Path, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hal = f"fake:{flash}"
    for identifier, name in (("one", "8192.der"), ("two", "other.der"), ("three", "8130.der")):
        assert main(["--hal", hal, "certstore", "install", identifier, str(files / name)]) == 0
    assert main(["--hal", hal, "certstore", "space"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 bytes available")
    before = files_of(flash)
    for arguments, code, start in REFUSALS:
        argv = [str(files / a[1:]) if a.startswith("@") else a for a in arguments]
        assert main(["--hal", hal, "certstore", *argv]) == code, arguments
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
        assert captured.err.startswith(f"fwmodel: error: {start}"), (arguments, captured.err)
        assert files_of(flash) == before, arguments


def test_certstore_help_documents_its_exit_codes() -> None:
    shown = " ".join(ok(fwmodel("certstore", "--help", hal="fake:unused.flash")).split())
    assert "ENOENT (no certificate with that identifier)" not in shown  # no nested parentheses
    assert "certstore: ENOENT, no certificate with that identifier; ENOSPC" in shown
    assert "certstore: EINVAL or ERANGE" in shown


def test_certstore_on_a_flash_that_is_not_there_is_no_device(tmp_path: Path) -> None:
    result = fwmodel("certstore", "list", hal=f"fake:{tmp_path / 'none.flash'}")
    assert result.returncode == ExitCode.BAD_INPUT
    assert result.stderr.startswith("fwmodel: error: no device at ")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_certstore_command_says_the_store_is_whole_and_what_it_holds(
        flash: Path, files: Path) -> None:
    """Ctrl-C or SIGTERM is a power cut (the power-cut sweeps show the store whole after any
    cut): the last line lists what the store holds instead of speaking of updates."""
    with SoftwareMachine(flash) as machine:
        device = Device(machine)
        device.start()
        assert certstore.interrupted_state(device, None) == (
            "the app certificate store is whole, as before the command or as it made it "
            "(0 certificates)")
        device.app_store.install_root_ca("b", (files / "root.pem").read_bytes())
        device.app_store.install_root_ca("a", (files / "8130.der").read_bytes())
        assert certstore.interrupted_state(device, None).endswith("(2 certificates: a, b)")
    args = build_parser().parse_args(["certstore", "list"])
    assert args.interrupted_state is certstore.interrupted_state
