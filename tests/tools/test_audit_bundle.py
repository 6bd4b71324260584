"""Apps that bundle their own roots: the audit finds them in an Applications image (built
here with the recipe tooling) or in --app-roots, judges each endpoint against them too, and
a row breaks only when they do not verify it; Azure IoT Hub/DPS use the OS store whatever
the app bundles. Real TLS servers on 127.0.0.1, lab PKIs made in temporary folders."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.tools.audit_lab import NOW, Issued, LabTlsServer, LabWeb, elf32_arm, pem, store_image
from tools.audit.bundle import AppVerdict, os_store_only
from tools.audit.endpoints import Endpoint, Source
from tools.audit.report import Row, summary
from tools.audit_endpoints import main
from tools.pki import LabPki
from tools.recipes import build_from_recipe

SHT_PROGBITS, SHF_ALLOC = 1, 2
AT = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
HUB, DPS = "myhub.azure-devices.net", "global.azure-devices-provisioning.net"
RECIPE = """\
type = "Applications"
name = "{name}"
component_id = "{component}"
image_id = "{image}"
build_time = 2025-02-01T00:00:00Z

[app]
files = {{ {files} }}
"""


def der(issued: Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Lab:
    """Lab roots and servers, the two stores (the after store drops the old root, as the
    2025 store drops Baltimore), and a folder to build apps in."""

    web: LabWeb
    port: int
    before: Path
    after: Path
    folder: Path
    pki: LabPki

    def url(self, host: str) -> bytes:
        return f"https://{host}:{self.port}/api".encode()

    def elf(self, *hosts: str) -> bytes:
        """An ARM executable naming `https://HOST:PORT/api` for each host."""
        rodata = b"\0".join(self.url(host) for host in hosts) + b"\0"
        return elf32_arm([(".rodata", SHT_PROGBITS, SHF_ALLOC, rodata)])

    def app(self, name: str, hosts: tuple[str, ...], extra: dict[str, bytes]) -> Path:
        """An Applications image built from a recipe with `imagetool build`'s tooling: a
        manifest, an executable naming `hosts`, and the `extra` files (bundled roots)."""
        source = self.folder / name
        files = {"app_manifest.json": json.dumps({
            "SchemaVersion": 1, "Name": name, "EntryPoint": "/bin/app",
            "Capabilities": {"AllowedConnections": []}}).encode(),
            "bin/app": self.elf(*hosts), **extra}
        entries = []
        for index, (path, data) in enumerate(files.items()):
            (source / "files").mkdir(parents=True, exist_ok=True)
            (source / "files" / str(index)).write_bytes(data)
            entries.append(f'"{path}" = "files/{index}"')
        recipe = source / "app.toml"
        recipe.write_text(RECIPE.format(name=name, component=uuid.uuid4(), image=uuid.uuid4(),
                                        files=", ".join(entries)))
        out = source / f"{name}.imagepackage"
        build_from_recipe(recipe, self.pki.folder, out)
        return out

    def resolve(self, *hosts: str) -> list[str]:
        return [f"--resolve={host}:{self.port}:127.0.0.1" for host in hosts]

    def audit(self, capsys: pytest.CaptureFixture[str], *args: str | Path,
              hosts: tuple[str, ...] = ()) -> tuple[int, dict[str, dict[str, object]], str]:
        """The CLI in process with --json: exit code, rows by host, stderr."""
        code = main([*map(str, args), *self.resolve(*hosts), "--before", str(self.before),
                     "--after", str(self.after), "--at", AT, "--json"])
        out, err = capsys.readouterr()
        rows = {row["endpoint"].rpartition(":")[0]: row for row in json.loads(out)} if out else {}
        return code, rows, err


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_pki: LabPki) -> Iterator[Lab]:
    web = LabWeb.create()
    old_ca = web.chains["removed.lab.test"][1]
    web.serve(HUB, old_ca)
    web.serve(DPS, old_ca)
    folder = tmp_path_factory.mktemp("bundle")
    (folder / "before.pem").write_bytes(pem(web.old.cert, web.kept.cert, web.expiring.cert))
    (folder / "kept.pem").write_bytes(pem(web.kept.cert))
    (folder / "after.imagepackage").write_bytes(
        store_image([web.kept, web.expiring], lab_pki.signer("image-signing")))
    with LabTlsServer(web, folder / "tls") as server:
        yield Lab(web, server.port, folder / "before.pem", folder / "after.imagepackage",
                  folder, lab_pki)


HOSTS = ("removed.lab.test", "kept.lab.test")


def test_an_app_bundling_the_dropped_root_is_at_risk_and_exits_0(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("bundles-old", HOSTS, {"certs/old.pem": pem(lab.web.old.cert)})
    code, rows, _ = lab.audit(capsys, "--app", app, hosts=HOSTS)
    removed, kept = rows["removed.lab.test"], rows["kept.lab.test"]
    assert (removed["before"], removed["after"], removed["app_bundle"]) == ("ok", "fail", "ok")
    assert (removed["at_risk"], removed["breaks"], removed["os_store_only"]) == (
        True, False, False)
    assert removed["anchor_app_bundle"] == "Lab Old Root (certs/old.pem)"
    assert removed["note"] == "at risk: breaks if the app reaches it through the OS store"
    # the kept host chains to a root the app does not bundle: its bundle fails, says why
    assert (kept["before"], kept["after"], kept["app_bundle"]) == ("ok", "ok", "fail")
    assert kept["app_bundle_reason"] == "no path to the bundled roots (chain ends at " \
                                        "Lab Kept Root)"
    assert (kept["at_risk"], kept["breaks"], kept["note"]) == (False, False, None)
    assert code == 0


def test_naming_an_apps_endpoint_on_the_command_line_too_keeps_its_bundle(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("named-too", HOSTS[:1], {"certs/old.pem": pem(lab.web.old.cert)})
    code, rows, _ = lab.audit(capsys, "--app", app, f"removed.lab.test:{lab.port}",
                              hosts=HOSTS[:1])
    removed = rows["removed.lab.test"]
    assert removed["source"] == "elf,argument"
    assert (removed["app_bundle"], removed["at_risk"], removed["note"]) == (
        "ok", True, "at risk: breaks if the app reaches it through the OS store")
    assert code == 0
    # with --app-roots the command line brings roots of its own: the weaker one stands
    code, rows, _ = lab.audit(capsys, "--app", app, f"removed.lab.test:{lab.port}",
                              "--app-roots", lab.folder / "kept.pem", hosts=HOSTS[:1])
    removed = rows["removed.lab.test"]
    assert (removed["app_bundle"], removed["breaks"]) == ("fail", True)
    assert removed["note"] == f"bundles differ ({app}: ok; --app-roots: fail)"
    assert code == 1


def test_the_same_app_without_the_bundled_root_breaks_and_exits_1(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("bundles-nothing", HOSTS, {"README.txt": b"no certificates here\n"})
    code, rows, _ = lab.audit(capsys, "--app", app, hosts=HOSTS)
    removed = rows["removed.lab.test"]
    assert (removed["before"], removed["after"], removed["app_bundle"]) == ("ok", "fail", "none")
    assert (removed["breaks"], removed["at_risk"], removed["anchor_app_bundle"]) == (
        True, False, None)
    assert rows["kept.lab.test"]["app_bundle"] == "none"
    assert code == 1


def test_a_bundled_root_that_does_not_verify_the_chain_is_fail_and_breaks(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("bundles-kept", HOSTS, {"certs/kept.pem": pem(lab.web.kept.cert)})
    code, rows, _ = lab.audit(capsys, "--app", app, hosts=HOSTS)
    removed = rows["removed.lab.test"]
    assert (removed["app_bundle"], removed["breaks"], removed["at_risk"]) == ("fail", True, False)
    assert removed["app_bundle_reason"] == "no path to the bundled roots (chain ends at " \
                                           "Lab Old Root)"
    assert rows["kept.lab.test"]["app_bundle"] == "ok"
    assert code == 1


def test_iot_hub_and_dps_use_the_os_store_and_break_despite_a_bundled_root(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("iot", (HUB, DPS), {"certs/old.pem": pem(lab.web.old.cert)})
    code, rows, _ = lab.audit(capsys, "--app", app, hosts=(HUB, DPS))
    for host in (HUB, DPS):
        row = rows[host]
        assert (row["before"], row["after"], row["app_bundle"]) == ("ok", "fail", "ok")
        assert (row["os_store_only"], row["breaks"], row["at_risk"]) == (True, True, False)
        assert row["note"] == ("Azure IoT Hub/DPS: the Azure IoT C SDK on Azure Sphere "
                               "verifies it against the OS store; bundled roots do not apply")
    assert code == 1


def test_der_and_pem_files_anywhere_in_the_image_are_found(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("der-and-pem", HOSTS, {"certs/old.der": der(lab.web.old),
                                         "etc/ssl/kept.crt": pem(lab.web.kept.cert)})
    code, rows, _ = lab.audit(capsys, "--app", app, hosts=HOSTS)
    assert rows["removed.lab.test"]["anchor_app_bundle"] == "Lab Old Root (certs/old.der)"
    assert rows["kept.lab.test"]["anchor_app_bundle"] == "Lab Kept Root (etc/ssl/kept.crt)"
    assert [rows[h]["app_bundle"] for h in HOSTS] == ["ok", "ok"]
    assert code == 0


def test_roots_compiled_into_the_executable_are_found(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PEM string (wolfSSL_CTX_load_verify_buffer) and a DER byte array in .rodata."""
    rodata = b"\0".join([lab.url("removed.lab.test"), lab.url("kept.lab.test"),
                         pem(lab.web.old.cert), b"pad", der(lab.web.kept)]) + b"\0"
    elf = elf32_arm([(".rodata", SHT_PROGBITS, SHF_ALLOC, rodata)])
    (lab.folder / "compiled-in.elf").write_bytes(elf)
    code, rows, _ = lab.audit(capsys, "--elf", lab.folder / "compiled-in.elf",
                              "--app-roots", lab.folder / "compiled-in.elf", hosts=HOSTS)
    assert rows["removed.lab.test"]["anchor_app_bundle"] == (
        f"Lab Old Root ({lab.folder / 'compiled-in.elf'})")
    assert rows["kept.lab.test"]["anchor_app_bundle"] == (
        f"Lab Kept Root ({lab.folder / 'compiled-in.elf'})")
    assert code == 0


