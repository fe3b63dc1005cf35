"""Incident reports: every format renders the replay, deterministically, with no card numbers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from markdown_it import MarkdownIt

from journeys.demo import demo_lines
from journeys.forensics.report import (
    FORMAT_VERSION,
    ReportFormat,
    md_escape,
    render,
    render_html,
    render_markdown,
    report_to_dict,
    stamp,
    write_html,
)
from journeys.forensics.report_text import render_text
from projections.replay import Replay, replay, replay_to_dict
from projections.settings import FoldSettings
from schemas.codec import decode_event, validate_document
from schemas.events import Event
from schemas.redaction import mask_text
from tests.factories import at, ev, raw

SETTINGS = FoldSettings()
GENERATED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CARD = "4929 1234 5678 9015"


def demo_events() -> list[Event]:
    return [decode_event(line) for line in demo_lines()]


@pytest.fixture(scope="module")
def priya() -> Replay:
    moment = datetime(2026, 11, 2, 10, tzinfo=UTC)
    return replay(demo_events(), "phone:+44 7700 900123", moment, SETTINGS)


@pytest.fixture(scope="module")
def tom() -> Replay:
    moment = datetime(2026, 11, 5, tzinfo=UTC)
    return replay(demo_events(), "email:tom.becker@example.org", moment, SETTINGS)


# --- determinism and JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(ReportFormat))
def test_reports_are_deterministic_and_carry_the_generation_time(
    priya: Replay, fmt: ReportFormat
) -> None:
    first = render(priya, fmt, GENERATED)
    assert first == render(priya, fmt, GENERATED)
    assert first != render(priya, fmt, datetime(2026, 11, 21, tzinfo=UTC))
    assert "cus_" in first


def test_json_report_shape(priya: Replay) -> None:
    data = orjson.loads(render(priya, "json", GENERATED))
    assert data == orjson.loads(orjson.dumps(report_to_dict(priya, GENERATED)))
    assert data["report"] == {
        "title": f"Incident report: Priya Shah ({priya.view.customer_id})",
        "format_version": FORMAT_VERSION,
        "generated_at": "2026-11-20T12:00:00+00:00",
        "generator": "journey-ledger",
    }
    assert set(data) == {
        "report",
        "query",
        "resolution",
        "as_of",
        "window",
        "summary",
        "names",
        "identifiers",
        "timeline",
        "flags",
        "knowledge",
    }
    assert data["as_of"] == "2026-11-02T10:00:00+00:00"
    assert {f["rule"] for f in data["flags"]} == {"DATE_MISMATCH", "REPEATED_ASK"}


def test_stamp_keeps_the_offset_as_written() -> None:
    assert stamp(datetime(2026, 11, 2, 9, 41, tzinfo=UTC)) == "2026-11-02 09:41:00 UTC"
    moment = datetime.fromisoformat("2026-11-02T10:41:00+01:00")
    assert stamp(moment) == "2026-11-02 10:41:00 +01:00"


# --- Markdown ---------------------------------------------------------------------------------------


def _headings(source: str) -> list[tuple[str, str]]:
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    return [
        (tok.tag, tokens[i + 1].content)
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open"
    ]


def _tables(source: str) -> list[list[list[str]]]:
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    tables: list[list[list[str]]] = []
    row: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.type == "table_open":
            tables.append([])
        elif tok.type == "tr_open":
            row = []
        elif tok.type in ("th_open", "td_open"):
            row.append(tokens[i + 1].content if tokens[i + 1].type == "inline" else "")
        elif tok.type == "tr_close":
            tables[-1].append(row)
    return tables


def test_markdown_has_the_sections_and_tables(priya: Replay) -> None:
    source = render_markdown(priya, GENERATED)
    assert _headings(source) == [
        ("h1", f"Incident report: Priya Shah ({priya.view.customer_id})"),
        ("h2", "Summary"),
        ("h2", "Flags at the as-of moment"),
        ("h2", "Timeline"),
        ("h2", "What each system knew"),
        ("h2", "Identifiers"),
        ("h2", "About this report"),
    ]
    tables = _tables(source)
    assert len(tables) == 6
    for table in tables:
        assert len({len(row) for row in table}) == 1, "every row has the header's columns"
    knew = next(t for t in tables if t[0][:2] == ["Subject", "Aspect"])
    assert knew[0] == [
        "Subject",
        "Aspect",
        "chat-vendor",
        "dealer-booking",
        "sms-gateway",
        "Ledger",
        "Flags",
    ]
    booked = next(row for row in knew if row[1] == "booked")
    assert booked[3].startswith("Fri 6 Nov 10:30")
    assert booked[4] == "—"
    timeline = next(t for t in tables if t[0][0] == "Time")
    assert [row[1] for row in timeline[1:]] == [
        "chat-vendor",
        "chat-vendor",
        "chat-vendor",
        "dealer-booking",
        "chat-vendor",
        "sms-gateway",
    ]


def test_markdown_escapes_what_would_break_a_table() -> None:
    assert md_escape("a | b *c* _d_ <i>\nnext") == r"a \| b \*c\* \_d\_ \<i\> next"
    assert md_escape("cus_4c75 DATE_MISMATCH x_ _y") == r"cus_4c75 DATE_MISMATCH x\_ \_y"
    event = ev(
        "message.received",
        {"medium": "email", "text": "Total | 100 *urgent* <b>now</b> [x](http://e.test)"},
        system="inbox",
    )
    source = render_markdown(replay([event], "email:sam@example.com", at(1), SETTINGS), GENERATED)
    html = MarkdownIt("commonmark").enable("table").render(source)
    assert "<b>now</b>" not in html
    assert "<em>urgent</em>" not in html
    assert "*urgent*" in html
    assert "<a " not in html
    for table in _tables(source):
        assert len({len(row) for row in table}) == 1


# --- HTML -------------------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}


class _Checker(HTMLParser):
    """Checks that tags nest and close, and collects text, ids, tags and attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []
        self.ids: list[str] = []
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.headers: list[list[str]] = []
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend(attrs)
        self.ids.extend(v for k, v in attrs if k == "id" and v)
        if tag == "thead":
            self.headers.append([])
        if tag == "th":
            self._in_th = True
            self.headers[-1].append("")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._in_th = False
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_th:
            self.headers[-1][-1] += data


