"""Interrupts (Ctrl-C, SIGTERM) held back while work that must not be cut in two finishes, or
ignored while a command says what an interrupt left behind."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _handled_by(handler: Any) -> Iterator[dict[signal.Signals, Any]]:
    """SIGINT and SIGTERM handled by `handler` for the duration, then as before; yields the
    handlers they had (none outside the main thread, where handlers cannot be set)."""
    try:
        saved = {signum: signal.signal(signum, handler) for signum in _INTERRUPTS}
    except ValueError:  # not the main thread
        yield {}
        return
    try:
        yield saved
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored for the duration (a second Ctrl-C while the state is read)."""
    with _handled_by(signal.SIG_IGN):
        yield


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (main thread only): work that must not
    be cut in two (closing a device: its clock saved, its lock released) finishes, and then the
    interrupt is raised as KeyboardInterrupt, as if it had landed just after."""
    pending: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    with _handled_by(note) as saved:
        yield
    if pending and saved[signal.Signals(pending[0])] is not signal.SIG_IGN:
        raise KeyboardInterrupt
