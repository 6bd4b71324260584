"""The software machine's console: a list of log lines, optionally echoed as they come."""

from __future__ import annotations

from collections.abc import Callable

Echo = Callable[[str], None]


class LineConsole:
    """Collects every line logged; `echo`, if given, is called with each line as it arrives."""

    def __init__(self, echo: Echo | None = None) -> None:
        self._lines: list[str] = []
        self._echo = echo

    def log(self, line: str) -> None:
        """Append `line`; a string holding newlines becomes one line per part."""
        for part in line.splitlines() or [""]:
            self._lines.append(part)
            if self._echo is not None:
                self._echo(part)

    def lines(self) -> list[str]:
        """Every line logged so far, oldest first (a copy)."""
        return list(self._lines)

    def truncate(self, count: int) -> None:
        """Keep only the first `count` lines (a snapshot being restored)."""
        del self._lines[count:]
