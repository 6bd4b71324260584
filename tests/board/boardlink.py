"""A host for the serial board protocol, written from docs/serial-protocol.md alone.

Independent of hal/ and firmware_model/ on purpose: it is the second reading of the document
that the board agents (the Python emulator, the C agent natively and under QEMU) are held to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import serial

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
REPLY, ERROR, UNSOLICITED, REBOOTED = 0x01, 0x02, 0x04, 0x08
HOST_MAX_PAYLOAD = 65_600

OP = {
    "HELLO": 0x01, "PING": 0x02, "QUERY": 0x03, "STATS": 0x04,
    "FLASH_GEOMETRY": 0x10, "FLASH_READ": 0x11, "FLASH_PROGRAM": 0x12, "FLASH_ERASE": 0x13,
    "FLASH_HASH": 0x14, "OTP_WORD_COUNT": 0x20, "OTP_READ": 0x21, "OTP_BLOW": 0x22,
    "RESET_REQUEST": 0x30, "RESET_LAST_CAUSE": 0x31, "CLOCK_WALL": 0x40,
    "CLOCK_MONOTONIC": 0x41, "CLOCK_SLEEP": 0x42, "CONSOLE_LOG": 0x50, "CONSOLE_LINES": 0x51,
    "WATCHDOG_START": 0x60, "WATCHDOG_KICK": 0x61, "WATCHDOG_STOP": 0x62,
    "BOOT_BANNER": 0x70, "CONSOLE_LINE": 0x71,
}
ERR = {
    "BAD_VERSION": 1, "UNKNOWN_OPCODE": 2, "BAD_LENGTH": 3, "FLASH_RULE": 4,
    "OUT_OF_RANGE": 5, "BUSY": 6, "POWER_LOSS": 7, "BAD_ARGUMENT": 8, "INTERNAL": 9,
}
CAUSES = ["POWER_ON", "SOFTWARE", "WATCHDOG", "POWER_LOSS"]


def escape(data: bytes) -> bytes:
    """§2: every DB becomes DB DD and every C0 becomes DB DC."""
    return data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")


def unescape(data: bytes) -> bytes | None:
    """§4 rule 3: None for an ESC followed by anything else, or at the end."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b != ESC:
            out.append(b)
            continue
        nxt = next(it, None)
        if nxt == ESC_END:
            out.append(END)
        elif nxt == ESC_ESC:
            out.append(ESC)
        else:
            return None
    return bytes(out)


def body(opcode: int, seq: int, payload: bytes, flags: int = 0, version: int = 1,
         length: int | None = None) -> bytes:
    """Header and payload (§3), before the CRC; `length` may lie about the payload size."""
    n = len(payload) if length is None else length
    return struct.pack("<BBBHI", version, opcode, flags, seq, n) + payload


def seal(unescaped_body: bytes) -> bytes:
    """Body plus its CRC-32, little-endian."""
    return unescaped_body + struct.pack("<I", zlib.crc32(unescaped_body))


def wire(opcode: int, seq: int, payload: bytes = b"", **kw: int) -> bytes:
    """The frame as sent: END, escaped body and CRC, END."""
    return bytes([END]) + escape(seal(body(opcode, seq, payload, **kw))) + bytes([END])


@dataclass
class Frame:
    version: int
    opcode: int
    flags: int
    seq: int
    payload: bytes
    raw: bytes  # unescaped header + payload + crc

    @property
    def error(self) -> int | None:
        return struct.unpack_from("<H", self.payload)[0] if self.flags & ERROR else None

    @property
    def wire(self) -> bytes:
        return bytes([END]) + escape(self.raw) + bytes([END])


def parse(candidate: bytes, max_payload: int = HOST_MAX_PAYLOAD) -> Frame | None:
    """§4 on one candidate (the bytes between two ENDs): the frame, or None if dropped."""
    raw = unescape(candidate)
    if raw is None or len(raw) < 13:
        return None
    version, opcode, flags, seq, length = struct.unpack_from("<BBBHI", raw)
    if length > max_payload or length != len(raw) - 13:
        return None
    if zlib.crc32(raw[:-4]) != struct.unpack_from("<I", raw, len(raw) - 4)[0]:
        return None
    return Frame(version, opcode, flags, seq, raw[9:-4], raw)


class NoReply(AssertionError):
    pass


