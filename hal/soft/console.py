"""The software machine's console: a list of log lines, optionally echoed as they come."""

from __future__ import annotations

from collections.abc import Callable

Echo = Callable[[str], None]


class LineConsole:
    """Collects the lines logged; `echo`, if given, is called with each line as it arrives.

    Lines are numbered from 0 in the order they were logged (`total` is how many there have
    been). With `keep`, only the last `keep` lines are kept, as a board with little RAM does;
    older ones are forgotten (their numbers are not reused).
    """

    def __init__(self, echo: Echo | None = None, *, keep: int | None = None) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"a console keeps at least one line, not {keep}")
        self._lines: list[str] = []
        self._first = 0  # number of self._lines[0]
        self._keep = keep
        self._echo = echo

    @property
    def total(self) -> int:
        """Lines logged so far (kept or forgotten)."""
        return self._first + len(self._lines)

    def log(self, line: str) -> None:
        """Append `line`; text holding ``\\n`` becomes one line per ``\\n``-separated part (and
        only ``\\n`` separates: ``\\r`` and other breaks stay in the line)."""
        for part in line.split("\n"):
            self._lines.append(part)
            if self._echo is not None:
                self._echo(part)
        if self._keep is not None and len(self._lines) > 2 * self._keep:  # forget in batches
            drop = len(self._lines) - self._keep
            del self._lines[:drop]
            self._first += drop

    def lines(self) -> list[str]:
        """The lines kept, oldest first (a copy): every line logged unless `keep` was given."""
        return self.since(0)[1]

    def since(self, first: int) -> tuple[int, list[str]]:
        """The kept lines from number `first` on, and the number of the first one returned:
        `first`, or the oldest kept line's if `first` is older, or `total` if it is past the
        end."""
        oldest = self._first
        if self._keep is not None:
            oldest = max(oldest, self.total - self._keep)
        start = min(max(first, oldest), self.total)
        return start, self._lines[start - self._first:]

    def truncate(self, count: int) -> None:
        """Keep only the lines numbered below `count` (a snapshot being restored)."""
        if count <= self._first:
            self._lines.clear()
            self._first = count
        else:
            del self._lines[count - self._first:]
