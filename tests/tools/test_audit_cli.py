"""The audit's command line: option checking, output into pipes, the documented verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware_model.image.sections import ImageType
from firmware_model.image.signing import Signer
from tests.tools.audit_lab import LabWeb, closed_port, keystore_image, pem, store_image
from tools.audit_endpoints import main
from tools.pki import LabPki, issue, new_key

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "tools" / "audit_endpoints.py"


@pytest.mark.parametrize("timeout", ["-1", "0", "-0.5", "nan", "inf", "soon"])
def test_timeout_must_be_a_number_above_zero(
    timeout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["127.0.0.1:1", "--before", "b.pem", "--after", "a.pem", "--timeout", timeout])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--timeout" in err and f"{timeout!r}" in err


def test_a_small_timeout_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    """0.25 s passes the option check; the audit then stops at the missing store file."""
    assert main(["127.0.0.1:1", "--before", "/nonexistent/b.pem", "--after", "a.pem",
                 "--timeout", "0.25"]) == 2
    assert "/nonexistent/b.pem: cannot read" in capsys.readouterr().err


@pytest.fixture
def store_pem(tmp_path: Path) -> Path:
    """A PEM bundle of one lab root."""
    root = issue("CLI Lab Root", new_key(), ca=True)
    (tmp_path / "store.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return tmp_path / "store.pem"


def test_a_one_label_host_argument_is_audited(
    store_pem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    code = main([f"broker:{port}", f"https://gateway:{port}/api", "--resolve",
                 f"broker:{port}:127.0.0.1", "--resolve", f"gateway:{port}:127.0.0.1",
                 "--before", str(store_pem), "--after", str(store_pem), "--json"])
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [(r["endpoint"], r["source"], r["reason"]) for r in rows] == [
        (f"broker:{port}", "argument", "unreachable: connection refused"),
        (f"gateway:{port}", "argument", "unreachable: connection refused"),
    ]
    assert code == 2 and "not a host name" not in err


def test_help_documents_verdicts_reasons_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    epilog = text[text.index("\nverdicts"):]
    for verdict in ("ok", "fail", "unknown"):
        assert f"\n  {verdict} " in epilog
    for code in (0, 1, 2):
        assert f"\n  {code}  " in epilog
    assert "unresolvable wildcard" in epilog and "no saved chain" in epilog


def test_unknown_verdicts_are_the_documented_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wildcard nothing matches and an endpoint without a saved chain are `unknown`, with
    the reasons the --help epilog names (checked above); a judged endpoint beside them
    keeps exit code 0."""
    web = LabWeb.create()
    chains = tmp_path / "chains"
    chains.mkdir()
    (chains / "kept.lab.test_443.pem").write_bytes(web.chain_pem("kept.lab.test"))
    (tmp_path / "store.pem").write_bytes(pem(web.kept.cert))
    (tmp_path / "app_manifest.json").write_text(
        json.dumps({"Capabilities": {"AllowedConnections": ["*.wild.lab.test"]}}))
    store = str(tmp_path / "store.pem")
    code = main(["kept.lab.test", "missing.lab.test", "--manifest",
                 str(tmp_path / "app_manifest.json"), "--chains", str(chains),
                 "--before", store, "--after", store, "--json"])
    rows = {row["endpoint"]: row for row in json.loads(capsys.readouterr().out)}
    assert code == 0
    assert (rows["kept.lab.test:443"]["before"], rows["kept.lab.test:443"]["after"]) == (
        "ok", "ok")
    unknown = [rows["*.wild.lab.test:443"], rows["missing.lab.test:443"]]
    assert [(r["before"], r["after"]) for r in unknown] == [("unknown", "unknown")] * 2
    assert unknown[0]["reason"].startswith("unresolvable wildcard: ")
    assert unknown[1]["reason"] == "no saved chain missing.lab.test_443.pem"


# -- authenticating store images (--store-cert, --store-keystore with --root-pubkey) --------


