"""Writing output files so that a failure never leaves a half-written or clobbered file."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Make `path` hold `data`, or leave it exactly as it was.

    Writes a temporary file beside `path` (created with `mode`, so a private key is never
    readable by others, even for a moment), flushes it to disk and renames it over `path`.
    An OSError names `path`; so does one for a `path` that exists but is not a regular file
    (a device, a FIFO, a folder: never replaced).
    """
    if path.name in ("", ".."):
        raise OSError(errno.EISDIR, "names a folder, not a file", str(path))
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(path).st_mode):  # a device, a FIFO, a folder: left alone
            raise OSError(errno.EINVAL, "not a regular file (left as it is)", str(path))
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, mode)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
