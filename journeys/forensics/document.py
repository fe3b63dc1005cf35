"""What every incident report shows, laid out once: the formats (`journeys.forensics.report`) write it.

Every field is a pure function of a `Replay` and the generation time the caller passes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from journeys.forensics.describe import describe
from projections.flags import Flag
from projections.formatting import format_duration
from projections.knowledge import Fact
from projections.replay import Replay
from schemas.events import HANDLING_TYPES

GENERATOR = "journey-ledger"
"""Who wrote the report, as the reports say."""


def stamp(moment: datetime) -> str:
    """A moment as a reviewer reads it: `2026-11-02 09:41:00 UTC`, other offsets as written."""
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.isoformat()[-6:]}"


@dataclass(frozen=True, slots=True)
class FlagRow:
    """A flag as the reports list it: number, severity, rule, status, moments, message."""

    number: str
    severity: str
    rule: str
    status: str
    opened: str
    first_visible: str
    visible_to: str
    resolved: str
    message: str
    resolution: str
    event_ids: str
    handled: str = ""
    """What people did about it: seen, assigned, resolved by hand (empty: nobody acted)."""


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event of the timeline: when, which system, what, and the flags citing it."""

    when: str
    system: str
    event_id: str
    type: str
    what: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FactRow:
    """A subject and aspect of what each system knew, and what the ledger held."""

    subject: str
    aspect: str
    cells: tuple[tuple[str, str] | None, ...]
    """One per system: what it held and where that came from; None when it held nothing."""
    ledger: tuple[str, str]
    """What the ledger held and the system it came from."""
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """A replay laid out for reading; each format writes it in its own syntax."""

    title: str
    meta: tuple[tuple[str, str], ...]
    summary: str
    headline: tuple[tuple[str, str], ...]
    flags: tuple[FlagRow, ...]
    systems: tuple[str, ...]
    timeline: tuple[EventRow, ...]
    facts: tuple[FactRow, ...]
    identifiers: tuple[tuple[str, str, tuple[bool, ...]], ...]
    names: tuple[tuple[str, tuple[bool, ...]], ...]
    notes: tuple[str, ...]


def _fact_cell(fact: Fact | None) -> tuple[str, str] | None:
    if fact is None:
        return None
    return fact.display, f"{fact.event_id} · {stamp(fact.at)}"


def title_of(replay: Replay) -> str:
    """The report's title: the customer's names and id."""
    names = ", ".join(replay.view.names)
    who = f"{names} ({replay.view.customer_id})" if names else replay.view.customer_id
    return f"Incident report: {who}"


def _meta(replay: Replay, generated_at: datetime) -> tuple[tuple[str, str], ...]:
    resolution = replay.resolution
    window = (
        f"{stamp(replay.window_from)} to {stamp(replay.window_to)}"
        if replay.window_from is not None
        else f"from the first event to {stamp(replay.window_to)}"
    )
    rows = [
        ("Tenant", resolution.tenant),
        ("Customer", resolution.customer_id),
        ("Names", ", ".join(replay.view.names) or "none given"),
        ("Query", str(resolution.query)),
    ]
    if resolution.note:
        rows.append(("Resolution", resolution.note))
    rows += [
        ("As of", stamp(replay.as_of)),
        ("Timeline window", window),
        ("Generated", stamp(generated_at)),
    ]
    return tuple(rows)


def _summary(replay: Replay) -> str:
    events = len(replay.view.events)
    systems = len(replay.knowledge.systems)
    resolved = len(replay.flags) - replay.open_flags
    shown = (
        f"; {len(replay.timeline)} of them inside the timeline window"
        if len(replay.timeline) != events
        else ""
    )
    return (
        f"As of {stamp(replay.as_of)} the ledger held {events} event"
        f"{'' if events == 1 else 's'} for this customer from {systems} source system"
        f"{'' if systems == 1 else 's'}{shown}. {replay.open_flags} flag"
        f"{'' if replay.open_flags == 1 else 's'} open and {resolved} resolved at that moment."
    )