@dataclass(frozen=True)
class StoreLab:
    """Store files and trust material in one folder; `audit` runs the CLI in process on a
    saved chain that the kept root vouches for."""

    folder: Path
    pki: LabPki

    def audit(self, before: str, after: str, *trust: str | Path) -> int:
        return main(["kept.lab.test", "--chains", str(self.folder / "chains"),
                     "--before", str(self.folder / before), "--after", str(self.folder / after),
                     "--json", *map(str, trust)])

    @property
    def cert(self) -> list[str | Path]:
        return ["--store-cert", self.pki.folder / "image-signing.pem"]

    def keystore(self, name: str = "keystore.imagepackage",
                 root: Path | None = None) -> list[str | Path]:
        return ["--store-keystore", self.folder / name,
                "--root-pubkey", root or self.pki.folder / "root.pub.pem"]


@pytest.fixture(scope="module")
def store_lab(tmp_path_factory: pytest.TempPathFactory, lab_pki: LabPki) -> StoreLab:
    folder = tmp_path_factory.mktemp("store-auth")
    web = LabWeb.create()
    (folder / "chains").mkdir()
    (folder / "chains" / "kept.lab.test_443.pem").write_bytes(web.chain_pem("kept.lab.test"))
    (folder / "roots.pem").write_bytes(pem(web.old.cert, web.kept.cert))
    signed = store_image([web.kept], lab_pki.signer("image-signing"))
    (folder / "signed.imagepackage").write_bytes(signed)
    at = 100  # a byte of the payload (the filesystem holding the roots), after its header
    (folder / "tampered.imagepackage").write_bytes(
        signed[:at] + bytes([signed[at] ^ 1]) + signed[at + 1:])
    stranger_key = new_key()
    stranger = Signer(stranger_key, issue("Stranger Image Signing", stranger_key))
    (folder / "stranger.imagepackage").write_bytes(store_image([web.kept], stranger))
    (folder / "keystore.imagepackage").write_bytes(keystore_image(lab_pki))
    (folder / "apps-only-keystore.imagepackage").write_bytes(
        keystore_image(lab_pki, [ImageType.Applications]))
    (folder / "other-root.pem").write_bytes(new_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (folder / "garbage.pem").write_bytes(b"not a certificate\n")
    return StoreLab(folder, lab_pki)


def test_store_images_authenticated_by_certificate_or_keystore(
    store_lab: StoreLab, capsys: pytest.CaptureFixture[str]
) -> None:
    for trust in (store_lab.cert, store_lab.keystore()):
        assert store_lab.audit("roots.pem", "signed.imagepackage", *trust) == 0
        out, err = capsys.readouterr()
        assert err == ""
        assert [(r["before"], r["after"]) for r in json.loads(out)] == [("ok", "ok")]


def test_unauthenticated_store_images_get_one_note(
    store_lab: StoreLab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert store_lab.audit("signed.imagepackage", "signed.imagepackage") == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "audit-endpoints: note: store images read without checking their signatures: ")
    assert lines[0].count("signed.imagepackage") == 2  # both stores named, one line
    assert store_lab.audit("roots.pem", "roots.pem") == 0
    assert capsys.readouterr().err == ""  # PEM bundles carry no signature to check


@pytest.mark.parametrize(
    ("after", "trust", "reason"),
    [("tampered.imagepackage", "cert", "store image not authenticated: signature does not"),
     ("stranger.imagepackage", "cert", "store image not authenticated: signer "),
     ("stranger.imagepackage", "keystore", "is not in the keystore"),
     ("signed.imagepackage", "apps-only-keystore", "may not sign UpdateCertStore images")],
)
def test_a_store_image_failing_authentication_is_bad_input(
    store_lab: StoreLab, after: str, trust: str, reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = store_lab.cert if trust == "cert" else store_lab.keystore(f"{trust}.imagepackage")
    assert store_lab.audit("roots.pem", after, *options) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"audit-endpoints: error: {store_lab.folder / after}: ")
    assert reason in err


def test_unusable_trust_material_is_bad_input(
    store_lab: StoreLab, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = store_lab.folder
    cases: list[tuple[list[str | Path], str]] = [
        (["--store-cert", folder / "garbage.pem"], f"{folder / 'garbage.pem'}: not a PEM"),
        (["--store-cert", folder / "absent.pem"], f"{folder / 'absent.pem'}: cannot read"),
        (store_lab.keystore(root=folder / "other-root.pem"),
         f"{folder / 'keystore.imagepackage'}: keystore not usable: keystore root key does "
         "not match"),
        (store_lab.keystore(root=folder / "garbage.pem"), f"{folder / 'garbage.pem'}: holds no"),
        (store_lab.keystore("signed.imagepackage"), "keystore not usable: expected a "
                                                    "TrustedKeystore image"),
    ]
    for options, message in cases:
        assert store_lab.audit("roots.pem", "signed.imagepackage", *options) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    "options",
    [["--store-keystore", "ks.imagepackage"], ["--root-pubkey", "root.pub.pem"],
     ["--store-cert", "c.pem", "--store-keystore", "ks", "--root-pubkey", "r.pem"]],
)
def test_trust_options_that_do_not_go_together_are_usage_errors(
    options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["kept.lab.test", "--before", "b.pem", "--after", "a.pem", *options])
    assert stop.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- output into a pipe whose reader leaves early (`| head -1`) ----------------------------


@pytest.mark.parametrize(("output", "first_line"), [(["--json"], b"[\n"), ([], b"ENDPOINT ")])
def test_a_reader_that_stops_early_gets_no_traceback(
    store_lab: StoreLab, output: list[str], first_line: bytes
) -> None:
    """Thousands of rows (far more than a pipe holds); the reader takes one line and closes
    the pipe. The audit still ends with its own exit code (0: kept.lab.test judged ok, the
    others without a saved chain) and nothing on stderr."""
    folder = store_lab.folder
    hosts = [f"host{i:04d}.lab.test" for i in range(3000)]
    command = [sys.executable, str(CLI), "kept.lab.test", *hosts, "--chains",
               str(folder / "chains"), "--before", str(folder / "roots.pem"),
               "--after", str(folder / "roots.pem"), *output]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=REPO) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert first.startswith(first_line)
    assert err == "" and code == 0


