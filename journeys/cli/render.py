"""Readable terminal output (rich) for journeys and flags, as `check`, `journey` and `flags` print them."""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from journeys.forensics.describe import describe
from journeys.forensics.document import handled_line
from journeys.forensics.report_text import SEVERITY_STYLE
from projections.flags import Flag
from projections.formatting import format_moment
from projections.journey import Merge
from projections.view import JourneyView


def flag_line(flag: Flag) -> Text:
    """One flag: severity, rule, status, message and the events it points at."""
    text = Text()
    style = SEVERITY_STYLE[flag.severity.value] if flag.status == "open" else "dim"
    text.append(f"{flag.severity.value.upper():<6} ", style=style)
    text.append(f"{flag.rule} ", style="bold")
    text.append(f"[{flag.status}] ", style="green" if flag.status == "resolved" else style)
    text.append(flag.message)
    text.append(f"\n       opened {format_moment(flag.opened_at)}", style="dim")
    if flag.resolved_at is not None:
        text.append(f", resolved {format_moment(flag.resolved_at)}: {flag.resolution}", style="dim")
    text.append(f"; events {', '.join(flag.event_ids)}", style="dim")
    if handled := handled_line(flag):
        text.append(f"\n       handled: {handled}", style="dim")
    return text


def journey_panel(journey: JourneyView) -> Panel:
    """A journey as a panel: identifiers, the timeline, then its flags."""
    flagged: dict[str, list[str]] = {}
    for flag in journey.flags:
        for event_id in flag.event_ids:
            flagged.setdefault(event_id, []).append(flag.rule)
    identifiers = Text()
    for ident in journey.identifiers:
        identifiers.append(f"{ident.kind} ", style="dim")
        identifiers.append(ident.value, style="bold")
        identifiers.append(f" ({', '.join(ident.systems)})  ", style="dim")
        if ident.not_matched is not None:
            identifiers.append(f"[not used for matching: {ident.not_matched}]  ", style="yellow")
    timeline = Table(box=None, show_header=True, header_style="dim", pad_edge=False, expand=True)
    timeline.add_column("when", no_wrap=True)
    timeline.add_column("system", no_wrap=True, style="cyan")
    timeline.add_column("event", no_wrap=True, style="dim")
    timeline.add_column("what", ratio=1)
    for event in journey.events:
        marks = flagged.get(event.event_id)
        what = Text(describe(event))
        if marks:
            what.append(f"  ⚑ {', '.join(sorted(set(marks)))}", style="bold red")
        linked = (journey.linked_by or {}).get(event.event_id)
        if linked is not None:
            what.append(f"  via {linked}", style="dim")
        timeline.add_row(
            format_moment(event.occurred_at), event.source.system, event.event_id, what
        )
    parts: list[Text | Table] = [identifiers, timeline]
    if journey.merges:
        parts.append(Text("merges", style="bold underline"))
        by_event: dict[str, list[Merge]] = {}
        for merge in journey.merges or ():
            by_event.setdefault(merge.event_id, []).append(merge)
        for event_id, merges in by_event.items():
            line = Text(f"{format_moment(merges[0].at)}  event {event_id} joined ", style="dim")
            line.append(" and ".join(f"{m.from_customer} ({m.identifier})" for m in merges))
            for decided in sorted({m.decision for m in merges if m.decision}):
                line.append(f"; {decided}", style="dim")
            parts.append(line)
    if journey.flags:
        parts.append(Text("flags", style="bold underline"))
        parts.extend(flag_line(flag) for flag in journey.flags)
    else:
        parts.append(Text("no flags", style="green"))
    names = f" · {', '.join(journey.names)}" if journey.names else ""
    title = f"[bold]{escape(journey.tenant)}[/] · {escape(journey.customer_id)}{escape(names)}"
    return Panel(Group(*parts), title=title, title_align="left")
