"""The flash of a board on a serial link: chunked, pipelined transfers with progress.

Programs and reads are split into chunks no larger than the link's current chunk size (which
shrinks on a noisy line and grows back on a clean one) nor than the board takes (docs §3.1: a
board announcing a 4 KiB max_payload gets program chunks of 4,092 bytes); a program of more
than one chunk is verified with one FLASH_HASH of the whole range instead of being read back.
"""

from __future__ import annotations

import hashlib
from collections import deque

from hal.errors import FlashError, RemoteError
from hal.interfaces import FlashGeometry, FlashProgress
from hal.serial.framing import MalformedPayload
from hal.serial.link import BoardLink
from hal.serial.messages import HASH_SIZE, RANGE, ErrorCode, Op, pack_program
from hal.serial.requests import Recovery, Request

Progress = FlashProgress

#: Board-side work allowed for, in bytes per second, on top of the line time (a real NOR
#: flash programs at ~0.5 MB/s and erases a 4 KiB sector in ~50 ms; hashing is far faster).
PROGRAM_RATE = 128 * 1024
ERASE_RATE = 64 * 1024
HASH_RATE = 4 * 1024 * 1024
#: Largest range one FLASH_ERASE request covers (rounded down to whole sectors).
ERASE_CHUNK = 256 * 1024

_FLASH_CODES = (ErrorCode.FLASH_RULE, ErrorCode.OUT_OF_RANGE, ErrorCode.BAD_LENGTH)


class _Chunks:
    """Hands out `(offset, length)` pieces of a range; lost pieces come back to the front."""

    what = ""

    def __init__(self, offset: int, length: int, total: int, progress: Progress | None) -> None:
        self._todo: deque[tuple[int, int]] = deque([(offset, length)] if length else [])
        self._total = total
        self._progress = progress
        self.done_bytes = 0
        self.sent = 0

    def take(self, limit: int) -> tuple[int, int] | None:
        if not self._todo:
            return None
        start, length = self._todo.popleft()
        size = min(length, limit)
        if length > size:
            self._todo.appendleft((start + size, length - size))
        self.sent += 1
        return start, size

    def give_back(self, span: tuple[int, int] | None) -> None:
        assert span is not None
        self._todo.appendleft(span)

    def finished(self, span: tuple[int, int] | None) -> None:
        assert span is not None
        self.done_bytes += span[1]
        if self._progress is not None:
            self._progress(self.what, self.done_bytes, self._total)


class _ProgramSource(_Chunks):
    what = "program"

    def __init__(self, offset: int, data: bytes, limit: int, progress: Progress | None) -> None:
        super().__init__(offset, len(data), len(data), progress)
        self._base = offset
        self._data = data
        self._limit = limit  # the board's most data per FLASH_PROGRAM
        self._digest: bytes | None = None

    def digest(self) -> bytes:
        """SHA-256 of the data (worked out while the last chunks are still on their way)."""
        if self._digest is None:
            self._digest = hashlib.sha256(self._data).digest()
        return self._digest

    def next(self, chunk: int) -> Request | None:
        span = self.take(min(chunk, self._limit))
        if span is None:
            if self.sent > 1:  # all handed out: the host only waits for replies from here
                self.digest()
            return None
        start, size = span
        piece = self._data[start - self._base : start - self._base + size]
        return Request(Op.FLASH_PROGRAM, pack_program(start, piece), work_s=size / PROGRAM_RATE,
                       span=span, recovery=Recovery.QUERY)

    def done(self, request: Request, payload: bytes) -> None:
        self.finished(request.span)

    def requeue(self, request: Request) -> None:
        self.give_back(request.span)


class _ReadSource(_Chunks):
    what = "read"

    def __init__(self, offset: int, length: int, limit: int, progress: Progress | None) -> None:
        super().__init__(offset, length, length, progress)
        self._base = offset
        self._limit = limit  # the board's largest FLASH_READ length
        self.data = bytearray(length)

    def next(self, chunk: int) -> Request | None:
        span = self.take(min(chunk, self._limit))
        if span is None:
            return None
        return Request(Op.FLASH_READ, RANGE.pack(*span), work_s=span[1] / HASH_RATE,
                       reply_bytes=span[1], span=span, recovery=Recovery.SPLIT)

    def done(self, request: Request, payload: bytes) -> None:
        assert request.span is not None
        start, size = request.span
        if len(payload) != size:
            raise MalformedPayload(f"FLASH_READ reply of {len(payload)} bytes, asked {size}")
        self.data[start - self._base : start - self._base + size] = payload
        self.finished(request.span)

    def requeue(self, request: Request) -> None:
        self.give_back(request.span)


