#!/usr/bin/env python3
"""Writes the fuzzer's seed inputs (one per opcode and mode) into a folder: stdlib only."""

import struct
import sys
import zlib
from pathlib import Path


def frame(op: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("<BBBHI", 1, op, 0, seq, len(payload)) + payload
    raw = body + struct.pack("<I", zlib.crc32(body))
    return b"\xc0" + raw.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def record(op: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    return bytes([op, flags, seq & 0xFF, 0]) + struct.pack("<H", len(payload)) + payload


REQUESTS = [
    (0x01, b""), (0x02, b"ping \xc0\xdb"), (0x03, b"\x01\x00"), (0x04, b""), (0x10, b""),
    (0x11, struct.pack("<II", 0, 64)), (0x12, struct.pack("<I", 4096) + b"\x0f" * 16),
    (0x13, struct.pack("<II", 4096, 4096)), (0x14, struct.pack("<II", 0, 8192)),
    (0x20, b""), (0x21, struct.pack("<I", 1)), (0x22, struct.pack("<II", 1, 0x80)),
    (0x30, b"\x01"), (0x31, b""), (0x40, b""), (0x41, b""), (0x42, struct.pack("<d", 1.5)),
    (0x50, b"hello\nworld"), (0x51, struct.pack("<I", 0)), (0x60, struct.pack("<d", 2.0)),
    (0x61, b""), (0x62, b""),
]


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for i, (op, payload) in enumerate(REQUESTS):
        (out / f"seed-raw-{op:02x}").write_bytes(b"\x00" + frame(op, i + 1, payload))
        (out / f"seed-req-{op:02x}").write_bytes(b"\x81" + record(op, i + 1, payload))
    session = b"".join(record(op, i + 1, p, 0x40 if op == 0x12 else 0)
                       for i, (op, p) in enumerate(REQUESTS) if op != 0x30)
    (out / "seed-req-session").write_bytes(b"\x80" + session)
    sleepy = record(0x60, 1, struct.pack("<d", 2.0)) + record(0x42, 2, struct.pack("<d", 5.0))
    (out / "seed-req-bite").write_bytes(b"\x80" + sleepy + record(0x51, 3, b"\0\0\0\0"))


if __name__ == "__main__":
    main()