def handled_line(flag: Flag) -> str:
    """When a person saw, took and fixed a flag, in one line (empty when nobody acted)."""
    handling = flag.handling
    if handling is None:
        return ""
    parts = []
    if handling.acknowledged_at is not None:
        seen_after = format_duration(handling.acknowledged_at - flag.opened_at)
        parts.append(
            f"seen by {handling.acknowledged_by} {stamp(handling.acknowledged_at)} "
            f"({seen_after} after it opened)"
        )
    if handling.assignee:
        parts.append(f"assigned to {handling.assignee}")
    if handling.snoozed_until is not None and handling.state == "snoozed":
        parts.append(f"snoozed until {stamp(handling.snoozed_until)}")
    if handling.resolved_at is not None:
        fixed_after = format_duration(handling.resolved_at - flag.opened_at)
        parts.append(
            f"resolved by hand by {handling.resolved_by} {stamp(handling.resolved_at)} "
            f"({fixed_after} after it opened)"
        )
    if handling.reopened_because:
        parts.append(handling.reopened_because)
    if handling.notes:
        parts.append(f"{len(handling.notes)} note(s), the last by {handling.notes[-1].by}")
    return "; ".join(parts) or f"{handling.action_count} action(s)"


def document_of(replay: Replay, generated_at: datetime) -> Document:
    """The replay laid out for reading, for every format."""
    numbers = {f.flag.flag_id: f"F{i}" for i, f in enumerate(replay.flags, start=1)}
    by_event: dict[str, list[str]] = {}
    for item in replay.flags:
        for event_id in item.flag.event_ids:
            by_event.setdefault(event_id, []).append(numbers[item.flag.flag_id])
    flags = tuple(
        FlagRow(
            number=numbers[f.flag.flag_id],
            severity=f.flag.severity.value,
            rule=f.flag.rule,
            status=f.flag.status,
            opened=stamp(f.flag.opened_at),
            first_visible=stamp(f.first_visible_at),
            visible_to=", ".join(f.first_visible_systems),
            resolved=stamp(f.flag.resolved_at) if f.flag.resolved_at else "",
            message=f.flag.message,
            resolution=f.flag.resolution or "",
            event_ids=", ".join(f.flag.event_ids),
            handled=handled_line(f.flag),
        )
        for f in replay.flags
    )
    for event in replay.timeline:  # a person's action cites the flag it acted on
        acted_on = numbers.get(getattr(event.payload, "flag_id", None) or "")
        if event.type in HANDLING_TYPES and acted_on:
            by_event.setdefault(event.event_id, []).append(acted_on)
    systems = replay.knowledge.system_names
    timeline = tuple(
        EventRow(
            when=stamp(e.occurred_at),
            system=e.source.system,
            event_id=e.event_id,
            type=e.type,
            what=describe(e),
            flags=tuple(by_event.get(e.event_id, ())),
        )
        for e in replay.timeline
    )
    facts = tuple(
        FactRow(
            subject=row.subject,
            aspect=row.aspect,
            cells=tuple(_fact_cell(fact) for _, fact in row.by_system),
            ledger=(row.ledger.display, f"from {row.ledger.system}"),
            flags=tuple(
                sorted(
                    {
                        n
                        for _, fact in row.by_system
                        if fact
                        for n in by_event.get(fact.event_id, ())
                    }
                )
            ),
        )
        for row in replay.knowledge.rows()
    )
    identifiers = tuple(
        (i.kind, i.value, tuple(s in i.systems for s in systems))
        for i in replay.knowledge.ledger.identifiers
    )
    names = tuple(
        (name, tuple(name in h.names for h in replay.knowledge.systems))
        for name in replay.knowledge.ledger.names
    )
    stats = replay.stats
    notes = (
        f"Replayed from {stats.events_read} events read ({stats.duplicates} duplicates and "
        f"{stats.conflicts} conflicting redeliveries ignored; {stats.after_as_of} events that "
        "occurred after the as-of moment left out).",
        "Identity, flags and knowledge are as they stood at the as-of moment: only events that "
        "occurred at or before it count, so a link made later does not pull events in.",
        "First visible: the earliest moment a replay would have shown the flag. Visible to: "
        "the systems whose events made up the flag at that moment.",
        "What each system knew: the facts carried by that system's own events; the ledger "
        "column is the union, the latest word on each subject.",
        "Card numbers are masked to their last four digits before any event is stored.",
    )
    return Document(
        title=title_of(replay),
        meta=_meta(replay, generated_at),
        summary=_summary(replay),
        headline=(
            ("Events", str(len(replay.view.events))),
            ("Systems", str(len(systems))),
            ("Open flags", str(replay.open_flags)),
            ("Resolved flags", str(len(replay.flags) - replay.open_flags)),
        ),
        flags=flags,
        systems=systems,
        timeline=timeline,
        facts=facts,
        identifiers=identifiers,
        names=names,
        notes=notes,
    )
