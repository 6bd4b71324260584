"""Reading the files a user names: only regular files, never more than a bound.

A path given to any command may be a FIFO (that nobody writes: a read would wait for ever), a
device (`/dev/zero`: a read would fill memory), a directory, or a file far larger than anything
the command can use. Every input file is opened here, without blocking, checked to be a regular
file, and read up to a limit; anything else is an OSError naming the path, which the CLI policy
turns into one line and exit 2 like any unreadable file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: The most bytes read from an input file unless the caller says otherwise (an image package,
#: a certificate, an app's ELF or manifest are all far smaller).
INPUT_LIMIT = 64 * 1024 * 1024


def open_regular(path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """`os.open` of `path` that refuses anything but a regular file (or a symlink to one),
    without blocking on a FIFO; OSError(EINVAL, "not a regular file") otherwise."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path | str, limit: int = INPUT_LIMIT) -> bytes:
    """The bytes of the regular file `path`; OSError if it is not one, cannot be read, or holds
    more than `limit` bytes (EFBIG: nothing past the limit is read)."""
    with os.fdopen(open_regular(path), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
    return data


def read_regular_text(path: Path | str, limit: int = INPUT_LIMIT) -> str:
    """`read_regular` decoded as UTF-8; OSError (EILSEQ) if it is not UTF-8 text."""
    try:
        return read_regular(path, limit).decode("utf-8")
    except UnicodeDecodeError as error:
        raise OSError(errno.EILSEQ, f"not UTF-8 text (byte {error.start})", str(path)) from None
