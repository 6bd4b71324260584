"""The one command-line policy: every command of the project (`fwmodel`, `imagetool`, the
endpoint audit, the emulator, the demo) parses its arguments with `OneLineParser`, runs its body
under `run_guarded`, and shows `epilog(...)` at the end of its `--help`.

- A usage error is one line, `PROG: error: ...`, and exit code 2.
- A failure (`policy.errors`) is one line on stderr and the exit code of its kind; an OSError is
  an unreadable or unwritable file (2); Ctrl-C or SIGTERM is `interrupted` (130). Anything else
  is a bug and keeps its traceback.
- A reader that stops reading stdout (`| head`) is no error.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import NoReturn, TextIO, cast

from policy.errors import KINDS, BadInput, Busy, Failure, HardwareFault, Refused, Unavailable
from policy.interrupts import interrupts_ignored


class ExitCode(enum.IntEnum):
    """What a command's exit code says happened."""

    OK = 0
    REFUSED = 1
    BAD_INPUT = 2
    UNAVAILABLE = 3
    HARDWARE = 4
    BUSY = 5
    INTERRUPTED = 130


#: What each code means for every command; a command adds what it means there (`epilog`).
MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.REFUSED: "refused: bad signature, untrusted or revoked signer, rollback, wrong or "
                      "mismatched image, a device that does not boot, a TLS chain that fails",
    ExitCode.BAD_INPUT: "bad input: malformed bytes (the error names the offset), an unreadable "
                        "or unusable file, bad usage",
    ExitCode.UNAVAILABLE: "unavailable: the update feed is down or served incomplete data (the "
                          "next check tries again)",
    ExitCode.HARDWARE: "hardware: the HAL failed (the link to the board, a flash read-back)",
    ExitCode.BUSY: "busy: another process is using the device (nothing was done)",
    ExitCode.INTERRUPTED: "interrupted by Ctrl-C or SIGTERM (a cut mid-update is a power cut: "
                          "the last line says the device's state)",
}

_BY_KIND: dict[type[Exception], ExitCode] = {
    Busy: ExitCode.BUSY, BadInput: ExitCode.BAD_INPUT, Refused: ExitCode.REFUSED,
    Unavailable: ExitCode.UNAVAILABLE, HardwareFault: ExitCode.HARDWARE,
}


def exit_code(error: BaseException) -> ExitCode:
    """The exit code of `error`: its kind's (the first of `policy.errors.KINDS` it is), 2 for
    an OSError (a file), 130 for an interrupt; 2 for an error of no kind (a bug to report)."""
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    for kind in KINDS:
        if isinstance(error, kind):
            return _BY_KIND[kind]
    return ExitCode.BAD_INPUT


def epilog(notes: Mapping[ExitCode, str] | None = None,
           codes: Iterable[ExitCode] = tuple(ExitCode), extra: str = "") -> str:
    """The `exit codes:` part of a command's --help: each of `codes` with its meaning, and what
    it means for this command where `notes` says (`0: "verify: the image is valid"`)."""
    notes = notes or {}
    lines = ["exit codes:"]
    for code in codes:
        text = MEANINGS[code]
        if code in notes:
            text = f"{text} ({notes[code]})"
        lines.append(f"  {int(code):<4} {text}")
    lines.append("errors are one line on stderr; bad input never changes a device or clobbers "
                 "an output file.")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def iso_datetime(text: str) -> datetime:
    """An argument type: an ISO 8601 date or date-time (`Z` or an offset; without a zone it is
    UTC), as an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or date-time"
                                         ) from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-14:00 is past what a date-time holds in UTC
        raise argparse.ArgumentTypeError(f"{text!r} is outside the years 1..9999 in UTC"
                                         ) from None


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (`prog: error: ...`) and exit 2, for
    every subcommand too (subparsers are made of the same class)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(int(ExitCode.BAD_INPUT),
                  f"{self.prog.split()[0]}: error: {text} (see --help)\n")


Body = Callable[[], int]


def run_guarded(prog: str, body: Body, *, on_interrupt: Callable[[], str | None] | None = None
                ) -> int:
    """Run a command body; a failure becomes `PROG: error: ...` on stderr and its exit code.

    SIGTERM is turned into the same interrupt as Ctrl-C while the body runs. On an interrupt,
    `on_interrupt()` (if given) may name the state the command leaves behind: it is the last
    line (`PROG: interrupted: STATE`). A reader that stops reading stdout (`| head`) is no
    error: what follows goes to /dev/null and the body's own exit code stands.
    """
    try:
        with _stdout_reader_may_leave(), _sigterm_interrupts():
            code = body()
            sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        state = _state(on_interrupt)
        return fail(prog, f"interrupted{': ' + state if state else ''}", ExitCode.INTERRUPTED)
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        return fail(prog, f"cannot read or write{where}: {error.strerror or error}",
                    ExitCode.BAD_INPUT)
    except Failure as error:
        return fail(prog, error, exit_code(error))


def _state(on_interrupt: Callable[[], str | None] | None) -> str | None:
    if on_interrupt is None:
        return None
    with interrupts_ignored():
        try:
            return on_interrupt()
        except (Failure, OSError) as error:
            return f"unknown ({' '.join(str(error).split())})"


def fail(prog: str, error: object, code: int) -> int:
    """Print `PROG: error: TEXT` (one line) on stderr; return `code`."""
    text = " ".join(str(error).split()) or type(error).__name__
    label = "" if text.startswith("interrupted") else "error: "
    print(f"{prog}: {label}{text}", file=sys.stderr, flush=True)
    return int(code)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the body runs (main thread only), SIGTERM raises KeyboardInterrupt as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
