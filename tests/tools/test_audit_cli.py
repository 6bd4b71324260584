"""The audit's command line: option checking, output into pipes, the documented verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.tools.audit_lab import closed_port
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
