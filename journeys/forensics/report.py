"""Incident reports of a replayed journey: text (rich), JSON, Markdown and self-contained HTML.

Every format is a pure function of a `Replay` and the generation time, which the caller
passes in (nothing here reads the clock), so the same replay always gives the same bytes.
Card numbers never appear: events are masked by the codec before anything stores them, and
the reports only show what the events hold.

The JSON shape (`report_to_dict`, format_version 1):

```json
{"report": {"title": "Incident report: Priya Shah (cus_…)", "format_version": 1,
            "generated_at": "…", "generator": "journey-ledger"},
 "query": {"text": "phone:+44 7700 900123", "kind": "phone", "matched_key": "phone:+44:7700900123"},
 "resolution": {"tenant": "acme-motors", "customer_id": "cus_…", "requested_id": null,
                "superseded": false, "note": null},
 "as_of": "…", "window": {"from": null, "to": "…"},
 "summary": {"events": 6, "events_in_window": 6, "flags": 2, "open_flags": 2,
             "systems": ["chat-vendor", "dealer-booking", "sms-gateway"],
             "events_read": 29, "duplicates": 0, "conflicts": 0, "after_as_of": 20},
 "names": ["Priya Shah"],
 "identifiers": [{"kind": "phone", "value": "+447700900123", "systems": ["chat-vendor", …]}],
 "timeline": [{"event_id": "acm-0001", "occurred_at": "…", "system": "chat-vendor",
               "type": "chat.message", "flag_ids": ["flg_…"], "event": {…the event as stored…}}],
 "flags": [{…as in `journeys check --format json`…, "first_visible_at": "…",
            "first_visible_systems": ["dealer-booking", "sms-gateway"]}],
 "knowledge": {"as_of": "…",
               "systems": [{"system": "chat-vendor",
                            "identifiers": [{"kind": "plate", "value": "LM19XKD", "systems": ["chat-vendor"]}],
                            "names": ["Priya Shah"],
                            "facts": [{"topic": "slot", "subject": "customer's request",
                                       "subject_key": "request", "aspect": "requested",
                                       "state": "requested", "value": "2026-11-06T10:30:00+00:00",
                                       "display": "Fri 6 Nov 10:30", "at": "…",
                                       "event_id": "acm-0001", "system": "chat-vendor"}],
                            "event_ids": ["acm-0001", …]}],
               "ledger": {"system": null, …the same fields, for the ledger as a whole…}}}
```

`timeline` holds the events inside the window; `flags` and `knowledge` cover the whole
journey up to `as_of`. Topics of facts: slot, order, payment, enrolment, recall; aspects of a
slot: requested, booked, told the customer.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from journeys.forensics.describe import describe
from projections.knowledge import Fact
from projections.replay import Replay, replay_to_dict

FORMAT_VERSION = 1
"""The version of the JSON report shape; it goes up when a field changes meaning."""

GENERATOR = "journey-ledger"
"""Who wrote the report, as the reports say."""


class ReportFormat(StrEnum):
    """The formats a replay report is written in."""

    TEXT = "text"
    JSON = "json"
    MD = "md"
    HTML = "html"


# --- what every format shows ---------------------------------------------------------------------


def stamp(moment: datetime) -> str:
    """A moment as a reviewer reads it: `2026-11-02 09:41:00 UTC`, other offsets as written."""
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.isoformat()[-6:]}"


@dataclass(frozen=True, slots=True)
class _FlagRow:
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


@dataclass(frozen=True, slots=True)
class _EventRow:
    when: str
    system: str
    event_id: str
    type: str
    what: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _FactRow:
    subject: str
    aspect: str
    cells: tuple[tuple[str, str] | None, ...]
    """One per system: what it held and where that came from; None when it held nothing."""
    ledger: tuple[str, str]
    """What the ledger held and the system it came from."""
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Document:
    """A replay laid out for reading; each format writes it in its own syntax."""

    title: str
    meta: tuple[tuple[str, str], ...]
    summary: str
    headline: tuple[tuple[str, str], ...]
    flags: tuple[_FlagRow, ...]
    systems: tuple[str, ...]
    timeline: tuple[_EventRow, ...]
    facts: tuple[_FactRow, ...]
    identifiers: tuple[tuple[str, str, tuple[bool, ...]], ...]
    names: tuple[tuple[str, tuple[bool, ...]], ...]
    notes: tuple[str, ...]


def _fact_cell(fact: Fact | None) -> tuple[str, str] | None:
    if fact is None:
        return None
    return fact.display, f"{fact.event_id} · {stamp(fact.at)}"


def _joined(cell: tuple[str, str] | None) -> str:
    return "—" if cell is None else f"{cell[0]} ({cell[1]})"


def _title(replay: Replay) -> str:
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


def _document(replay: Replay, generated_at: datetime) -> _Document:
    numbers = {f.flag.flag_id: f"F{i}" for i, f in enumerate(replay.flags, start=1)}
    by_event: dict[str, list[str]] = {}
    for item in replay.flags:
        for event_id in item.flag.event_ids:
            by_event.setdefault(event_id, []).append(numbers[item.flag.flag_id])
    flags = tuple(
        _FlagRow(
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
        )
        for f in replay.flags
    )
    systems = replay.knowledge.system_names
    timeline = tuple(
        _EventRow(
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
        _FactRow(
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
    return _Document(
        title=_title(replay),
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


# --- JSON ------------------------------------------------------------------------------------------


def report_to_dict(replay: Replay, generated_at: datetime) -> dict[str, Any]:
    """The report as a JSON-ready dict (the shape is in the module docstring)."""
    return {
        "report": {
            "title": _title(replay),
            "format_version": FORMAT_VERSION,
            "generated_at": generated_at.isoformat(),
            "generator": GENERATOR,
        },
        **replay_to_dict(replay),
    }


def render_json(replay: Replay, generated_at: datetime) -> str:
    """The JSON report, indented, ending with a newline."""
    data = orjson.dumps(report_to_dict(replay, generated_at), option=orjson.OPT_INDENT_2)
    return data.decode() + "\n"


# --- Markdown --------------------------------------------------------------------------------------

_MD_SPECIAL = "\\`*[]<>|#"


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell: specials escaped, on one line.

    An underscore inside a word (`cus_4c75…`, `DATE_MISMATCH`) never starts emphasis in
    CommonMark, so it stays as written and the raw file reads cleanly.
    """
    flat = " ".join(text.split())
    out = []
    for i, ch in enumerate(flat):
        inside = 0 < i < len(flat) - 1 and flat[i - 1].isalnum() and flat[i + 1].isalnum()
        special = ch in _MD_SPECIAL or (ch == "_" and not inside)
        out.append(f"\\{ch}" if special else ch)
    return "".join(out)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(md_escape(h) for h in header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(md_escape(c) or " " for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(replay: Replay, generated_at: datetime) -> str:
    """The report as Markdown: headings, tables, nothing that needs a renderer's extensions."""
    doc = _document(replay, generated_at)
    out = [f"# {md_escape(doc.title)}", ""]
    out += _md_table(["Field", "Value"], [[k, v] for k, v in doc.meta])
    out += ["## Summary", "", md_escape(doc.summary), ""]
    out += _md_table([k for k, _ in doc.headline], [[v for _, v in doc.headline]])
    out += ["## Flags at the as-of moment", ""]
    if doc.flags:
        out += _md_table(
            [
                "#",
                "Severity",
                "Rule",
                "Status",
                "Opened",
                "First visible",
                "Visible to",
                "Resolved",
                "Message",
                "Events",
            ],
            [
                [
                    f.number,
                    f.severity,
                    f.rule,
                    f.status,
                    f.opened,
                    f.first_visible,
                    f.visible_to,
                    f"{f.resolved}: {f.resolution}" if f.resolved else "",
                    f.message,
                    f.event_ids,
                ]
                for f in doc.flags
            ],
        )
    else:
        out += ["No flags.", ""]
    out += ["## Timeline", ""]
    out += _md_table(
        ["Time", "System", "Event", "What happened", "Flags"],
        [
            [e.when, e.system, f"{e.event_id} ({e.type})", e.what, ", ".join(e.flags)]
            for e in doc.timeline
        ],
    )
    out += ["## What each system knew", ""]
    if doc.facts:
        out += _md_table(
            ["Subject", "Aspect", *doc.systems, "Ledger", "Flags"],
            [
                [
                    f.subject,
                    f.aspect,
                    *(_joined(c) for c in f.cells),
                    f"{f.ledger[0]} ({f.ledger[1]})",
                    ", ".join(f.flags),
                ]
                for f in doc.facts
            ],
        )
    else:
        out += ["No slots, orders, payments, enrolments or recalls in these events.", ""]
    out += ["## Identifiers", ""]
    out += _md_table(
        ["Kind", "Value", *doc.systems],
        [
            *(
                [k, v, *("✓" if held else "" for held in held_by)]
                for k, v, held_by in doc.identifiers
            ),
            *(["name", n, *("✓" if held else "" for held in held_by)] for n, held_by in doc.names),
        ],
    )
    out += ["## About this report", ""]
    out += [f"- {md_escape(note)}" for note in doc.notes]
    out += ["", f"_Generated {md_escape(stamp(generated_at))} by {GENERATOR}._", ""]
    return "\n".join(out)


# --- HTML ------------------------------------------------------------------------------------------

_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dde6; --band: #f4f6f9; --accent: #1f4e8c;
  --high: #b42318; --high-bg: #fde8e6; --medium: #8a5a00; --medium-bg: #fdf3d8;
  --low: #0b6b7a; --low-bg: #e0f4f6; --ok: #1e7b3a; --ok-bg: #e4f5e9; }
* { box-sizing: border-box; }
body { margin: 0; background: #e9ecf1; color: var(--ink);
  font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main.report { max-width: 1200px; margin: 24px auto; background: #fff; padding: 32px 40px;
  box-shadow: 0 1px 4px rgba(0,0,0,.12); }
header { border-bottom: 3px solid var(--accent); padding-bottom: 16px; margin-bottom: 8px; }
.kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 12px; color: var(--accent);
  margin: 0 0 4px; font-weight: 600; }
h1 { font-size: 24px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
.headline { display: flex; gap: 12px; margin: 12px 0; }
.headline div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.headline strong { display: block; font-size: 22px; }
.headline span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 4px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 5px 7px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.when, td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; white-space: nowrap; }
td.none { color: #a0a7b4; text-align: center; }
td.held { text-align: center; color: var(--ok); font-weight: 700; }
td.lane { min-width: 140px; }
td.lane .type { display: block; color: var(--muted); font-size: 11px; }
td .src { display: block; color: var(--muted); font-size: 11px; }
td.flagged { background: var(--high-bg) !important; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 11px;
  font-weight: 700; text-transform: uppercase; letter-spacing: .03em; white-space: nowrap; }
.sev-high { color: var(--high); background: var(--high-bg); }
.sev-medium { color: var(--medium); background: var(--medium-bg); }
.sev-low { color: var(--low); background: var(--low-bg); }
.st-open { color: var(--high); background: var(--high-bg); }
.st-resolved { color: var(--ok); background: var(--ok-bg); }
.fref { display: inline-block; font-weight: 700; color: var(--high); margin-right: 6px; }
article.flag { border: 1px solid var(--line); border-left-width: 5px; border-radius: 4px;
  padding: 10px 14px; margin: 10px 0; break-inside: avoid; }
.sev-high-edge { border-left-color: var(--high) !important; }
.sev-medium-edge { border-left-color: #d39b00 !important; }
.sev-low-edge { border-left-color: var(--low) !important; }
.flag-head { display: flex; align-items: center; gap: 8px; }
.flag-head .rule { font-weight: 700; }
.flag-message { margin: 6px 0; font-size: 14px; }
dl.flag-details { display: grid; grid-template-columns: max-content 1fr; gap: 1px 14px; margin: 0;
  font-size: 12px; }
dl.flag-details dt { color: var(--muted); }
dl.flag-details dd { margin: 0; }
.muted { color: var(--muted); }
footer { margin-top: 28px; padding-top: 10px; border-top: 1px solid var(--line);
  color: var(--muted); font-size: 12px; }
footer ul { padding-left: 18px; margin: 6px 0; }
@media print { body { background: #fff; } main.report { box-shadow: none; margin: 0; padding: 0; }
  tr, .headline div { break-inside: avoid; } }
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _cell(text: str, cls: str = "", *, raw: bool = False) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{text if raw else _e(text)}</td>"


def _table(header: list[str], rows: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _refs(numbers: tuple[str, ...]) -> str:
    return "".join(f'<span class="fref">{_e(n)}</span>' for n in numbers)


def _html_flags(doc: _Document) -> str:
    if not doc.flags:
        return '<p class="muted">No flags.</p>'
    cards = []
    for f in doc.flags:
        details = [
            ("Opened", f.opened),
            ("First visible", f.first_visible),
            ("Visible to", f.visible_to),
            ("Resolved", f"{f.resolved}: {f.resolution}" if f.resolved else "not resolved"),
            ("Events", f.event_ids),
        ]
        grid = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in details)
        cards.append(
            f'<article class="flag sev-{_e(f.severity)}-edge" id="flag-{_e(f.number)}">'
            f'<div class="flag-head"><span class="fref">{_e(f.number)}</span>'
            f'<span class="badge sev-{_e(f.severity)}">{_e(f.severity)}</span> '
            f'<span class="mono rule">{_e(f.rule)}</span> '
            f'<span class="badge st-{_e(f.status)}">{_e(f.status)}</span></div>'
            f'<p class="flag-message">{_e(f.message)}</p>'
            f'<dl class="flag-details">{grid}</dl></article>'
        )
    return "".join(cards)


def _html_timeline(doc: _Document) -> str:
    if not doc.timeline:
        return '<p class="muted">No events inside the window.</p>'
    rows = []
    for event in doc.timeline:
        lanes = []
        for system in doc.systems:
            if system != event.system:
                lanes.append("<td></td>")
                continue
            cls = "lane flagged" if event.flags else "lane"
            body = (
                f'<span class="type mono">{_e(event.event_id)} · {_e(event.type)}</span>'
                f"{_e(event.what)}"
            )
            lanes.append(_cell(body, cls, raw=True))
        rows.append(
            _cell(event.when, "when") + "".join(lanes) + _cell(_refs(event.flags), raw=True)
        )
    return _table(["Time", *doc.systems, "Flags"], rows, "lanes")


def _two_lines(cell: tuple[str, str]) -> str:
    return f'{_e(cell[0])}<span class="src">{_e(cell[1])}</span>'


def _html_facts(doc: _Document) -> str:
    if not doc.facts:
        return '<p class="muted">No slots, orders, payments, enrolments or recalls in these events.</p>'
    rows = []
    for fact in doc.facts:
        cells = "".join(
            _cell(_two_lines(c), "flagged" if fact.flags else "", raw=True)
            if c is not None
            else _cell("—", "none")
            for c in fact.cells
        )
        rows.append(
            _cell(fact.subject)
            + _cell(fact.aspect)
            + cells
            + _cell(_two_lines(fact.ledger), raw=True)
            + _cell(_refs(fact.flags), raw=True)
        )
    return _table(["Subject", "Aspect", *doc.systems, "Ledger (all systems)", "Flags"], rows)


def _html_identifiers(doc: _Document) -> str:
    rows = []
    for kind, value, held_by in doc.identifiers:
        marks = "".join(_cell("✓", "held") if h else _cell("—", "none") for h in held_by)
        rows.append(_cell(kind) + _cell(value, "mono") + marks)
    for name, held_by in doc.names:
        marks = "".join(_cell("✓", "held") if h else _cell("—", "none") for h in held_by)
        rows.append(_cell("name") + _cell(name) + marks)
    return _table(["Kind", "Value", *doc.systems], rows)


def render_html(replay: Replay, generated_at: datetime) -> str:
    """The report as one self-contained HTML page: inline CSS, no scripts, nothing fetched."""
    doc = _document(replay, generated_at)
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in doc.meta)
    headline = "".join(
        f"<div><strong>{_e(v)}</strong><span>{_e(k)}</span></div>" for k, v in doc.headline
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in doc.notes)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="{_e(GENERATOR)}">',
        f"<title>{_e(doc.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        '<main class="report">',
        "<header>",
        '<p class="kicker">Incident report · journey replay</p>',
        f"<h1>{_e(doc.title)}</h1>",
        f'<dl class="meta">{meta}</dl>',
        "</header>",
        '<section id="summary">',
        "<h2>Summary</h2>",
        f"<p>{_e(doc.summary)}</p>",
        f'<div class="headline">{headline}</div>',
        "</section>",
        '<section id="flags">',
        "<h2>Flags at the as-of moment</h2>",
        _html_flags(doc),
        "</section>",
        '<section id="timeline">',
        "<h2>Timeline</h2>",
        '<p class="muted">One column per source system; flagged events are shaded.</p>',
        _html_timeline(doc),
        "</section>",
        '<section id="knowledge">',
        "<h2>What each system knew</h2>",
        '<p class="muted">The facts carried by each system\'s own events at the as-of moment '
        "(— : nothing from that system on it).</p>",
        _html_facts(doc),
        "</section>",
        '<section id="identifiers">',
        "<h2>Identifiers</h2>",
        _html_identifiers(doc),
        "</section>",
        "<footer>",
        "<h2>About this report</h2>",
        f"<ul>{notes}</ul>",
        f"<p>Generated {_e(stamp(generated_at))} by {_e(GENERATOR)}.</p>",
        "</footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


# --- text (rich) -----------------------------------------------------------------------------------

_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def _text_cell(cell: tuple[str, str] | None) -> Text:
    if cell is None:
        return Text("—", style="dim")
    text = Text(cell[0])
    text.append(f"\n{cell[1]}", style="dim")
    return text


def report_renderable(replay: Replay, generated_at: datetime) -> Group:
    """The report as rich renderables, for a terminal."""
    doc = _document(replay, generated_at)
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="dim")
    meta.add_column()
    for key, value in doc.meta:
        meta.add_row(key, value)
    header = Panel(
        Group(meta, Text(""), Text(doc.summary)),
        title=f"[bold]{doc.title}[/]",
        title_align="left",
    )
    flags: list[Text] = [Text("Flags at the as-of moment", style="bold underline")]
    for f in doc.flags:
        style = _SEVERITY_STYLE[f.severity] if f.status == "open" else "dim"
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
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    print_report(console, replay, generated_at)
    return buffer.getvalue()


# --- any format ------------------------------------------------------------------------------------


def render(replay: Replay, fmt: ReportFormat | str, generated_at: datetime) -> str:
    """The report in a format, as text ready to print or write."""
    match ReportFormat(fmt):
        case ReportFormat.JSON:
            return render_json(replay, generated_at)
        case ReportFormat.MD:
            return render_markdown(replay, generated_at)
        case ReportFormat.HTML:
            return render_html(replay, generated_at)
        case ReportFormat.TEXT:
            return render_text(replay, generated_at)


def write_report(
    path: Path, replay: Replay, fmt: ReportFormat | str, generated_at: datetime
) -> Path:
    """Write the report to a file (UTF-8) and return its path, e.g. to open it in a browser."""
    path.write_text(render(replay, fmt, generated_at), encoding="utf-8")
    return path


def write_html(path: Path, replay: Replay, generated_at: datetime) -> Path:
    """Write the HTML report to a file and return its path."""
    return write_report(path, replay, ReportFormat.HTML, generated_at)
