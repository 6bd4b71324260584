"""The virtual environment holding Microsoft's `azuresphere-imagemetadata`, and a way to ask it.

The package pins cryptography < 49, so it cannot share our venv. `ensure_ms_venv` creates
`.venv-ms` at the repository root with the same commands as `make oracle` (and the same stamp
file), once, under a file lock so concurrent test runs do not race. `ask_microsoft` runs
`ms_helper.py` there and returns the JSON it prints.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
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


def _base_python() -> str:
    found = shutil.which("python3.11")
    if found:
        return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise OracleUnavailable("python3.11 is needed to create .venv-ms and was not found")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise OracleUnavailable(f"{' '.join(command)} failed: {' | '.join(tail)}")


def ensure_ms_venv() -> Path:
    """The Microsoft venv's python, creating the venv first if its stamp is missing.

    Raises OracleUnavailable with the failing command and its last output lines.
    """
    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"sphere-fwmodel-venv-ms-{tag}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not MS_STAMP.exists():
            _run([_base_python(), "-m", "venv", str(MS_VENV)])
            _run([str(MS_PYTHON), "-m", "pip", "install", "-q", MS_REQUIREMENT])
            MS_STAMP.touch()
    return MS_PYTHON


def ask_microsoft(python: Path, *args: str, timeout: float = 120) -> Any:
    """Run `ms_helper.py ARGS` with the Microsoft venv's `python`; its JSON answer."""
    done = subprocess.run([str(python), str(HELPER), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise OracleUnavailable(f"ms_helper {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)
