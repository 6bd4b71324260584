"""The virtual environment holding Microsoft's device REST API client, and a way to drive it.

`azuresphere-device-api` 1.1.1 pins requests==2.26.0 and imports `packaging` without declaring
it, so it lives in `.venv-api`, which `make api-client` (and so `make test`) creates. The tests
never install anything: `ensure_api_venv` only finds it and says how to make it when it is
missing. `drive` runs `device_api_helper.py` there, under the tests' network guard and without
proxy settings (a proxy would be a connection off loopback), and returns its results.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
API_VENV = REPO / ".venv-api"
API_STAMP = API_VENV / ".stamp"
API_PYTHON = API_VENV / "bin" / "python"
API_REQUIREMENT = "azuresphere-device-api==1.1.1"
HELPER = Path(__file__).resolve().parent / "device_api_helper.py"
GUARD = REPO / "tests" / "netguard"
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class ClientUnavailable(RuntimeError):
    """The client's venv is missing or its helper failed."""


def ensure_api_venv() -> Path:
    """The client venv's python; ClientUnavailable (saying to run `make api-client`) if the
    venv is not there."""
    if not API_STAMP.exists() or not API_PYTHON.exists():
        raise ClientUnavailable(f"{API_VENV} is missing: run `make api-client` (make test runs "
                                f"it first; it installs {API_REQUIREMENT})")
    return API_PYTHON


@dataclass(frozen=True)
class Server:
    """Where a `fwmodel serve-api` serves: its `device` (ADDRESS:PORT) and its CA."""

    device: str
    ca: Path

    @classmethod
    def from_first_line(cls, line: str) -> Server:
        """From `https://127.0.0.1:PORT ca=PATH`."""
        url, _, ca = line.strip().partition(" ca=")
        return cls(url.removeprefix("https://"), Path(ca))


def guarded_environment() -> dict[str, str]:
    """This environment with the network guard on PYTHONPATH and no proxy settings."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXIES}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(GUARD), *(p for p in paths if p != str(GUARD))])
    return env


def drive(python: Path, server: Server | None, calls: Sequence[Sequence[Any]],
          timeout: float = 120) -> list[dict[str, Any]]:
    """Run `calls` with Microsoft's client pointed at `server` (None: left at the client's
    defaults); a result per call (`device_api_helper` module doc)."""
    args = [] if server is None else ["--device", server.device, "--ca", str(server.ca)]
    done = subprocess.run([str(python), str(HELPER), *args], input=json.dumps(list(calls)),
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env=guarded_environment())
    if done.returncode != 0:
        raise ClientUnavailable(f"device_api_helper failed ({done.returncode}): "
                                f"{done.stderr.strip()[-2000:]}")
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results
