"""The dashboard's trends in headless Chromium: the chart of open flags, the medians, the lists.

The flags are the demo's, folded by the pure code, plus two laid over by hand because the demo
has neither yet: an acknowledgement of its DATE_MISMATCH flag and `LOW_SCORE_AFTER_FLAGS` flags
(the rule lands separately; their message reads as the rule writes it). Every expected number is
computed by `flag_stats`, the function the API calls, for the window the page asks for.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from playwright.sync_api import Page, expect

from projections.handling.stats import StatsWindow, flag_stats
from schemas.outputs import HandlingSnapshot
from tests.browser.conftest import BROWSER_NOW
from tests.browser.demo_api import TOKEN, Demo, ServerThread, make_app

HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'


def _trend_flags(demo: Demo) -> list[dict[str, Any]]:
    flags = [dict(f) for f in demo.flags()]
    date_mismatch = next(f for f in flags if f["rule"] == "DATE_MISMATCH")
    opened = date_mismatch["opened_at"]
    acknowledged = (
        HandlingSnapshot(
            state="acknowledged",
            acknowledged_at=_shifted(opened, timedelta(hours=6)),
            acknowledged_by="sam.patel",
            action_count=1,
        )
    ).to_document()
    date_mismatch["handling"] = acknowledged
    recall = next(f for f in flags if f["rule"] == "RECALL_NOT_VISIBLE")
    low_scores = [
        {
            **recall,
            "flag_id": "flg_low_score_recall",
            "rule": "LOW_SCORE_AFTER_FLAGS",
            "severity": "medium",
            "message": (
                "customer scored 3/10 in survey-tool; in the 30 days before: RECALL_NOT_VISIBLE "
                "(head-office-recalls, service-centre), still open"
            ),
            "event_ids": [*recall["event_ids"], "acm-survey-1"],
            "opened_at": _shifted(recall["opened_at"], timedelta(hours=8)),
            "systems": [*recall["systems"], "survey-tool"],
        },
        {
            **recall,
            "flag_id": "flg_low_score_hostile",
            "rule": "LOW_SCORE_AFTER_FLAGS",
            "severity": "medium",
            "message": f"customer scored 1/5 in {HOSTILE}; in the 30 days before: REPEATED_ASK",
            "opened_at": _shifted(recall["opened_at"], timedelta(hours=-30)),
            "sites": [],
        },
    ]
    return sorted([*flags, *low_scores], key=lambda f: f["opened_at"], reverse=True)


def _shifted(iso: str, by: timedelta) -> str:
    return (datetime.fromisoformat(iso) + by).isoformat()


@pytest.fixture(scope="module")
def flags(demo: Demo) -> list[dict[str, Any]]:
    """The flags the stand-in serves in these tests."""
    return _trend_flags(demo)


@pytest.fixture(scope="module")
def trends_server(demo: Demo, flags: list[dict[str, Any]]) -> Iterator[ServerThread]:
    """The pages and the stand-in API over `flags`."""
    with ServerThread(make_app(demo, flags=flags)) as running:
        yield running


def expected(flags: list[dict[str, Any]], days: int = 30, bucket: str = "day") -> dict[str, Any]:
    """The trends of the window the page asks for: the `days` up to the browser's clock."""
    return flag_stats(flags, StatsWindow(BROWSER_NOW - timedelta(days=days), BROWSER_NOW, bucket))


def open_dashboard(page: Page, server: ServerThread) -> None:
    page.goto(f"{server.url}/ui/#token={TOKEN}")
    expect(page.locator("#trends")).to_have_attribute("data-state", "ready")


def keys_shown(page: Page, selector: str, attribute: str) -> list[str]:
    found: list[str] = page.locator(selector).evaluate_all(
        f"nodes => nodes.map(n => n.getAttribute('{attribute}'))"
    )
    return found


def journey_href(flag: dict[str, Any]) -> str:
    query = urlencode({"customer_id": flag["customer_id"]})
    return f"/ui/journey?{query}#flag={quote(flag['flag_id'])}"


def test_trends_chart_has_a_line_per_rule_with_open_flags_and_marks_low_scores(
    page: Page, trends_server: ServerThread, flags: list[dict[str, Any]], artifacts: Path
) -> None:
    stats = expected(flags)
    points = stats["open_over_time"]
    rules = {rule for point in points for rule, n in point["by_rule"].items() if n}
    assert len(rules) >= 5, "the demo should have several rules open in the window"
    open_dashboard(page, trends_server)

    chart = page.locator("#trends-chart svg")
    expect(chart).to_have_count(1)
    assert sorted(keys_shown(page, "#trends-chart svg g.series", "data-key")) == sorted(rules)
    # Each line passes through one point per bucket.
    for rule in rules:
        dots = page.locator(f'#trends-chart svg g.series[data-key="{rule}"] circle')
        expect(dots).to_have_count(len(points))
    expect(chart.locator("title").first).to_have_text("Open flags over time by rule")
    desc = chart.locator("desc")
    expect(desc).to_contain_text(f"Most open: {max(p['total'] for p in points)}")
    assert chart.get_attribute("role") == "img"

    # The low scores are marked on the time axis, each with its message as its title.
    low = stats["low_scores"]
    assert len(low) == 2
    marked = keys_shown(page, "#trends-chart g.low-score-marker", "data-flag-id")
    assert sorted(marked) == sorted(f["flag_id"] for f in low)

    # The table alternative: one row per bucket, a column per rule, the totals last.
    rows = page.locator("#trends-table tbody tr")
    expect(rows).to_have_count(len(points))
    last = rows.nth(len(points) - 1).locator("td")
    expect(last.last).to_have_text(str(points[-1]["total"]))
    expect(page.locator("#trends-table thead th")).to_have_count(len(rules) + 2)

    page.locator("#trends").screenshot(path=artifacts / "dashboard-trends.png")


