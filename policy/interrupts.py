"""Interrupts (Ctrl-C, SIGTERM) held back while work that must not be cut in two finishes."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (main thread only): work that must not
    be cut in two (closing a device: its clock saved, its lock released) finishes, and then the
    interrupt is raised as KeyboardInterrupt, as if it had landed just after."""
    pending: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    try:
        saved = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    if pending and saved[signal.Signals(pending[0])] is not signal.SIG_IGN:
        raise KeyboardInterrupt
