"""`journeys check`: validate a file of events and fold it into journeys with flags, offline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from projections.ledger import Ledger
from projections.settings import FoldSettings
from projections.view import JourneyView, view, view_to_dict
from schemas.codec import Accepted, Rejected, decode_lines, failure
from schemas.errors import EventConflictError


@dataclass(slots=True)
class CheckReport:
    """The journeys a file folds into, and the lines it had to reject."""

    as_of: datetime | None
    journeys: list[JourneyView] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0

    @property
    def open_flags(self) -> int:
        """How many flags are open across all journeys."""
        return sum(1 for j in self.journeys for f in j.flags if f.status == "open")


def check_lines(
    lines: Iterable[bytes], settings: FoldSettings, as_of: datetime | None = None
) -> CheckReport:
    """Decode, validate and fold JSON Lines; `as_of` defaults to the latest `occurred_at`."""
    ledger = Ledger(settings)
    report = CheckReport(as_of=as_of)
    first_line: dict[tuple[str, str], int] = {}
    latest: datetime | None = None
    for result in decode_lines(lines):
        if isinstance(result, Rejected):
            report.rejected.append(result)
            continue
        event = result.event
        key = (event.tenant, event.event_id)
        try:
            change = ledger.add(event)
        except EventConflictError:
            report.rejected.append(_conflict(result, first_line[key]))
            continue
        except Exception as exc:  # one line must never stop the check: it is reported
            report.rejected.append(Rejected(result.line, failure(exc)))
            continue
        if change is None:
            report.duplicates += 1
            continue
        first_line[key] = result.line
        report.accepted += 1
        latest = event.occurred_at if latest is None else max(latest, event.occurred_at)
    report.as_of = as_of or latest
    if report.as_of is not None:
        for journey in ledger:
            try:
                report.journeys.append(view(journey, report.as_of, settings))
            except Exception as exc:  # one journey must never stop the check: it is reported
                reason = failure(exc)
                numbers = (first_line.get((e.tenant, e.event_id)) for e in journey.events)
                report.rejected.extend(Rejected(n, reason) for n in numbers if n)
        report.rejected.sort(key=lambda rejected: rejected.line)
    return report


def _conflict(result: Accepted, first: int) -> Rejected:
    reason = (
        f"event_id: {result.event.event_id!r} was already used on line {first} for a different "
        "event; the first one stays (give a corrected event a new event_id)"
    )
    return Rejected(result.line, reason)


def report_to_dict(report: CheckReport) -> dict[str, Any]:
    """The JSON shape of `journeys check --format json`."""
    return {
        "as_of": report.as_of.isoformat() if report.as_of else None,
        "summary": {
            "events": report.accepted,
            "duplicates": report.duplicates,
            "rejected": len(report.rejected),
            "journeys": len(report.journeys),
            "open_flags": report.open_flags,
        },
        "journeys": [view_to_dict(j) for j in report.journeys],
        "rejected": [{"line": r.line, "reason": r.reason} for r in report.rejected],
    }
