"""The audit's result, row by row: JSON objects, a readable table and a summary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policy.cli import ExitCode
from policy.text import counted
from tools.audit.bundle import AT_RISK_NOTE, NONE, OS_STORE_NOTE, AppVerdict
from tools.audit.endpoints import Endpoint, Source
from tools.audit.judge import Verdict

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
NO_BUNDLE = AppVerdict()


@dataclass(frozen=True)
class Row:
    """One endpoint's outcome. Verdicts are `ok`, `fail`, or `unknown` (no chain to judge:
    an unresolvable wildcard, a missing or unreadable saved chain). `judged` is False when no
    chain was verified (unreachable endpoints fail but are not judged). `app` is how it fares
    with the roots its app bundles; `os_store_only` marks an Azure IoT Hub/DPS endpoint."""

    endpoint: Endpoint
    sources: tuple[Source, ...]
    before: str
    after: str
    anchor_before: str | None = None
    anchor_after: str | None = None
    reason: str | None = None
    judged: bool = False
    app: AppVerdict = NO_BUNDLE
    os_store_only: bool = False

    @property
    def os_store_breaks(self) -> bool:
        """Worked with the OS store before, fails with the OS store after."""
        return self.before == OK and self.after == FAIL

    @property
    def breaks(self) -> bool:
        """Fails after the store change: the OS store breaks it and the app's bundled roots
        do not verify it (or they do not apply: Azure IoT Hub/DPS)."""
        return self.os_store_breaks and (self.os_store_only or self.app.value != OK)

    @property
    def at_risk(self) -> bool:
        """The OS store breaks it but the app's bundled roots verify it."""
        return self.os_store_breaks and not self.breaks

    @property
    def note(self) -> str | None:
        notes = [AT_RISK_NOTE if self.at_risk else None,
                 OS_STORE_NOTE if self.os_store_only else None, self.app.note]
        return "; ".join(note for note in notes if note) or None

    def as_json(self) -> dict[str, Any]:
        return {
            "endpoint": str(self.endpoint),
            "source": ",".join(self.sources),
            "before": self.before,
            "after": self.after,
            "app_bundle": self.app.value,
            "breaks": self.breaks,
            "at_risk": self.at_risk,
            "os_store_only": self.os_store_only,
            "anchor_before": self.anchor_before,
            "anchor_after": self.anchor_after,
            "anchor_app_bundle": self.app.anchor,
            "reason": self.reason,
            "app_bundle_reason": self.app.reason,
            "note": self.note,
        }


def judged_row(
    endpoint: Endpoint, sources: Sequence[Source], before: Verdict, after: Verdict,
    app: AppVerdict = NO_BUNDLE, os_store_only: bool = False,
) -> Row:
    """The row for a chain judged against both stores (and the app's bundled roots)."""
    if not before.ok and not after.ok and before.reason != after.reason:
        reason: str | None = f"before: {before.reason}; after: {after.reason}"
    else:
        reason = after.reason if not after.ok else before.reason
    return Row(endpoint, tuple(sources), OK if before.ok else FAIL, OK if after.ok else FAIL,
               before.anchor, after.anchor, reason, True, app, os_store_only)


def unjudged_row(endpoint: Endpoint, sources: Sequence[Source], verdict: str, reason: str,
                 bundled: bool = False, os_store_only: bool = False) -> Row:
    """The row for an endpoint without a chain: `fail` (unreachable) or `unknown`; its
    app-bundle verdict is the same when the app bundles roots (`bundled`), else `none`."""
    app = AppVerdict(verdict) if bundled else NO_BUNDLE
    return Row(endpoint, tuple(sources), verdict, verdict, None, None, reason, False, app,
               os_store_only)


def exit_code(rows: Sequence[Row], problems: Sequence[str]) -> int:
    """1 when something breaks (at risk is not breaking); else 2 when nothing could be
    judged and something was wrong (a bad input, an endpoint without a chain); else 0."""
    if any(row.breaks for row in rows):
        return ExitCode.REFUSED
    if not any(row.judged for row in rows) and (problems or rows):
        return ExitCode.BAD_INPUT
    return ExitCode.OK


def _tally(values: Sequence[str], kinds: Sequence[str]) -> str:
    return ", ".join(f"{values.count(kind)} {kind}" for kind in kinds)


def summary(rows: Sequence[Row], at: dt.datetime) -> list[str]:
    """Two lines: what was judged (endpoints, verdicts before and after, app bundles), and
    what breaks and what is at risk, with the audit time."""
    judged = sum(row.judged for row in rows)
    verdicts = (OK, FAIL, UNKNOWN)
    bundles = [row.app.value for row in rows]
    breaks = sum(row.breaks for row in rows)
    at_risk = sum(row.at_risk for row in rows)
    return [
        f"{counted(len(rows), 'endpoint')} at {at:%Y-%m-%d %H:%M:%S}Z, "
        f"{judged} with a chain judged: "
        f"before {_tally([r.before for r in rows], verdicts)}; "
        f"after {_tally([r.after for r in rows], verdicts)}; "
        f"app bundle {_tally(bundles, (OK, FAIL, UNKNOWN, NONE))}",
        f"{counted(breaks, 'endpoint')} {'breaks' if breaks == 1 else 'break'} with the new "
        f"store, {counted(at_risk, 'endpoint')} at risk (ok only through the app's bundled "
        "roots)",
    ]


def _cells(row: Row) -> tuple[str, ...]:
    outcome = "breaks" if row.breaks else "at risk" if row.at_risk else "-"
    bundle = f"app bundle: {row.app.reason}" if row.app.reason else None
    reason = "; ".join(text for text in (row.reason, bundle, row.note) if text)
    return (str(row.endpoint), ",".join(row.sources), row.before, row.after, row.app.value,
            outcome, row.anchor_before or "-", row.anchor_after or "-", reason or "-")


def render_table(rows: Sequence[Row], at: dt.datetime) -> str:
    """A fixed-width table, one line per endpoint, then the summary."""
    header = ("ENDPOINT", "SOURCE", "BEFORE", "AFTER", "APP BUNDLE", "OUTCOME",
              "ANCHOR BEFORE", "ANCHOR AFTER", "REASON")
    lines = [header] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  " + line[-1]
        for line in lines
    ]
    return "\n".join([line.rstrip() for line in text] + summary(rows, at))
