"""Typed errors of the endpoint audit. Each names the input it is about."""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error the audit engine raises."""


class BadInputError(AuditError):
    """An input (image, ELF, manifest, store, chain file, argument) that cannot be used."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


class UnreadableInputError(BadInputError):
    """An input file that cannot be read at all (missing, a folder, no permission): a mistake
    on the command line, which ends the audit before anything is judged."""


class UnreachableError(AuditError):
    """No chain could be fetched: connection refused, timed out, or the handshake dropped."""