@dataclass
class Link:
    """One host on a board's port: sends frames, collects replies and unsolicited frames."""

    port: str
    ser: serial.Serial = field(init=False)
    pending: bytearray = field(default_factory=bytearray)
    frames: list[Frame] = field(default_factory=list)
    unsolicited: list[Frame] = field(default_factory=list)
    dropped_candidates: int = 0
    next_seq: int = 1

    def __post_init__(self) -> None:
        self.ser = self._open()

    def _open(self) -> serial.Serial:
        if self.port.startswith("socket://"):
            return serial.serial_for_url(self.port, timeout=0.02)
        return serial.Serial(self.port, 115_200, timeout=0.02)

    def close(self) -> None:
        self.ser.close()

    def seq(self) -> int:
        s = self.next_seq
        self.next_seq = s % 65535 + 1
        return s

    def send(self, data: bytes) -> None:
        self.ser.write(data)
        self.ser.flush()

    def _pump(self, wait: float) -> None:
        """Reads what arrives within `wait` s and splits it into frames (§4)."""
        chunk = self.ser.read(max(1, self.ser.in_waiting)) if wait > 0 else b""
        if not chunk and self.ser.in_waiting:
            chunk = self.ser.read(self.ser.in_waiting)
        self.pending += chunk
        while END in self.pending:
            cut = self.pending.index(END)
            candidate = bytes(self.pending[:cut])
            del self.pending[: cut + 1]
            if not candidate:
                continue
            frame = parse(candidate)
            if frame is None:
                self.dropped_candidates += 1
            elif frame.flags & UNSOLICITED:
                self.unsolicited.append(frame)
            else:
                self.frames.append(frame)

    def next_reply(self, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.frames:
            if time.monotonic() > deadline:
                raise NoReply(f"no reply within {timeout} s")
            self._pump(timeout)
        return self.frames.pop(0)

    def wait_unsolicited(self, opcode: int, timeout: float = 5.0) -> Frame:
        """The first unsolicited frame with `opcode` not yet taken (earlier ones are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, f in enumerate(self.unsolicited):
                if f.opcode == opcode:
                    return self.unsolicited.pop(i)
            if time.monotonic() > deadline:
                raise NoReply(f"no unsolicited frame {opcode:#x} within {timeout} s")
            self._pump(timeout)

    def quiet(self, duration: float = 0.3) -> list[Frame]:
        """Replies that arrive within `duration` s (expected: none)."""
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            self._pump(0.02)
        got, self.frames = self.frames, []
        return got

    def request(self, op: str | int, payload: bytes = b"", seq: int | None = None,
                timeout: float = 10.0, **kw: int) -> Frame:
        """Sends one request and returns its reply (checked: same opcode and seq, REPLY set)."""
        opcode = OP[op] if isinstance(op, str) else op
        s = self.seq() if seq is None else seq
        self.send(wire(opcode, s, payload, **kw))
        reply = self.next_reply(timeout)
        assert reply.seq == s and reply.opcode == opcode, (reply, s, opcode)
        assert reply.flags & REPLY
        return reply

    def ok(self, op: str | int, payload: bytes = b"", **kw: int) -> bytes:
        """The payload of a successful reply."""
        reply = self.request(op, payload, **kw)
        assert not reply.flags & ERROR, f"error reply {reply.payload!r}"
        return reply.payload

    def fails(self, op: str | int, payload: bytes, code: str, **kw: int) -> Frame:
        reply = self.request(op, payload, **kw)
        assert reply.flags & ERROR, f"expected {code}, got success {reply.payload[:40]!r}"
        assert reply.error == ERR[code], f"expected {code}, got {reply.error} {reply.payload!r}"
        return reply

    # -- typed helpers ------------------------------------------------------------------------
    def hello(self) -> Hello:
        return Hello.parse(self.ok("HELLO"))

    def stats(self) -> tuple[int, ...]:
        return struct.unpack("<6I", self.ok("STATS"))

    def read(self, offset: int, length: int) -> bytes:
        return self.ok("FLASH_READ", struct.pack("<II", offset, length))

    def program(self, offset: int, data: bytes) -> None:
        assert self.ok("FLASH_PROGRAM", struct.pack("<I", offset) + data) == b""

    def erase(self, offset: int, length: int) -> None:
        assert self.ok("FLASH_ERASE", struct.pack("<II", offset, length)) == b""

    def monotonic(self) -> float:
        return struct.unpack("<d", self.ok("CLOCK_MONOTONIC"))[0]

    def wall(self) -> float:
        return struct.unpack("<d", self.ok("CLOCK_WALL"))[0]


@dataclass
class Hello:
    version: int
    max_payload: int
    window: int
    baud: int
    flash_size: int
    sector_size: int
    page_size: int
    otp_words: int
    boot_count: int
    last_cause: int
    session: int
    board_flags: int | None  # None: the reply stopped at 37 bytes
    boot_monotonic: float | None  # None: the reply stopped before offset 46 (an older board)

    @classmethod
    def parse(cls, p: bytes) -> Hello:
        assert len(p) >= 37, f"HELLO reply is {len(p)} bytes"
        fields = struct.unpack_from("<HIHIIIIIIBI", p)
        booted = struct.unpack_from("<d", p, 38)[0] if len(p) >= 46 else None
        return cls(*fields, p[37] if len(p) >= 38 else None, booted)


@dataclass
class Target:
    """How to start one kind of board agent with the emulator's command line."""

    name: str
    argv: list[str]
    cwd: Path
    prog: str  # what its one-line errors start with: `PROG: error: TEXT`
    running_clock: bool = False  # its clocks also move on their own (QEMU's counter)
    extra: list[str] = field(default_factory=list)


@dataclass
class Agent:
    """A running board agent process, stopped by closing its stdin (--exit-with-parent)."""

    target: Target
    flash: Path
    args: list[str]
    proc: subprocess.Popen[str] = field(init=False)
    port: str = field(init=False)
    banner: str = field(init=False)

    def __post_init__(self) -> None:
        argv = [*self.target.argv, "--flash", str(self.flash), "--pty", "--exit-with-parent",
                *self.target.extra, *self.args]
        self.proc = subprocess.Popen(argv, cwd=self.target.cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()
        if not self.banner:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"{self.target.name} did not start: {err.strip()}")
        self.port = self.banner.split()[-1]

    def stop(self, timeout: float = 10.0) -> int:
        """Closes stdin (the launcher's pipe) and waits: the exit code."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise

    @contextlib.contextmanager
    def link(self) -> Iterator[Link]:
        link = Link(self.port)
        try:
            yield link
        finally:
            link.close()
