"""The virtual environment holding Microsoft's `azuresphere-imagemetadata`, and a way to ask it.

The package pins cryptography < 49, so it cannot share our venv: `make oracle` (which
`make test` runs first) creates `.venv-ms` at the repository root. The tests never install
anything (no network beyond loopback in a test): `ensure_ms_venv` only finds it, and says how to
make it when it is missing. `ask_microsoft` runs `ms_helper.py` there and returns the JSON it
prints.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MS_VENV = REPO / ".venv-ms"
MS_STAMP = MS_VENV / ".stamp"
MS_PYTHON = MS_VENV / "bin" / "python"
MS_REQUIREMENT = "azuresphere-imagemetadata==0.2.2"
HELPER = Path(__file__).resolve().parent / "ms_helper.py"


class OracleUnavailable(RuntimeError):
    """The Microsoft venv could not be created or its helper failed."""


def ensure_ms_venv() -> Path:
    """The Microsoft venv's python; OracleUnavailable (saying to run `make oracle`) if the venv
    `make oracle` makes is not there."""
    if not MS_STAMP.exists() or not MS_PYTHON.exists():
        raise OracleUnavailable(f"{MS_VENV} is missing: run `make oracle` (make test runs it "
                                f"first; it installs {MS_REQUIREMENT})")
    return MS_PYTHON


def ask_microsoft(python: Path, *args: str, timeout: float = 120) -> Any:
    """Run `ms_helper.py ARGS` with the Microsoft venv's `python`; its JSON answer."""
    done = subprocess.run([str(python), str(HELPER), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise OracleUnavailable(f"ms_helper {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)
