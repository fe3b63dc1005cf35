"""`journeys up --demo` for real (embedded broker, worker, API), seen through Chromium.

The stand-in API tests cover the pages in depth; this one proves the whole stack: the flags the
worker raised from the demo file reach the dashboard, and a flag opens its journey with the
flagged events highlighted. Expected texts come from `journeys check` of the same file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, expect

from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from journeys.devbroker import find_free_port
from projections.settings import FoldSettings
from projections.view import view_to_dict
from tests.browser.conftest import PageErrors, new_context


@dataclass
class Live:
    """A running `journeys up --demo`: its URL, session token and what the pure fold expects."""

    url: str
    token: str
    journeys: dict[str, dict[str, Any]]

    def open_flags(self) -> list[dict[str, Any]]:
        return [
            {**f, "customer_id": j["customer_id"]}
            for j in self.journeys.values()
            for f in j["flags"]
            if f["status"] == "open"
        ]


def expected_journeys() -> dict[str, dict[str, Any]]:
    report = check_lines(demo_lines(), FoldSettings(), datetime.now(UTC))
    return {v.customer_id: view_to_dict(v) for v in report.journeys}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    port = find_free_port()
    out = tmp_path_factory.mktemp("up") / "up.out"
    journeys = Path(sys.executable).with_name("journeys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(journeys), "up", "--demo", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        token = _wait_for_token(out, proc)
        live = Live(f"http://127.0.0.1:{port}", token, expected_journeys())
        want = sum(len(j["flags"]) for j in live.journeys.values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            flags = httpx.get(
                f"{live.url}/v1/flags",
                params={"limit": 500},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["flags"]
            if len(flags) == want:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the demo's flags never all appeared; see {out}")
        yield live
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, out.read_text()[-3000:]


def _wait_for_token(out: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"export JOURNEYS_TOKEN=(\S+)", out.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            pytest.fail(f"journeys up exited with {proc.returncode}: {out.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"journeys up printed no token within 60 s: {out.read_text()}")


def test_the_dashboard_shows_the_flags_the_worker_raised(
    live: Live, browser: Browser, artifacts: Path
) -> None:
    context = new_context(browser)
    page = context.new_page()
    errors = PageErrors(page)
    page.goto(f"{live.url}/ui/#token={live.token}")
    open_flags = live.open_flags()
    for flag in open_flags:
        item = page.locator(f'#flag-list li[data-flag-id="{flag["flag_id"]}"]')
        expect(item.locator(".flag-message")).to_have_text(flag["message"])
    page.screenshot(path=artifacts / "live-dashboard.png", full_page=True)

    flag = next(f for f in open_flags if f["rule"] == "DATE_MISMATCH")
    page.locator(f'#flag-list li[data-flag-id="{flag["flag_id"]}"] a').click()
    expect(page).to_have_url(re.compile(re.escape(f"#flag={quote(flag['flag_id'])}") + "$"))
    expect(page.locator("article.event.is-highlighted")).to_have_count(len(flag["event_ids"]))
    journey = live.journeys[flag["customer_id"]]
    for event in journey["events"]:
        expect(page.locator(f'article.event[data-event-id="{event["event_id"]}"]')).to_have_count(1)
    page.screenshot(path=artifacts / "live-journey.png", full_page=True)
    context.close()
    assert errors.messages == []
