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

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from journeys.forensics.document import GENERATOR, document_of, stamp, title_of
from journeys.forensics.report_html import render_html
from journeys.forensics.report_text import print_report, render_text
from projections.replay import Replay, replay_to_dict

__all__ = [
    "FORMAT_VERSION",
    "GENERATOR",
    "ReportFormat",
    "md_escape",
    "print_report",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "render_text",
    "report_to_dict",
    "stamp",
    "write_html",
    "write_report",
]

FORMAT_VERSION = 1
"""The version of the JSON report shape; it goes up when a field changes meaning."""


class ReportFormat(StrEnum):
    """The formats a replay report is written in."""

    TEXT = "text"
    JSON = "json"
    MD = "md"
    HTML = "html"


# --- JSON ------------------------------------------------------------------------------------------


def report_to_dict(replay: Replay, generated_at: datetime) -> dict[str, Any]:
    """The report as a JSON-ready dict (the shape is in the module docstring)."""
    return {
        "report": {
            "title": title_of(replay),
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


def _joined(cell: tuple[str, str] | None) -> str:
    return "—" if cell is None else f"{cell[0]} ({cell[1]})"


def render_markdown(replay: Replay, generated_at: datetime) -> str:
    """The report as Markdown: headings, tables, nothing that needs a renderer's extensions."""
    doc = document_of(replay, generated_at)
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
                "Handled",
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
                    f.handled,
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
