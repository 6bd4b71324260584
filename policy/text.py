"""How counts read in what every command prints."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 endpoint`, `2 endpoints`, `0 endpoints` (`plural` where adding an s is wrong)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
