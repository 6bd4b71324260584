"""What every command line of the project shares: errors become one line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from firmware_model.errors import EXIT_FORMAT, FwModelError
from hal.errors import HalError

EXIT_HAL = 4


def run_guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command body; a typed error becomes `prog: error: ...` on stderr and its exit code.

    FwModelError subclasses carry their own code (1 trust, 2 format, 3 feed); HAL errors exit
    4; unreadable files exit 2. Nothing else is caught: a bug still shows its traceback.
    """
    try:
        return body()
    except FwModelError as error:
        return _fail(prog, error, error.exit_code)
    except HalError as error:
        return _fail(prog, error, EXIT_HAL)
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        return _fail(prog, f"cannot read or write{where}: {error.strerror or error}", EXIT_FORMAT)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", 130)


def _fail(prog: str, error: object, code: int) -> int:
    text = " ".join(str(error).split()) or type(error).__name__
    print(f"{prog}: error: {text}", file=sys.stderr)
    return code


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (`prog: error: ...`, exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see --help)\n")