def check_html(source: str) -> _Checker:
    checker = _Checker()
    checker.feed(source)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []
    return checker


def test_html_is_well_formed_self_contained_and_complete(tom: Replay) -> None:
    source = render_html(tom, GENERATED)
    assert source.startswith("<!DOCTYPE html>")
    page = check_html(source)
    assert {"script", "link", "img", "iframe", "object"}.isdisjoint(page.tags)
    assert "style" in page.tags
    assert not any(k in ("src", "href") for k, _ in page.attributes)
    assert "url(" not in source
    assert "@import" not in source
    assert {"summary", "flags", "timeline", "knowledge", "identifiers"} <= set(page.ids)
    text = " ".join(page.text)
    assert "Incident report: Tom Becker" in text
    assert "PAYMENT_FOR_CANCELLED_ORDER" in text
    assert "First visible" in text
    systems = ["web-shop", "card-processor", "call-centre", "order-system"]
    lanes = next(h for h in page.headers if h[0] == "Time")
    assert lanes == ["Time", *systems, "Flags"]
    knew = next(h for h in page.headers if h[:2] == ["Subject", "Aspect"])
    assert knew == ["Subject", "Aspect", *systems, "Ledger (all systems)", "Flags"]
    idents = next(h for h in page.headers if h[:2] == ["Kind", "Value"])
    assert idents == ["Kind", "Value", *systems]


def test_html_escapes_everything_from_the_events() -> None:
    event = ev(
        "message.received",
        {"medium": "email", "text": "<script>alert('x')</script> & <img src=x>"},
        system='inbox"><b>',
        customer={"email": "sam@example.com", "name": "<i>Sam</i>"},
    )
    source = render_html(replay([event], "email:sam@example.com", at(1), SETTINGS), GENERATED)
    page = check_html(source)
    assert {"script", "img", "i", "b"}.isdisjoint(page.tags)
    assert "<script>" not in source
    assert "&lt;script&gt;" in source
    assert "<i>Sam</i>" in " ".join(page.text)