class _EraseSource(_Chunks):
    what = "erase"

    def __init__(self, offset: int, length: int, sector: int, progress: Progress | None) -> None:
        super().__init__(offset, length, length, progress)
        self._limit = max(sector, ERASE_CHUNK // sector * sector)

    def next(self, chunk: int) -> Request | None:
        span = self.take(self._limit)
        if span is None:
            return None
        return Request(Op.FLASH_ERASE, RANGE.pack(*span), work_s=span[1] / ERASE_RATE)

    def done(self, request: Request, payload: bytes) -> None:
        self.finished((0, int.from_bytes(request.payload[4:8], "little")))

    def requeue(self, request: Request) -> None:
        raise AssertionError("erase requests are re-sent, never re-queued")


class SerialFlash:
    """:class:`hal.interfaces.Flash` on a board; geometry as the board announced it."""

    def __init__(self, link: BoardLink, progress: Progress | None = None) -> None:
        self._link = link
        self._progress = progress

    @property
    def geometry(self) -> FlashGeometry:
        """Size, sector size and page size, from the board's HELLO."""
        hello = self._link.hello
        return FlashGeometry(hello.flash_size, hello.sector_size, hello.page_size)

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset`, in pipelined chunks; FlashError if out of range."""
        self._check_range("read", offset, length)
        if length == 0:
            return b""
        source = _ReadSource(offset, length, self._link.limits.read_length, self._progress)
        self._run(source, stream=True)
        return bytes(source.data)

    def program(self, offset: int, data: bytes) -> None:
        """Program `data` at `offset` (chunked, each chunk applied exactly once), then verify.

        FlashError if out of range or a bit would go 0 -> 1 (chunks before the offending one
        may already be programmed when the range spans several chunks).
        """
        data = bytes(data)
        self._check_range("program", offset, len(data))
        if not data:
            return
        source = _ProgramSource(offset, data, self._link.limits.program_data, self._progress)
        self._run(source, stream=True)
        if source.sent > 1 and self.hash(offset, len(data)) != source.digest():
            stats = self._link.stats
            raise FlashError(
                f"flash program of {len(data):#x} bytes at {offset:#x} in {source.sent} chunks: "
                "the board's hash of the range does not match the data sent (link so far: "
                f"{stats.retries} retries, {stats.queries} queries, {stats.timeouts} timeouts)")

    def erase(self, offset: int, length: int) -> None:
        """Erase whole sectors; FlashError if out of range or not sector aligned."""
        self._check_range("erase", offset, length)
        sector = self.geometry.sector_size
        if offset % sector or length % sector:
            raise FlashError(f"flash erase of {length:#x} bytes at {offset:#x} is not aligned "
                             f"to the {sector:#x}-byte sector")
        if length:
            self._run(_EraseSource(offset, length, sector, self._progress), stream=True)

    def hash(self, offset: int, length: int) -> bytes:
        """SHA-256 of the range, computed on the board."""
        self._check_range("hash", offset, length)
        try:
            digest = self._link.call(Op.FLASH_HASH, RANGE.pack(offset, length),
                                     work_s=length / HASH_RATE, reply_bytes=HASH_SIZE)
        except RemoteError as exc:
            raise _flash_error(exc) from exc
        if len(digest) != HASH_SIZE:
            raise MalformedPayload(f"FLASH_HASH reply of {len(digest)} bytes")
        return digest

    def _run(self, source: _ProgramSource | _ReadSource | _EraseSource, stream: bool) -> None:
        try:
            self._link.run(source, stream=stream)
        except RemoteError as exc:
            raise _flash_error(exc) from exc

    def _check_range(self, what: str, offset: int, length: int) -> None:
        size = self._link.hello.flash_size
        if offset < 0 or length < 0 or offset + length > size:
            raise FlashError(f"flash {what} of {length:#x} bytes at {offset:#x} is outside the "
                             f"{size:#x}-byte flash")


def _flash_error(exc: RemoteError) -> Exception:
    return FlashError(str(exc)) if exc.code in _FLASH_CODES else exc
