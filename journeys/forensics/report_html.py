"""The incident report as one self-contained HTML page (its CSS is `static/report.css`, inlined)."""

from __future__ import annotations

import html
from datetime import datetime
from functools import cache
from importlib import resources

from journeys.forensics.document import GENERATOR, Document, document_of, stamp
from projections.replay import Replay


@cache
def report_css() -> str:
    """The report's style sheet (package data), as the page inlines it."""
    return (
        resources.files("journeys.forensics")
        .joinpath("static/report.css")
        .read_text(encoding="utf-8")
    )


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


def _html_flags(doc: Document) -> str:
    if not doc.flags:
        return '<p class="muted">No flags.</p>'
    cards = []
    for f in doc.flags:
        details = [
            ("Opened", f.opened),
            ("First visible", f.first_visible),
            ("Visible to", f.visible_to),
            ("Resolved", f"{f.resolved}: {f.resolution}" if f.resolved else "not resolved"),
            ("Handled", f.handled or "nobody has acted on it"),
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


def _html_timeline(doc: Document) -> str:
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


def _html_facts(doc: Document) -> str:
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


def _html_identifiers(doc: Document) -> str:
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
    doc = document_of(replay, generated_at)
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
        f"<style>\n{report_css()}</style>",
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
