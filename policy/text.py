"""How counts and untrusted text read in what every command prints."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 endpoint`, `2 endpoints`, `0 endpoints` (`plural` where adding an s is wrong)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def printable(text: str, limit: int = 200) -> str:
    """`text` safe to print on one terminal line: control characters (an ANSI escape, a
    newline) shown as Python escapes, and cut to `limit` characters with `...` (a peer's or a
    user's text, which may be anything, is never printed raw)."""
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[:limit + 1])
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."
