"""The audit's result, row by row: JSON objects and a readable table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policy.cli import ExitCode
from tools.audit.endpoints import Endpoint, Source
from tools.audit.judge import Verdict

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclass(frozen=True)
class Row:
    """One endpoint's outcome. Verdicts are `ok`, `fail`, or `unknown` (no chain to judge:
    an unresolvable wildcard, a missing or unreadable saved chain). `judged` is False when no
    chain was verified (unreachable endpoints fail but are not judged)."""

    endpoint: Endpoint
    sources: tuple[Source, ...]
    before: str
    after: str
    anchor_before: str | None = None
    anchor_after: str | None = None
    reason: str | None = None
    judged: bool = False

    @property
    def breaks(self) -> bool:
        """Worked with the store before, fails with the store after."""
        return self.before == OK and self.after == FAIL

    def as_json(self) -> dict[str, Any]:
        return {
            "endpoint": str(self.endpoint),
            "source": ",".join(self.sources),
            "before": self.before,
            "after": self.after,
            "anchor_before": self.anchor_before,
            "anchor_after": self.anchor_after,
            "reason": self.reason,
        }


def judged_row(
    endpoint: Endpoint, sources: Sequence[Source], before: Verdict, after: Verdict
) -> Row:
    """The row for a chain judged against both stores."""
    if not before.ok and not after.ok and before.reason != after.reason:
        reason: str | None = f"before: {before.reason}; after: {after.reason}"
    else:
        reason = after.reason if not after.ok else before.reason
    return Row(endpoint, tuple(sources), OK if before.ok else FAIL, OK if after.ok else FAIL,
               before.anchor, after.anchor, reason, judged=True)


def unjudged_row(endpoint: Endpoint, sources: Sequence[Source], verdict: str, reason: str) -> Row:
    """The row for an endpoint without a chain: `fail` (unreachable) or `unknown`."""
    return Row(endpoint, tuple(sources), verdict, verdict, None, None, reason)


def exit_code(rows: Sequence[Row], problems: Sequence[str]) -> int:
    """1 when something breaks; else 2 when nothing could be judged and something was
    wrong (a bad input, an endpoint without a chain); else 0."""
    if any(row.breaks for row in rows):
        return ExitCode.REFUSED
    if not any(row.judged for row in rows) and (problems or rows):
        return ExitCode.BAD_INPUT
    return ExitCode.OK


def render_table(rows: Sequence[Row]) -> str:
    """A fixed-width table, one line per endpoint, then a one-line summary."""
    header = ("ENDPOINT", "SOURCE", "BEFORE", "AFTER", "ANCHOR BEFORE", "ANCHOR AFTER", "REASON")
    lines = [header] + [
        tuple("-" if value is None else str(value) for value in row.as_json().values())
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  " + line[-1]
        for line in lines
    ]
    breaks = sum(row.breaks for row in rows)
    judged = sum(row.judged for row in rows)
    text.append(f"{len(rows)} endpoints, {judged} judged, {breaks} break with the new store")
    return "\n".join(line.rstrip() for line in text)
