"""The fuzzer's committed corpus and every past crash, replayed once (no fuzzing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.board

BOARD = Path(__file__).resolve().parents[2] / "board"


def _libfuzzer_missing() -> str | None:
    if shutil.which("clang") is None:
        return "clang not installed (make board-tools installs it as root)"
    resource = subprocess.run(["clang", "-print-resource-dir"], capture_output=True, text=True)
    lib = Path(resource.stdout.strip()) / "lib" / "linux" / "libclang_rt.fuzzer-x86_64.a"
    return None if lib.exists() else f"libFuzzer ({lib.name}) not installed: libclang-rt-14-dev"


def test_fuzz_corpus_and_crashes_replay() -> None:
    reason = _libfuzzer_missing()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(["make", "-s", "-C", str(BOARD), "fuzz-replay"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Done" in result.stderr