def test_write_html_writes_a_file_a_browser_can_open(tmp_path: Path, priya: Replay) -> None:
    path = write_html(tmp_path / "report.html", priya, GENERATED)
    assert path.read_text(encoding="utf-8") == render_html(priya, GENERATED)


# --- text -------------------------------------------------------------------------------------------


def test_text_report_reads_as_an_incident_report(priya: Replay) -> None:
    text = render(priya, "text", GENERATED)
    assert "\x1b[" not in text
    for expected in (
        "Incident report: Priya Shah",
        "DATE_MISMATCH",
        "sms-gateway told the customer",
        "first visible 2026-11-02 09:41:00 UTC to dealer-booking, sms-gateway",
        "What each system knew",
        "Generated 2026-11-20 12:00:00 UTC",
    ):
        assert expected in text


def test_a_superseded_customer_id_is_explained_in_every_format() -> None:
    before = ev("message.sent", {"medium": "sms"}, when=at(), customer={"phone": "+447700900123"})
    link = ev(
        "form.submitted",
        {"form": "contact"},
        when=at(1),
        customer={"email": "sam@example.com", "phone": "+447700900123"},
    )
    first = replay([before], "phone:+447700900123", at(0.5), SETTINGS).view.customer_id
    result = replay([before, link], first, at(2), SETTINGS)
    assert result.resolution.superseded
    for fmt in ReportFormat:
        assert "was merged into" in render(result, fmt, GENERATED)


# --- card numbers -----------------------------------------------------------------------------------


def test_no_report_holds_a_card_number_that_reached_the_raw_input() -> None:
    document = raw(
        "call.logged",
        {
            "direction": "inbound",
            "reason": f"card {CARD} charged twice",
            "card_seen": CARD.replace(" ", "-"),
            "note": 4929123456789015,
        },
        system="call-centre",
        customer={"email": "sam@example.com", "customer_ref": CARD},
    )
    event = validate_document(document)
    assert event.redacted
    result = replay([event], "email:sam@example.com", at(1), SETTINGS)
    digits = re.sub(r"\D", "", CARD)
    for fmt in ReportFormat:
        output = render(result, fmt, GENERATED)
        assert digits not in re.sub(r"[\s\-]", "", output)
        assert mask_text(output) == (output, False)
        assert "9015" in output  # the masked form, last four digits, is what shows


# --- people's handling of a flag ------------------------------------------------------------


def _handled_replay(as_of: datetime) -> Replay:
    from tests.unit.test_handling import MISMATCH, act

    events = [
        *MISMATCH,
        act("flag.acknowledged", 2, by="sam@acme"),
        act("flag.assigned", 2.5, by="sam@acme", assignee="leeds-desk"),
        act("flag.resolved", 4, by="jo@acme", note="called the customer, booking moved"),
    ]
    return replay(events, "email:sam@example.com", as_of, SETTINGS)


def test_replay_shows_when_a_flag_was_flagged_seen_and_fixed_in_order() -> None:
    text = render_text(_handled_replay(at(hours=6)), GENERATED, width=400)
    assert "seen by sam@acme" in text
    assert "assigned to leeds-desk" in text
    assert "resolved by hand by jo@acme" in text
    assert "(3 h after it opened)" in text
    order = [
        text.index("sam@acme acknowledged flag"),
        text.index("sam@acme assigned flag"),
        text.index("jo@acme resolved flag"),
    ]
    assert order == sorted(order)
    document = replay_to_dict(_handled_replay(at(hours=6)))
    (flag,) = document["flags"]
    assert flag["status"] == "resolved"
    assert flag["handling"]["resolved_by"] == "jo@acme"


def test_replay_before_the_actions_shows_the_flag_unhandled() -> None:
    text = render_text(_handled_replay(at(hours=1, minutes=30)), GENERATED)
    assert "seen by" not in text
    assert "acknowledged flag" not in text
