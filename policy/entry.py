"""Process entry points: a command started as a program, interruptible at any moment.

`launch("fwmodel", "firmware_model.cli.fwmodel")` turns SIGTERM into the same interrupt as
Ctrl-C before the command's module is even imported, runs its `main()`, and once that has
returned ignores both signals, so a Ctrl-C that lands while the command imports, or just as it
finishes, ends it with one line (`fwmodel: interrupted`, exit 130) or leaves its exit code as it
was: never a traceback, never a death by signal. (`main()` itself runs its body under
`policy.cli.run_guarded`, which says what an interrupt left behind.)
"""

from __future__ import annotations

import importlib
import signal
import sys
from types import FrameType
from typing import NoReturn

from policy.cli import ExitCode, fail


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def launch(prog: str, module: str, attribute: str = "main") -> NoReturn:
    """Run `module.attribute()` as the process's command `prog` (see module doc); exit with
    its code."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = int(getattr(importlib.import_module(module), attribute)())
    except KeyboardInterrupt:
        code = fail(prog, "interrupted", ExitCode.INTERRUPTED)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(code)
