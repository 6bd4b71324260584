"""The audit end to end against real TLS servers on 127.0.0.1 (lab PKIs), in process and
through the command line: verdicts, anchors, reasons, exit codes, one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.audit_lab import (
    NOW,
    LabTlsServer,
    LabWeb,
    closed_port,
    dropping_server,
    keystore_image,
    pem,
    store_image,
)
from tools.audit.chains import parse_resolve
from tools.audit.report import Row
from tools.audit.runner import AuditRequest, AuditResult, run_audit
from tools.pki import LabPki

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "tools" / "audit_endpoints.py"


@pytest.fixture(scope="module")
def web() -> LabWeb:
    return LabWeb.create()


@pytest.fixture(scope="module")
def server(web: LabWeb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabTlsServer]:
    with LabTlsServer(web, tmp_path_factory.mktemp("tls")) as running:
        yield running


@pytest.fixture(scope="module")
def drop_port() -> Iterator[int]:
    with dropping_server() as port:
        yield port


@pytest.fixture(scope="module")
def stores(web: LabWeb, lab_pki: LabPki, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, Path]:
    """Before: a PEM bundle of the three lab roots. After: an UpdateCertStore image without
    the old root, built and signed with our tools."""
    folder = tmp_path_factory.mktemp("stores")
    (folder / "before.pem").write_bytes(pem(web.old.cert, web.kept.cert, web.expiring.cert))
    (folder / "after.imagepackage").write_bytes(
        store_image([web.kept, web.expiring], lab_pki.signer("image-signing")))
    return folder / "before.pem", folder / "after.imagepackage"


def live(web: LabWeb, port: int, extra: list[str]) -> tuple[list[str], list[str]]:
    """Host arguments for every lab host on `port`, and --resolve entries to 127.0.0.1."""
    hosts = [f"{host}:{port}" for host in web.chains] + extra
    return hosts, [f"{host}:127.0.0.1" for host in hosts]


def audit(stores: tuple[Path, Path], hosts: list[str], resolve: list[str],
          at: dt.datetime | None = None) -> AuditResult:
    return run_audit(AuditRequest(before=stores[0], after=stores[1], hosts=hosts, at=at,
                                  resolve=dict(parse_resolve(r) for r in resolve), timeout=5))


def by_host(result: AuditResult) -> dict[str, Row]:
    return {row.endpoint.host: row for row in result.rows}


def test_live_audit_with_the_old_root_removed(
    web: LabWeb, server: LabTlsServer, drop_port: int, stores: tuple[Path, Path]
) -> None:
    closed = closed_port()
    hosts, resolve = live(web, server.port, [f"closed.lab.test:{closed}",
                                             f"drop.lab.test:{drop_port}"])
    result = audit(stores, hosts, resolve)
    rows = {host: (r.before, r.after, r.anchor_before, r.anchor_after, r.reason)
            for host, r in by_host(result).items()}
    assert rows == {
        "removed.lab.test": ("ok", "fail", "Lab Old Root", None,
                             "no path to the store (chain ends at Lab Old Root)"),
        "kept.lab.test": ("ok", "ok", "Lab Kept Root", "Lab Kept Root", None),
        "cross.lab.test": ("ok", "ok", "Lab Kept Root", "Lab Kept Root", None),
        "expiring.lab.test": ("ok", "ok", "Lab Expiring Root", "Lab Expiring Root", None),
        "mismatch.lab.test": ("fail", "fail", "Lab Kept Root", "Lab Kept Root",
                              "name mismatch: certificate is for other.lab.test"),
        "self.lab.test": ("fail", "fail", None, None, "self-signed: self.lab.test"),
        "closed.lab.test": ("fail", "fail", None, None, "unreachable: connection refused"),
        "drop.lab.test": ("fail", "fail", None, None, rows["drop.lab.test"][4]),
    }
    assert str(rows["drop.lab.test"][4]).startswith("unreachable: handshake dropped")
    assert [p.split(":")[0] for p in result.problems] == ["closed.lab.test", "drop.lab.test"]
    assert {row.as_json()["source"] for row in result.rows} == {"argument"}
    assert result.exit_code == 1


def test_a_root_expiring_before_the_audit_time_shows_up(
    web: LabWeb, server: LabTlsServer, stores: tuple[Path, Path]
) -> None:
    hosts, resolve = live(web, server.port, [])
    rows = by_host(audit(stores, hosts, resolve, at=NOW + dt.timedelta(days=60)))
    expiring = rows["expiring.lab.test"]
    assert (expiring.before, expiring.after) == ("fail", "fail")
    assert expiring.reason is not None
    assert expiring.reason.startswith("expired: Lab Expiring Root expired")
    assert (rows["kept.lab.test"].before, rows["kept.lab.test"].after) == ("ok", "ok")


def test_saved_chains_judge_like_live_ones(
    web: LabWeb, server: LabTlsServer, stores: tuple[Path, Path], tmp_path: Path
) -> None:
    hosts, resolve = live(web, server.port, [])
    live_rows = [row.as_json() for row in audit(stores, hosts, resolve).rows]
    saved = run_audit(AuditRequest(before=stores[0], after=stores[1], hosts=hosts,
                                   chains=web.save_chains(tmp_path, server.port)))
    assert [row.as_json() for row in saved.rows] == live_rows


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, CLI, *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def test_cli_json_and_exit_codes(
    web: LabWeb, server: LabTlsServer, stores: tuple[Path, Path], lab_pki: LabPki
) -> None:
    port = server.port
    common: list[str | Path] = ["--before", stores[0], "--after", stores[1], "--json",
              "--resolve", f"removed.lab.test:{port}:127.0.0.1",
              "--resolve", f"kept.lab.test:{port}:127.0.0.1"]
    breaks = cli(f"removed.lab.test:{port}", f"kept.lab.test:{port}", *common)
    assert breaks.returncode == 1, breaks.stderr
    assert breaks.stderr.splitlines() == [  # the after store is an image, not authenticated
        f"audit-endpoints: note: store images read without checking their signatures: "
        f"{stores[1]} (authenticate them with --store-cert or --store-keystore and "
        "--root-pubkey)"]
    rows = json.loads(breaks.stdout)
    assert [sorted(row) for row in rows] == [sorted(
        ["endpoint", "source", "before", "after", "anchor_before", "anchor_after", "reason",
         "app_bundle", "anchor_app_bundle", "app_bundle_reason", "breaks", "at_risk",
         "os_store_only", "note"])] * 2
    assert rows[0]["endpoint"] == f"removed.lab.test:{port}" and rows[0]["after"] == "fail"
    fine = cli(f"kept.lab.test:{port}", *common, "--store-cert",
               lab_pki.folder / "image-signing.pem")
    assert fine.returncode == 0 and fine.stderr == ""
    assert [row["after"] for row in json.loads(fine.stdout)] == ["ok"]


def test_cli_bad_inputs_get_one_line_each_and_the_audit_goes_on(
    web: LabWeb, stores: tuple[Path, Path], drop_port: int, tmp_path: Path, lab_pki: LabPki
) -> None:
    (tmp_path / "corrupt.imagepackage").write_bytes(b"\x00" * 300)
    (tmp_path / "notelf").write_text("#!/bin/sh\n")
    (tmp_path / "app_manifest.json").write_text("{AllowedConnections: nope")
    chains = web.save_chains(tmp_path / "chains")
    (chains / "garbage.lab.test_443.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nxx\n")
    (tmp_path / "keystore.imagepackage").write_bytes(keystore_image(lab_pki))
    result = cli("kept.lab.test", "garbage.lab.test", "--app", tmp_path / "corrupt.imagepackage",
                 "--elf", tmp_path / "notelf", "--manifest", tmp_path / "app_manifest.json",
                 "--chains", chains, "--before", stores[0], "--after", stores[1],
                 "--store-keystore", tmp_path / "keystore.imagepackage",
                 "--root-pubkey", lab_pki.folder / "root.pub.pem")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 4 and all(line.startswith("audit-endpoints: ") for line in lines)
    assert "corrupt.imagepackage: not an image package" in lines[0]
    assert "app_manifest.json: manifest is not JSON" in lines[1]
    assert "notelf: not an ELF file" in lines[2]
    assert "garbage.lab.test_443.pem: not a PEM chain" in lines[3]
    assert "Traceback" not in result.stderr
    table = result.stdout.splitlines()
    assert table[0].split()[:4] == ["ENDPOINT", "SOURCE", "BEFORE", "AFTER"]
    assert any(line.startswith("kept.lab.test:443") and " ok " in line for line in table)


def test_cli_exit_2_only_when_nothing_could_be_judged(
    stores: tuple[Path, Path], drop_port: int, tmp_path: Path, lab_pki: LabPki
) -> None:
    dropped = cli(f"drop.lab.test:{drop_port}", "--resolve",
                  f"drop.lab.test:{drop_port}:127.0.0.1", "--before", stores[0],
                  "--after", stores[1], "--store-cert", lab_pki.folder / "image-signing.pem")
    assert dropped.returncode == 2
    assert dropped.stderr.count("\n") == 1 and "handshake dropped" in dropped.stderr
    (tmp_path / "bad.imagepackage").write_bytes(b"garbage")
    bad_store = cli("kept.lab.test", "--before", tmp_path / "bad.imagepackage",
                    "--after", stores[1])
    assert bad_store.returncode == 2 and bad_store.stdout == ""
    assert bad_store.stderr.count("\n") == 1 and "bad.imagepackage" in bad_store.stderr
    bad_date = cli("kept.lab.test", "--at", "someday", "--before", stores[0],
                   "--after", stores[1])
    assert bad_date.returncode == 2 and bad_date.stderr.count("\n") == 1


def test_options_go_between_endpoints_as_with_curl(
    server: LabTlsServer, stores: tuple[Path, Path]
) -> None:
    port = server.port
    done = cli(f"removed.lab.test:{port}", "--resolve", f"removed.lab.test:{port}:127.0.0.1",
               f"kept.lab.test:{port}", "--resolve", f"kept.lab.test:{port}:127.0.0.1",
               "--before", stores[0], "--json", "--after", stores[1])
    assert done.returncode == 1, done.stderr
    assert [(row["endpoint"], row["after"]) for row in json.loads(done.stdout)] == [
        (f"removed.lab.test:{port}", "fail"), (f"kept.lab.test:{port}", "ok")]


def test_an_endpoint_off_loopback_is_never_connected_to(stores: tuple[Path, Path]) -> None:
    """Without --resolve the audit would reach the real host: it says why it judged nothing
    instead (and the tests' network guard would have refused the connection anyway)."""
    done = cli("example.com:443", "--before", stores[0], "--after", stores[1], "--json")
    row = json.loads(done.stdout)[0]
    assert (row["before"], row["after"]) == ("unknown", "unknown")
    assert "not a loopback address" in row["reason"] and "--resolve" in row["reason"]
    assert done.returncode == 2
