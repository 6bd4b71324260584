"""The whole suite: the network guard and nothing that reaches into a room.

Every test process, and every process a test starts, refuses connections off the loopback
interface (tests/netguard/sitecustomize.py, put on PYTHONPATH here). Fixtures live with the
rooms that use them (tests/<room>/conftest.py, shared ones in tests/fixtures.py), so that
`pytest tests/hal` imports neither the device model nor the tools.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

GUARD = Path(__file__).resolve().parent / "netguard"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(GUARD), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def _guard_this_process() -> None:
    """Load the guard here too (pytest itself did not start with it on PYTHONPATH)."""
    loaded = sys.modules.get("sitecustomize")
    if loaded is not None and Path(str(loaded.__file__)).parent == GUARD:
        return
    spec = importlib.util.spec_from_file_location("sitecustomize", GUARD / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["sitecustomize"] = module


_guard_this_process()
