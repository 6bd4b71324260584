"""Link throughput of a board agent, one request in flight (window 1), chunks at the §3.1
limits: python -m tests.board.throughput [python|native|qemu] [MiB]. Not a test: a probe."""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

from tests.board.boardlink import Agent
from tests.board.conftest import TARGETS


def measure(name: str, mib: int) -> None:
    size = mib << 20
    with tempfile.TemporaryDirectory() as folder:
        agent = Agent(TARGETS[name], Path(folder) / "dev.flash", ["--size", str(size)])
        try:
            with agent.link() as board:
                p = board.hello().max_payload
                chunk = min(65_536, p - 4) // 256 * 256
                data = os.urandom(size)
                t0 = time.perf_counter()
                for at in range(0, size, chunk):
                    board.program(at, data[at: at + chunk])
                t1 = time.perf_counter()
                back = b"".join(board.read(at, min(chunk, size - at))
                                for at in range(0, size, chunk))
                t2 = time.perf_counter()
                digest = board.ok("FLASH_HASH", struct.pack("<II", 0, size))
                t3 = time.perf_counter()
                assert back == data and digest == hashlib.sha256(data).digest()
                kib = size / 1024
                print(f"{name}: P={p} chunk={chunk}: program {kib / (t1 - t0):.0f} KiB/s, "
                      f"read {kib / (t2 - t1):.0f} KiB/s, hash {kib / (t3 - t2):.0f} KiB/s")
        finally:
            agent.stop()


if __name__ == "__main__":
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for target in sys.argv[1:2] or ["python", "native", "qemu"]:
        measure(target, mib)