def test_a_server_certificate_in_the_image_is_no_root_and_a_broken_pem_is_a_problem(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = lab.web.chains["removed.lab.test"][0].cert
    broken = b"-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----\n"
    app = lab.app("leaf-only", HOSTS, {"certs/client.pem": pem(leaf), "certs/bad.pem": broken})
    code, rows, err = lab.audit(capsys, "--app", app, hosts=HOSTS)
    assert [rows[h]["app_bundle"] for h in HOSTS] == ["none", "none"]
    assert err.count("\n") == 2 and err.startswith("audit-endpoints: note: ")  # after: image
    assert f"{app}:certs/bad.pem: a PEM certificate at byte 0 does not parse" in err
    assert code == 1


def test_app_roots_for_elf_and_manifest_input(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    elf, roots = lab.folder / "loose.elf", lab.folder / "roots"
    elf.write_bytes(lab.elf(*HOSTS))
    roots.mkdir()
    (roots / "old.der").write_bytes(der(lab.web.old))
    (roots / "notes.txt").write_text("the roots the app loads with CURLOPT_CAINFO\n")
    code, rows, _ = lab.audit(capsys, "--elf", elf, "--app-roots", roots, hosts=HOSTS)
    removed = rows["removed.lab.test"]
    assert (removed["app_bundle"], removed["at_risk"], removed["breaks"]) == ("ok", True, False)
    assert removed["anchor_app_bundle"] == f"Lab Old Root ({roots / 'old.der'})"
    assert code == 0
    # an endpoint named on the command line is judged against them too
    code, rows, _ = lab.audit(capsys, f"removed.lab.test:{lab.port}", "--app-roots",
                              roots / "old.der", hosts=("removed.lab.test",))
    assert rows["removed.lab.test"]["at_risk"] is True and code == 0
    code, rows, _ = lab.audit(capsys, "--elf", elf, hosts=HOSTS)
    assert rows["removed.lab.test"]["app_bundle"] == "none" and code == 1


@pytest.mark.parametrize(("name", "message"), [
    ("absent.pem", "absent.pem: cannot read"),
    ("empty.txt", "empty.txt: no CA or self-signed certificate (PEM or DER)"),
    ("broken.pem", "broken.pem: a PEM certificate at byte 0 does not parse"),
    ("/dev/zero", "/dev/zero: not a file or a folder"),
])
def test_app_roots_that_hold_no_root_are_bad_input(
    lab: Lab, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    (lab.folder / "empty.txt").write_text("nothing\n")
    (lab.folder / "broken.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    code, rows, err = lab.audit(capsys, "kept.lab.test", "--app-roots", lab.folder / name)
    assert code == 2 and rows == {}
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_app_roots_without_loose_input_is_a_usage_error(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("usage", HOSTS, {})
    with pytest.raises(SystemExit) as stop:
        lab.audit(capsys, "--app", app, "--app-roots", lab.before)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--app-roots goes with --elf, --manifest or ENDPOINT" in err


def test_two_apps_naming_one_endpoint_fare_as_the_weaker(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    bundles = lab.app("a-bundles", HOSTS[:1], {"certs/old.pem": pem(lab.web.old.cert)})
    plain = lab.app("b-plain", HOSTS[:1], {})
    code, rows, _ = lab.audit(capsys, "--app", bundles, "--app", plain, hosts=HOSTS[:1])
    removed = rows["removed.lab.test"]
    assert (removed["app_bundle"], removed["breaks"]) == ("none", True)
    assert removed["note"] == f"bundles differ ({bundles}: ok; {plain}: none)"
    assert code == 1


def test_the_table_shows_the_bundle_the_outcome_and_counts_what_it_judged(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    app = lab.app("table", (*HOSTS, HUB), {"certs/old.pem": pem(lab.web.old.cert)})
    missing = "missing.lab.test"  # no --resolve: off loopback, so no chain (unknown)
    code = main(["--app", str(app), missing, *lab.resolve(*HOSTS, HUB), "--before",
                 str(lab.before), "--after", str(lab.after), "--at", AT])
    lines = capsys.readouterr().out.splitlines()
    assert re.split(r"\s{2,}", lines[0])[:6] == [
        "ENDPOINT", "SOURCE", "BEFORE", "AFTER", "APP BUNDLE", "OUTCOME"]
    cells = {line.split()[0].rpartition(":")[0]: line.split() for line in lines[1:5]}
    assert cells["removed.lab.test"][2:6] == ["ok", "fail", "ok", "at"]  # "at risk"
    assert lines[1 + list(cells).index("removed.lab.test")].endswith(
        "at risk: breaks if the app reaches it through the OS store")
    assert cells["kept.lab.test"][2:6] == ["ok", "ok", "fail", "-"]
    assert lines[1 + list(cells).index("kept.lab.test")].endswith(
        "Lab Kept Root  app bundle: no path to the bundled roots (chain ends at Lab Kept Root)")
    assert cells[HUB][2:6] == ["ok", "fail", "ok", "breaks"]
    assert cells[missing][1:6] == ["argument", "unknown", "unknown", "none", "-"]
    at = NOW.strftime("%Y-%m-%d %H:%M:%S")
    assert lines[5:] == [
        f"4 endpoints at {at}Z, 3 with a chain judged: before 3 ok, 0 fail, 1 unknown; "
        "after 1 ok, 2 fail, 1 unknown; app bundle 2 ok, 1 fail, 0 unknown, 1 none",
        "1 endpoint breaks with the new store, 1 endpoint at risk (ok only through the "
        "app's bundled roots)",
    ]
    assert code == 1


def test_help_documents_the_new_columns_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    epilog = text[text.index("\nverdicts"):]
    for word in ("app_bundle", "anchor_app_bundle", "app_bundle_reason", "at_risk", "breaks",
                 "os_store_only", "APP BUNDLE", "OUTCOME", "--app-roots",
                 "*.azure-devices.net", "global.azure-devices-provisioning.net"):
        assert word in epilog, word
    for value in ("ok", "fail", "none", "unknown", "breaks", "at risk"):
        assert f"\n  {value} " in epilog, value
    codes = epilog[epilog.index("exit codes:"):]
    assert "at risk does not count" in codes.splitlines()[1]
    assert "bundled roots do not verify it" in codes.splitlines()[2]
    assert "2025-05-12" in text  # why --at matters



@pytest.mark.parametrize(("host", "expected"), [
    (HUB, True), ("*.azure-devices.net", True), (DPS, True), ("azure-devices.net", False),
    ("myhub.azure-devices.net.lab.test", False), ("evilazure-devices.net", False),
    ("other.azure-devices-provisioning.net", False),
])
def test_iot_hub_and_dps_names(host: str, expected: bool) -> None:
    assert os_store_only(Endpoint(host)) is expected


def _row(before: str, after: str, app: str = "none") -> Row:
    return Row(Endpoint("x.lab.test"), (Source.ARGUMENT,), before, after,
               judged=before != "unknown", app=AppVerdict(app))


def test_the_summary_counts_with_plurals() -> None:
    at = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    one = summary([_row("ok", "fail")], at)
    assert one == [
        "1 endpoint at 2025-03-01 00:00:00Z, 1 with a chain judged: before 1 ok, 0 fail, "
        "0 unknown; after 0 ok, 1 fail, 0 unknown; app bundle 0 ok, 0 fail, 0 unknown, 1 none",
        "1 endpoint breaks with the new store, 0 endpoints at risk (ok only through the app's "
        "bundled roots)"]
    two = summary([_row("ok", "fail"), _row("ok", "fail"), _row("ok", "fail", "ok"),
                   _row("ok", "fail", "ok"), _row("unknown", "unknown")], at)
    assert two[0].startswith("5 endpoints at 2025-03-01 00:00:00Z, 4 with a chain judged: "
                             "before 4 ok, 0 fail, 1 unknown; after 0 ok, 4 fail, 1 unknown; "
                             "app bundle 2 ok, 0 fail, 0 unknown, 3 none")
    assert two[1].startswith("2 endpoints break with the new store, 2 endpoints at risk")
    assert summary([], at) == [
        "0 endpoints at 2025-03-01 00:00:00Z, 0 with a chain judged: before 0 ok, 0 fail, "
        "0 unknown; after 0 ok, 0 fail, 0 unknown; app bundle 0 ok, 0 fail, 0 unknown, 0 none",
        "0 endpoints break with the new store, 0 endpoints at risk (ok only through the app's "
        "bundled roots)"]
