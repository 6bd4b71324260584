"""The audit's command line: option checking, output into pipes, the documented verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.tools.audit_lab import LabWeb, closed_port, pem
from tools.audit_endpoints import main
from tools.pki import issue, new_key


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
