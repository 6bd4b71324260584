"""One-time-programmable fuses: 32-bit words whose bits can only be set, optionally on disk."""

from __future__ import annotations

import os
from pathlib import Path

from hal.errors import OtpError, OtpFileError
from hal.soft.power import PowerRail
from policy.files import open_regular

WORD_BITS = 32
_WORD_BYTES = WORD_BITS // 8
_WORD_MASK = (1 << WORD_BITS) - 1


class FuseBank:
    """`word_count` fuse words, all zero when new.

    With a `path`, the words live in that file (little-endian u32 each; created zero-filled if
    absent or empty), written through on every blow, so a device keeps its fuses across
    processes. OtpFileError if the file has another size; with `create` False also if it is
    absent or empty (nothing is created).
    """

    def __init__(
        self, word_count: int, rail: PowerRail, path: Path | None = None, *, create: bool = True
    ) -> None:
        if word_count <= 0:
            raise OtpError(f"an OTP bank needs at least one word, not {word_count}")
        self._rail = rail
        self._words = [0] * word_count
        self._fd: int | None = None
        if path is not None:
            self._open(path, create)

    @property
    def word_count(self) -> int:
        """How many fuse words there are."""
        return len(self._words)

    def read_word(self, index: int) -> int:
        """Fuse word `index`; OtpError if there is no such word."""
        self._rail.require("otp read")
        self._check_index(index)
        return self._words[index]

    def blow(self, index: int, bits: int) -> None:
        """Set `bits` in word `index`; bits already set stay set, nothing is ever cleared.

        OtpError if the word does not exist or `bits` does not fit in 32 bits.
        """
        self._rail.require("otp blow")
        self._check_index(index)
        if not 0 <= bits <= _WORD_MASK:
            raise OtpError(f"OTP word {index}: bits {bits:#x} do not fit in {WORD_BITS} bits")
        self._store(index, self._words[index] | bits)

    def words(self) -> tuple[int, ...]:
        """Every word, for a snapshot."""
        return tuple(self._words)

    def load(self, words: tuple[int, ...]) -> None:
        """Put every word back to `words` (a snapshot being restored: the one way bits clear)."""
        if len(words) != len(self._words):
            raise OtpError(f"snapshot holds {len(words)} OTP words, the bank {len(self._words)}")
        for index, value in enumerate(words):
            if self._words[index] != value:  # only the words that differ are written back
                self._store(index, value)

    def read_mapped(self, offset: int, length: int) -> bytes:
        """The bank as bytes (little-endian words), for the memory map."""
        raw = b"".join(word.to_bytes(_WORD_BYTES, "little") for word in self._words)
        return raw[offset : offset + length]

    def close(self) -> None:
        """Close the backing file, if any."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self._words):
            raise OtpError(f"no OTP word {index}: the bank has words 0..{len(self._words) - 1}")

    def _store(self, index: int, value: int) -> None:
        if self._words[index] == value:
            return
        self._words[index] = value
        if self._fd is not None:
            os.pwrite(self._fd, value.to_bytes(_WORD_BYTES, "little"), index * _WORD_BYTES)

    def _open(self, path: Path, create: bool) -> None:
        size = len(self._words) * _WORD_BYTES
        try:
            fd = open_regular(path, os.O_RDWR | (os.O_CREAT if create else 0))
        except FileNotFoundError:
            raise OtpFileError(f"{path}: no OTP file") from None
        actual = os.fstat(fd).st_size
        if actual == 0 and create:
            os.pwrite(fd, bytes(size), 0)
        elif actual != size:
            os.close(fd)
            raise OtpFileError(f"{path}: OTP file holds {actual} bytes, the bank needs {size}")
        raw = os.pread(fd, size, 0)
        self._words = [
            int.from_bytes(raw[i : i + _WORD_BYTES], "little") for i in range(0, size, _WORD_BYTES)
        ]
        self._fd = fd
