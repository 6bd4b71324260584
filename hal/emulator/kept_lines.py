"""The console as the board agent keeps it (docs/serial-protocol.md §6.3): the lines logged
since power-up, numbered from 0, of which the last CONSOLE_KEPT are kept.

A machine whose console numbers its lines itself (the software machine's `LineConsole`, which
the emulator bounds to CONSOLE_KEPT lines) is asked for the lines after a number; any other
console is read whole and numbered here.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hal.interfaces import Console

#: Console lines the emulator keeps (the protocol asks for at least 64).
CONSOLE_KEPT = 10_000


@runtime_checkable
class NumberedConsole(Protocol):
    """A console that numbers its lines and can hand out those after a number."""

    @property
    def total(self) -> int: ...

    def since(self, first: int) -> tuple[int, list[str]]: ...


def console_total(console: Console) -> int:
    """Lines logged on `console` so far."""
    if isinstance(console, NumberedConsole):
        return console.total
    return len(console.lines())


def kept_lines(console: Console, first: int) -> tuple[int, int, list[str]]:
    """`(total, start, lines)`: lines logged so far, and the kept lines from number `first` on
    with the number of the first one (`first`, the oldest kept line's if `first` is older, or
    `total` if it is past the end)."""
    if isinstance(console, NumberedConsole):
        total = console.total
        start, lines = console.since(max(first, total - CONSOLE_KEPT))
        return total, start, lines
    every = console.lines()
    total = len(every)
    start = min(max(first, total - CONSOLE_KEPT), total)
    return total, start, every[start:]
