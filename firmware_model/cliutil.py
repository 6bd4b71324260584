"""What every command line of the project shares: errors become one line and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn, TextIO, cast

from firmware_model.errors import EXIT_FORMAT, FwModelError
from hal.errors import HalError

EXIT_HAL = 4


def run_guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command body; a typed error becomes `prog: error: ...` on stderr and its exit code.

    FwModelError subclasses carry their own code (1 trust, 2 format, 3 feed); HAL errors exit
    4; unreadable files exit 2. Nothing else is caught: a bug still shows its traceback.
    A reader that stops reading stdout (`| head`) is no error: while the body runs, sys.stdout
    sends what follows to /dev/null, and the body's own exit code stands.
    """
    try:
        with _stdout_reader_may_leave():
            code = body()
            sys.stdout.flush()
        return code
    except FwModelError as error:
        return _fail(prog, error, error.exit_code)
    except HalError as error:
        return _fail(prog, error, EXIT_HAL)
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        return _fail(prog, f"cannot read or write{where}: {error.strerror or error}", EXIT_FORMAT)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", 130)


@contextlib.contextmanager
def _stdout_reader_may_leave() -> Iterator[None]:
    """Make sys.stdout a `_QuietOnceClosed` of itself for the duration."""
    original = sys.stdout
    sys.stdout = cast(TextIO, _QuietOnceClosed(original))
    try:
        yield
    finally:
        sys.stdout = original


class _QuietOnceClosed(io.TextIOBase):
    """Writes to `stream` until its reader has gone (BrokenPipeError); from then on the
    stream's file descriptor points at /dev/null, so later writes and the flush at exit
    succeed without a word."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def _reader_gone(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # a stream without a descriptor
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
            self._stream.flush()  # what the closed pipe refused, to /dev/null


def _fail(prog: str, error: object, code: int) -> int:
    text = " ".join(str(error).split()) or type(error).__name__
    print(f"{prog}: error: {text}", file=sys.stderr)
    return code


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (`prog: error: ...`, exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see --help)\n")
