"""Process entry points: a command started as a program, interruptible at any moment.

`launch("fwmodel", "firmware_model.cli.fwmodel")` runs the command's `main()` with Ctrl-C and
SIGTERM turned into one interrupt from the moment this module is imported (before the command's
modules are), and once `main()` has returned ignores both, so a Ctrl-C that lands while the
command imports, or just as it finishes, ends it with one line (`fwmodel: interrupted`, exit
130) or leaves its exit code as it was: never a traceback, never a death by signal. (`main()`
itself runs its body under `policy.cli.run_guarded`, which says what an interrupt left behind.)

Only what precedes this module's import is outside that promise: Python's own start-up and the
import of the (docstring-only) packages above the entry module.

An interrupt that lands while Python runs a finalizer (`__del__`, a weakref callback) cannot be
raised there; Python would print "Exception ignored ..." and go on. The unraisable hook
installed here says nothing and delivers the interrupt again, to land in the command's code.
"""

from __future__ import annotations

import importlib
import signal
import sys
from types import FrameType
from typing import NoReturn

_early: list[int] = []


def _noted(signum: int, _frame: FrameType | None) -> None:
    _early.append(signum)


for _signum in (signal.SIGINT, signal.SIGTERM):  # until launch(): noted, delivered by launch()
    signal.signal(_signum, _noted)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _unraisable(event: sys.UnraisableHookArgs) -> None:
    if event.exc_type is not None and issubclass(event.exc_type, KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)  # again, where it can be raised
        return
    sys.__unraisablehook__(event)


def launch(prog: str, module: str, attribute: str = "main") -> NoReturn:
    """Run `module.attribute()` as the process's command `prog` (see module doc); exit with
    its code."""
    code = 130
    try:
        sys.unraisablehook = _unraisable
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
        if _early:
            raise KeyboardInterrupt
        code = int(getattr(importlib.import_module(module), attribute)())
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    _forget_caught_interrupts()
    sys.exit(code)


def _forget_caught_interrupts() -> None:
    """Clear CPython's note of an unhandled KeyboardInterrupt. A KeyboardInterrupt out of an
    `exec` of a string (dataclasses and namedtuple build methods so, while the command imports)
    sets it even when the interrupt is then caught, and the interpreter, on its way out, would
    kill itself with SIGINT instead of exiting with our code. Every `exec` of a string clears
    it first (CPython's run_eval_code_obj)."""
    exec("None")
