"""The incident report for a terminal (rich), or as plain text for a file."""

from __future__ import annotations

import io
from datetime import datetime

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from journeys.forensics.document import GENERATOR, document_of, stamp
from journeys.forensics.terminal import SafeConsole
from projections.replay import Replay

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}
"""The style of a flag's severity while it is open."""


def _text_cell(cell: tuple[str, str] | None) -> Text:
    if cell is None:
        return Text("—", style="dim")
    text = Text(cell[0])
    text.append(f"\n{cell[1]}", style="dim")
    return text


def report_renderable(replay: Replay, generated_at: datetime) -> Group:
    """The report as rich renderables, for a terminal."""
    doc = document_of(replay, generated_at)
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="dim")
    meta.add_column()
    for key, value in doc.meta:
        meta.add_row(key, value)
    header = Panel(
        Group(meta, Text(""), Text(doc.summary)),
        title=f"[bold]{escape(doc.title)}[/]",
        title_align="left",
    )
    flags: list[Text] = [Text("Flags at the as-of moment", style="bold underline")]
    for f in doc.flags:
        style = SEVERITY_STYLE[f.severity] if f.status == "open" else "dim"
        line = Text()
        line.append(f"{f.number:<4}", style="bold")
        line.append(f"{f.severity.upper():<7}", style=style)
        line.append(f"{f.rule} ", style="bold")
        line.append(f"[{f.status}] ", style="green" if f.status == "resolved" else style)
        line.append(f.message)
        line.append(
            f"\n    opened {f.opened}; first visible {f.first_visible} to {f.visible_to}",
            style="dim",
        )
        if f.resolved:
            line.append(f"; resolved {f.resolved}: {f.resolution}", style="dim")
        line.append(f"; events {f.event_ids}", style="dim")
        if f.handled:
            line.append(f"\n    handled: {f.handled}", style="dim")
        flags.append(line)
    timeline = Table(title="Timeline", title_justify="left", expand=True)
    for column in ("time", "system", "event", "what happened", "flags"):
        timeline.add_column(column, overflow="fold")
    for e in doc.timeline:
        timeline.add_row(
            e.when, Text(e.system, style="cyan"), e.event_id, e.what, Text(" ".join(e.flags), "red")
        )
    facts = Table(title="What each system knew", title_justify="left", expand=True)
    for column in ("subject", "aspect", *doc.systems, "ledger"):
        facts.add_column(column, overflow="fold")
    for row in doc.facts:
        facts.add_row(
            row.subject,
            row.aspect,
            *(_text_cell(c) for c in row.cells),
            _text_cell(row.ledger),
        )
    identifiers = Table(title="Identifiers", title_justify="left", expand=True)
    for column in ("kind", "value", *doc.systems):
        identifiers.add_column(column, overflow="fold")
    for kind, value, held_by in doc.identifiers:
        identifiers.add_row(kind, value, *("✓" if h else "—" for h in held_by))
    for name, held_by in doc.names:
        identifiers.add_row("name", name, *("✓" if h else "—" for h in held_by))
    parts: list[Panel | Table | Text] = [header]
    parts += flags if doc.flags else [Text("no flags", style="green")]
    parts += [timeline, facts, identifiers]
    parts += [Text(note, style="dim") for note in doc.notes]
    parts.append(Text(f"Generated {stamp(generated_at)} by {GENERATOR}.", style="dim"))
    return Group(*parts)


def print_report(console: Console, replay: Replay, generated_at: datetime) -> None:
    """Print the text report to a console (colours when it is a terminal)."""
    console.print(report_renderable(replay, generated_at))


def render_text(replay: Replay, generated_at: datetime, width: int = 120) -> str:
    """The text report as plain text, without colour codes (for a file)."""
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=width, color_system=None, highlight=False)
    print_report(console, replay, generated_at)
    return buffer.getvalue()
