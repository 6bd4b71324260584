"""The C core's SHA-256 (FLASH_HASH) and CRC-32 (every frame), with the CPU's instructions that
the native agent uses (SHA extensions, PCLMULQDQ; chosen at run time) and in portable C (the
firmware's), against hashlib and zlib: every length 0..1,000 and a few MiB, each in one call
and in pieces of pseudo-random sizes (board/check/digests.c)."""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.board

NATIVE = Path(__file__).resolve().parents[2] / "board" / "build" / "native"
BUILDS = {"digests": "ASan+UBSan, CPU instructions", "digests-release": "-O2, CPU instructions",
          "digests-portable": "ASan+UBSan, portable C"}
LONG = (1 << 20, 3 * (1 << 20) + 17, 5 * (1 << 20) - 1)


@pytest.fixture(scope="module")
def inputs() -> list[bytes]:
    rng = random.Random(20250201)
    return [rng.randbytes(n) for n in range(1001)] + [rng.randbytes(n) for n in LONG]


@pytest.fixture(scope="module", params=sorted(BUILDS))
def run(request: pytest.FixtureRequest, inputs: list[bytes]) -> tuple[str, list[str]]:
    """One build's output over all inputs: its path line, then a line per input."""
    tool = NATIVE / request.param
    if not tool.exists():
        pytest.skip(f"{tool} not built (make board)")
    blob = b"".join(struct.pack("<I", len(data)) + data for data in inputs)
    result = subprocess.run([str(tool)], input=blob, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    lines = result.stdout.decode().splitlines()
    return request.param, lines


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags")
            for flag in line.split(":", 1)[1].split()}


def test_digests_match_hashlib_and_zlib_whole_and_in_pieces(
        run: tuple[str, list[str]], inputs: list[bytes]) -> None:
    _, lines = run
    assert len(lines) == 1 + len(inputs)
    wrong = []
    for data, line in zip(inputs, lines[1:], strict=True):
        sha, crc = hashlib.sha256(data).hexdigest(), f"{zlib.crc32(data):08x}"
        if line.split() != [sha, sha, crc, crc]:
            wrong.append(len(data))
    assert wrong == [], f"lengths whose digests differ: {wrong[:20]}"


def test_cpu_instructions_used_where_the_cpu_has_them(run: tuple[str, list[str]]) -> None:
    name, lines = run
    flags = cpu_flags()
    if name == "digests-portable":
        assert lines[0] == "sha256 portable crc32 portable"
        return
    if not flags:
        pytest.skip("no /proc/cpuinfo: cannot tell what the CPU offers")
    simd = {"ssse3", "sse4_1"} <= flags
    sha = "accel" if simd and "sha_ni" in flags else "portable"
    crc = "accel" if simd and "pclmulqdq" in flags else "portable"
    assert lines[0] == f"sha256 {sha} crc32 {crc}"
