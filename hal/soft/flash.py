"""NOR flash for the software machine, in memory or backed by a file.

NOR rules enforced: erase sets whole, aligned sectors to 0xFF; program only clears bits
(1 -> 0), one page per elementary operation (a `program` spanning pages is split at page
boundaries, each page one operation for the fault injector). A broken rule is a FlashError
naming the offset, raised before anything is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, overload

from hal.errors import DeviceBusyError, FlashError, FlashFileError, PowerLoss
from hal.interfaces import FlashGeometry
from hal.soft.power import PowerRail
from hal.soft.power_cuts import CutMode, FaultInjector, OpKind, tear
from policy.files import open_regular

_ERASED = 0xFF
_ERASED_BYTE = bytes([_ERASED])
_FILL_CHUNK = 1 << 20


def check_geometry(geometry: FlashGeometry) -> None:
    """FlashError unless pages tile sectors and sectors tile the flash."""
    size, sector, page = geometry.size, geometry.sector_size, geometry.page_size
    if min(size, sector, page) <= 0 or sector % page or size % sector:
        raise FlashError(
            f"bad flash geometry: size {size}, sector {sector}, page {page} "
            "(each must be positive and divide the one before)"
        )


class NorFlash:
    """A NOR flash of `geometry`; with `path`, the bytes live in that file (see `open_backing`,
    which `create` is passed to)."""

    def __init__(
        self,
        geometry: FlashGeometry,
        rail: PowerRail,
        faults: FaultInjector,
        path: Path | None = None,
        *,
        create: bool = True,
        lock_wait: float = 0.0,
    ) -> None:
        check_geometry(geometry)
        self._geometry = geometry
        self._rail = rail
        self._faults = faults
        self._file: BinaryIO | None = None
        self._buf: mmap.mmap | bytearray
        if path is None:
            self._buf = bytearray([_ERASED]) * geometry.size
        else:
            self._file, self._buf = open_backing(path, geometry.size, create=create,
                                                 lock_wait=lock_wait)
        self._dirty: set[int] = set()
        self._baseline: object | None = None

    @property
    def geometry(self) -> FlashGeometry:
        """Size, sector size and page size in bytes."""
        return self._geometry

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset`; FlashError if out of range."""
        self._rail.require("flash read")
        self._check_range("read", offset, length)
        return bytes(self._buf[offset : offset + length])

    def program(self, offset: int, data: bytes) -> None:
        """Clear bits so `offset..` reads `data`: one counted operation per page.

        Pages before an armed cut (all of them when none is armed) are stored in one go; from
        the page the cut falls on, page by page as the cut says. FlashError (nothing written)
        if out of range or a bit would go 0 -> 1. PowerLoss if the fault injector cuts power on
        one of the page operations.
        """
        self._rail.require("flash program")
        data = bytes(data)
        self._check_range("program", offset, len(data))
        self._check_clears_only(offset, data)
        spans = OpSpans(offset, len(data), self._geometry.page_size)
        done = self._faults.uncut(OpKind.PROGRAM, spans)
        if done:  # the pages before any cut, stored in one go
            last_at, last_length = spans[done - 1]
            end = last_at + last_length - offset
            self._store(offset, data if end == len(data) else data[:end])
        for index in range(done, len(spans)):  # from the page the armed cut falls on
            at, length = spans[index]
            self._operate(OpKind.PROGRAM, at, data[at - offset : at - offset + length])

    def erase(self, offset: int, length: int) -> None:
        """Set whole sectors to 0xFF, one sector operation at a time.

        FlashError (nothing erased) if out of range or not sector aligned.
        PowerLoss if the fault injector cuts power on one of the sector operations.
        """
        self._rail.require("flash erase")
        self._check_range("erase", offset, length)
        sector = self._geometry.sector_size
        if offset % sector or length % sector:
            raise FlashError(
                f"flash erase of {length:#x} bytes at {offset:#x} is not aligned "
                f"to the {sector:#x}-byte sector"
            )
        spans = OpSpans(offset, length, sector)
        done = self._faults.uncut(OpKind.ERASE, spans)
        if done:  # the sectors before any cut, erased in one go
            self._store(offset, bytes([_ERASED]) * (done * sector))
        blank = bytes([_ERASED]) * sector
        for index in range(done, len(spans)):
            self._operate(OpKind.ERASE, spans[index][0], blank)

    def hash(self, offset: int, length: int) -> bytes:
        """SHA-256 of `length` bytes from `offset`, without copying them out."""
        self._rail.require("flash hash")
        self._check_range("hash", offset, length)
        with memoryview(self._buf) as whole, whole[offset : offset + length] as part:
            return hashlib.sha256(part).digest()

    def read_mapped(self, offset: int, length: int) -> bytes:
        """The memory map's view of the flash (same as `read`)."""
        return self.read(offset, length)

    def image(self, token: object) -> bytes:
        """A copy of the flash; a later `load_image(.., token)` copies back only what changed."""
        self._baseline = token
        self._dirty.clear()
        return bytes(self._buf)

    def load_image(self, image: bytes, token: object) -> None:
        """Make the flash hold `image` (taken by `image(token)`): only dirty sectors if possible."""
        if len(image) != self._geometry.size:
            raise FlashError(f"flash image is {len(image)} bytes, the flash {self._geometry.size}")
        if self._baseline is token:
            sector = self._geometry.sector_size
            for index in self._dirty:
                start = index * sector
                self._buf[start : start + sector] = image[start : start + sector]
        else:
            self._buf[:] = image
        self._baseline = token
        self._dirty.clear()

    def flush(self) -> None:
        """Push the flash bytes to the disk (msync); other processes see them without this."""
        if isinstance(self._buf, mmap.mmap):
            self._buf.flush()

    def close(self) -> None:
        """Release the backing file (a no-op in memory).

        The mapping is shared, so the bytes are in the file for any later reader; they reach
        the disk when the kernel writes them back (or at `flush`).
        """
        if self._file is not None and isinstance(self._buf, mmap.mmap):
            self._buf.close()
            self._file.close()
            self._file = None

    def _operate(self, kind: OpKind, offset: int, new: bytes) -> None:
        op, cut = self._faults.begin(kind, offset, len(new))
        if cut is None:
            self._store(offset, new)
            return
        if cut.mode is CutMode.AFTER:
            self._store(offset, new)
        elif cut.mode is CutMode.TORN:
            self._store(offset, tear(bytes(self._buf[offset : offset + len(new)]), new, cut))
        self._rail.cut()
        raise PowerLoss(f"power cut {cut.mode.value} {op}")

    def _store(self, offset: int, data: bytes) -> None:
        if self._file is None:
            self._buf[offset : offset + len(data)] = data
        else:  # through the page cache the mapping shares: no write fault per fresh page
            self._write_file(offset, data)
        sector = self._geometry.sector_size
        self._dirty.update(range(offset // sector, (offset + len(data) - 1) // sector + 1))

    def _write_file(self, offset: int, data: bytes) -> None:
        assert self._file is not None
        fd = self._file.fileno()
        done = 0
        try:
            with memoryview(data) as view:
                while done < len(data):
                    done += os.pwrite(fd, view[done:], offset + done)
        except OSError as exc:
            raise FlashFileError(f"{self._file.name}: cannot write the flash file: "
                                 f"{exc.strerror}") from exc

    def _check_range(self, what: str, offset: int, length: int) -> None:
        size = self._geometry.size
        if offset < 0 or length < 0 or offset + length > size:
            raise FlashError(
                f"flash {what} of {length:#x} bytes at {offset:#x} is outside the "
                f"{size:#x}-byte flash"
            )

    def _check_clears_only(self, offset: int, data: bytes) -> None:
        old = self._buf[offset : offset + len(data)]
        if old == _ERASED_BYTE * len(data):  # erased flash takes anything (one memcmp)
            return
        wants_set = int.from_bytes(data, "big") & ~int.from_bytes(old, "big")
        if wants_set:
            index = len(data) - 1 - (wants_set.bit_length() - 1) // 8
            raise FlashError(
                f"flash program at {offset + index:#x}: byte {old[index]:#04x} cannot become "
                f"{data[index]:#04x} (programming only clears bits; erase the sector first)"
            )


class OpSpans(Sequence[tuple[int, int]]):
    """The elementary operations on `length` bytes at `offset` split at `unit` boundaries (pages
    or sectors): (offset, length) each, in address order, worked out on demand (a 4 MiB
    program is 16,384 pages; counting them in bulk needs only how many and the last one)."""

    def __init__(self, offset: int, length: int, unit: int) -> None:
        self._offset, self._end, self._unit = offset, offset + length, unit
        self._first = offset // unit
        self._count = (self._end - 1) // unit - self._first + 1 if length else 0

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"operation {index} of {self._count}")
        start = (self._first + index) * self._unit
        at = max(start, self._offset)
        return at, min(start + self._unit, self._end) - at


def open_backing(path: Path, size: int, *, create: bool = True,
                 lock_wait: float = 0.0) -> tuple[BinaryIO, mmap.mmap]:
    """Open (creating it 0xFF-filled if absent or empty) a flash file of `size` bytes, lock it
    and map it.

    The mapping is shared, so what is programmed is in the file (like QEMU's
    ``-drive file=...,if=mtd``). The file is locked (`flock`, exclusive) for as long as it is
    open: one device, one user. The lock covers the device's other files too (FLASH.otp,
    FLASH.reset, FLASH.clock), which are only opened after it. DeviceBusyError if another
    process holds it for longer than `lock_wait` seconds. FlashFileError (a FlashError) if an
    existing file has another size; with `create` False also if the file is absent or empty
    (nothing is created).
    """
    try:  # a FIFO or a device is refused (OSError), never written into or mapped
        handle = os.fdopen(open_regular(path, os.O_RDWR | (os.O_CREAT if create else 0)), "r+b")
    except FileNotFoundError:
        raise FlashFileError(f"{path}: no flash file") from None
    try:
        _lock(handle, path, lock_wait)
        actual = path.stat().st_size
        if actual == 0 and create:
            for start in range(0, size, _FILL_CHUNK):
                handle.write(bytes([_ERASED]) * min(_FILL_CHUNK, size - start))
            handle.flush()
        elif actual != size:
            raise FlashFileError(
                f"{path}: flash file holds {actual} bytes, the geometry says {size}")
        return handle, mmap.mmap(handle.fileno(), size)
    except BaseException:
        handle.close()
        raise


_LOCK_POLL = 0.05


def _lock(handle: BinaryIO, path: Path, wait: float) -> None:
    """Take the exclusive lock on an open device file, waiting at most `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DeviceBusyError(
                    f"{path}: device busy (another process is using it)") from None
            time.sleep(_LOCK_POLL)
