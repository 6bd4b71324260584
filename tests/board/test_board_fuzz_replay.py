"""The fuzzer's committed corpus and every past crash, replayed once (no fuzzing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.board

BOARD = Path(__file__).resolve().parents[2] / "board"


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang (libFuzzer) not installed")
def test_fuzz_corpus_and_crashes_replay() -> None:
    result = subprocess.run(["make", "-s", "-C", str(BOARD), "fuzz-replay"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Done" in result.stderr
