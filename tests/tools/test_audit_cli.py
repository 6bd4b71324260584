"""The audit's command line: option checking, output into pipes, the documented verdicts."""

from __future__ import annotations

import pytest

from tools.audit_endpoints import main


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