def test_trends_switch_to_a_line_per_site(
    page: Page, trends_server: ServerThread, flags: list[dict[str, Any]]
) -> None:
    points = expected(flags)["open_over_time"]
    sites = {site for point in points for site, n in point["by_site"].items() if n}
    assert "" in sites, "some demo flags carry no site"
    open_dashboard(page, trends_server)
    page.locator("label[for=trends-by-site]").click()
    expect(page.locator("#trends-chart svg title").first).to_have_text(
        "Open flags over time by site"
    )
    assert sorted(keys_shown(page, "#trends-chart svg g.series", "data-key")) == sorted(sites)
    expect(page.locator('#trends-chart .chart-legend li[data-key=""]')).to_have_text("No site")


def test_trends_medians_oldest_high_flags_and_low_scores(
    page: Page, trends_server: ServerThread, flags: list[dict[str, Any]]
) -> None:
    stats = expected(flags)
    open_dashboard(page, trends_server)

    # Medians: a row per rule and site acknowledged or resolved in the window.
    acknowledged = {(r["rule"], r["site"]): r for r in stats["time_to_acknowledge"]}
    resolved = {(r["rule"], r["site"]): r for r in stats["time_to_resolve"]}
    assert acknowledged, "the hand-made acknowledgement falls in the window"
    assert resolved, "the demo resolves flags in the window"
    wanted = sorted({*acknowledged, *resolved})
    rows = page.locator("#trends-medians-body tr")
    expect(rows).to_have_count(len(wanted))
    for rule, site in wanted:
        row = page.locator(f'#trends-medians-body tr[data-rule="{rule}"][data-site="{site}"]')
        cells = row.locator("td")
        for index, found in ((1, acknowledged), (2, resolved)):
            if (rule, site) in found:
                seconds = cells.nth(index).get_attribute("data-seconds")
                assert seconds is not None
                assert float(seconds) == found[(rule, site)]["median_s"]
                expect(cells.nth(index)).to_contain_text(f"({found[(rule, site)]['count']})")
            else:
                expect(cells.nth(index)).to_have_text("—")
    # The acknowledgement took 6 hours.
    row = page.locator('#trends-medians-body tr[data-rule="DATE_MISMATCH"]')
    expect(row.locator("td").nth(1)).to_contain_text("6 h")

    # The oldest unacknowledged high flags, oldest first, each linking to its journey; the
    # acknowledged DATE_MISMATCH is not among them.
    oldest = stats["oldest_unacknowledged_high"]
    assert oldest
    assert "DATE_MISMATCH" not in {f["rule"] for f in oldest}
    assert keys_shown(page, "#trends-oldest li", "data-flag-id") == [f["flag_id"] for f in oldest]
    for flag in oldest:
        link = page.locator(f'#trends-oldest li[data-flag-id="{flag["flag_id"]}"] a')
        assert link.get_attribute("href") == journey_href(flag)

    # The low scores, newest first: when, site, the score and the flags before it, the journey.
    low = list(reversed(stats["low_scores"]))
    assert keys_shown(page, "#trends-low-scores li", "data-flag-id") == [f["flag_id"] for f in low]
    for flag in low:
        item = page.locator(f'#trends-low-scores li[data-flag-id="{flag["flag_id"]}"]')
        expect(item.locator(".trend-message")).to_have_text(flag["message"])
        expect(item.locator(".trend-site")).to_have_text(", ".join(flag["sites"]) or "No site")
        assert item.locator("a").get_attribute("href") == journey_href(flag)
    # A message is text, whatever it holds.
    expect(page.locator("#trends img")).to_have_count(0)
    assert page.evaluate("document.body.dataset.pwned") is None


def test_trends_window_changes_the_buckets(
    page: Page, trends_server: ServerThread, flags: list[dict[str, Any]], artifacts: Path
) -> None:
    open_dashboard(page, trends_server)
    page.locator("#trends-window").select_option("7")
    points = expected(flags, days=7, bucket="hour")["open_over_time"]
    expect(page.locator("#trends-table tbody tr")).to_have_count(len(points))
    asked = [r for r in trends_server.seen if r.path == "/v1/stats/flags"]
    assert "bucket=hour" in asked[-1].query
    page.locator("#trends .trends-card").first.screenshot(path=artifacts / "trends-7-days.png")
