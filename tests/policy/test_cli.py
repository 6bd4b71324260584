"""The one CLI policy (policy/cli.py): exit codes from error kinds, one-line usage errors and
failures, interrupts, generated epilogs; and every command of the project following it."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from policy.cli import (
    MEANINGS,
    ExitCode,
    OneLineParser,
    epilog,
    exit_code,
    iso_datetime,
    run_guarded,
)
from policy.errors import BadInput, Busy, HardwareFault, Refused, Unavailable

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Both(Refused, BadInput):
    """An error of two kinds: the first of policy.errors.KINDS (BadInput) decides."""


@pytest.mark.parametrize(("error", "code"), [
    (Refused("x"), ExitCode.REFUSED), (BadInput("x"), ExitCode.BAD_INPUT),
    (Unavailable("x"), ExitCode.UNAVAILABLE), (HardwareFault("x"), ExitCode.HARDWARE),
    (Busy("x"), ExitCode.BUSY), (KeyboardInterrupt(), ExitCode.INTERRUPTED),
    (Both("x"), ExitCode.BAD_INPUT),
])
def test_the_kind_decides_the_exit_code(error: BaseException, code: ExitCode) -> None:
    assert exit_code(error) is code


def test_a_failure_is_one_line_with_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise Refused("signature\n  does not verify")

    assert run_guarded("prog", body) == ExitCode.REFUSED
    assert capsys.readouterr().err == "prog: error: signature does not verify\n"


def test_an_unreadable_file_is_bad_input_naming_it(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    missing = tmp_path / "nope.bin"
    assert run_guarded("prog", lambda: len(missing.read_bytes())) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.strip() == (f"prog: error: cannot read or write {missing}: "
                                               "No such file or directory")


def test_an_interrupt_names_the_state_left_behind(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise KeyboardInterrupt

    code = run_guarded("prog", body, on_interrupt=lambda: "device not updated")
    assert code == ExitCode.INTERRUPTED
    assert capsys.readouterr().err == "prog: interrupted: device not updated\n"


def test_a_bug_keeps_its_traceback() -> None:
    def body() -> int:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_guarded("prog", body)


def test_sigterm_interrupts_the_body_like_ctrl_c(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from policy.cli import run_guarded
        def body():
            print("ready", flush=True)
            time.sleep(30)
            return 0
        sys.exit(run_guarded("slow", body, on_interrupt=lambda: "nothing changed"))
    """))
    process = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == ExitCode.INTERRUPTED
    assert err == "slow: interrupted: nothing changed\n"


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = OneLineParser(prog="prog")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("go").add_argument("--n", type=int)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["go", "--n", "many"])
    assert stop.value.code == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("prog: error: argument --n: invalid int")


def test_the_epilog_is_made_from_the_codes() -> None:
    text = epilog({ExitCode.OK: "verify: valid"}, codes=[ExitCode.OK, ExitCode.REFUSED])
    assert f"  0    {MEANINGS[ExitCode.OK]} (verify: valid)" in text
    assert f"  1    {MEANINGS[ExitCode.REFUSED]}" in text
    assert "  2 " not in text


COMMANDS = {
    "fwmodel": [str(BIN / "fwmodel")],
    "imagetool": [str(BIN / "imagetool")],
    "audit_endpoints": [str(BIN / "audit-endpoints")],
    "hal.emulator": [sys.executable, "-m", "hal.emulator"],
    "imagetool (script)": [sys.executable, "tools/imagetool.py"],
    "audit_endpoints (script)": [sys.executable, "tools/audit_endpoints.py"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_speaks_the_policy(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path)}
    bad = subprocess.run([*COMMANDS[name], "--no-such-option"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env=env)
    assert bad.returncode == ExitCode.BAD_INPUT, bad.stderr
    assert bad.stdout == "" and bad.stderr.count("\n") == 1, bad.stderr
    assert ": error: " in bad.stderr and "Traceback" not in bad.stderr
    helped = subprocess.run([*COMMANDS[name], "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env=env)
    assert helped.returncode == 0
    codes = helped.stdout[helped.stdout.index("exit codes:"):]
    assert f"  2    {MEANINGS[ExitCode.BAD_INPUT]}" in codes


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_date_time_whose_offset_takes_it_past_the_calendar_is_a_usage_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"outside the years 1\.\.9999 in UTC"):
        iso_datetime(text)