@pytest.mark.parametrize("option", ["--app", "--elf", "--manifest"])
def test_an_input_that_cannot_be_read_is_one_line_and_nothing_judged(
    option: str, tmp_path: Path, store_pem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file or a folder named as an app, ELF or manifest: a mistake on the command
    line, one line and exit 2, no table (nothing half judged)."""
    for path in (tmp_path / "absent", tmp_path):
        assert main([option, str(path), "--before", str(store_pem), "--after",
                     str(store_pem)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, (out, err)
        assert err.startswith(f"audit-endpoints: error: {path}: cannot read"), err


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_a_saved_chain_that_is_no_small_regular_file_is_refused_not_read(
    kind: str, tmp_path: Path, store_pem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--chains DIR` whose HOST_PORT.pem is a FIFO nobody writes, a device, or a sparse file
    of gigabytes: one line, exit 2, at once (not a hang, not all of memory)."""
    chains = tmp_path / "chains"
    chains.mkdir()
    saved = chains / "odd.test_443.pem"
    if kind == "fifo":
        os.mkfifo(saved)
    elif kind == "device":
        saved.symlink_to("/dev/zero")
    else:
        with saved.open("wb") as sparse:
            sparse.truncate(3 << 30)
    code = main(["odd.test:443", "--chains", str(chains), "--before", str(store_pem),
                 "--after", str(store_pem)])
    _, err = capsys.readouterr()
    reason = "larger than 1,048,576 bytes" if kind == "huge" else "not a regular file"
    assert code == 2 and f"{saved}: cannot read ({reason})" in err
