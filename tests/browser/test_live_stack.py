"""`journeys up --demo` for real (embedded broker, worker, API), seen through Chromium.

The stand-in API tests cover the pages in depth; this one proves the whole stack: the flags the
worker raised from the demo file reach the dashboard, and a flag opens its journey with the
flagged events highlighted. Expected texts come from `journeys check` of the same file.

With a webhook receiver configured, every demo HIGH flag arrives signed; a manager acknowledges
and resolves one from the pages, a viewer sees who did it, and a replay of that customer from
the log shows the handling in order (issue 15's "done when").
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, expect
from standardwebhooks import Webhook

from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from journeys.devbroker import find_free_port
from projections.settings import FoldSettings
from projections.view import view_to_dict
from streams.crypto.keys import LocalKeyProvider
from tests.browser.conftest import PageErrors, new_context

MANAGER_TOKEN = "jl-live-manager-5c1e0a9b7d3f"
VIEWER_TOKEN = "jl-live-viewer-8e2b4d6f0a1c"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"live-stack-webhook-secret-32-byte").decode()


class Receiver:
    """A webhook receiver on a thread: keeps each POST's headers and body."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                del args

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verified(self) -> dict[str, dict[str, Any]]:
        """Every notification whose signature checks, by webhook id (repeats collapse)."""
        hook = Webhook(WEBHOOK_SECRET)
        return {
            headers["webhook-id"]: hook.verify(body, headers) for headers, body in self.received
        }


@dataclass
class Live:
    """A running `journeys up --demo`: its URL, session token and what the pure fold expects."""

    url: str
    token: str
    journeys: dict[str, dict[str, Any]]
    bootstrap: str = ""
    receiver: Receiver | None = None
    master_key: str = ""

    def open_flags(self) -> list[dict[str, Any]]:
        return [
            {**f, "customer_id": j["customer_id"]}
            for j in self.journeys.values()
            for f in j["flags"]
            if f["status"] == "open"
        ]


def expected_journeys(master_key: str) -> dict[str, dict[str, Any]]:
    """The demo's journeys as `journeys check` gives them with the stack's master key: with it,
    the identity graph's keys, so the customer ids, are keyed hashes as the live worker's are."""
    secret = LocalKeyProvider.from_setting(master_key).identity_secret
    report = check_lines(
        demo_lines(), replace(FoldSettings(), identity_secret=secret), datetime.now(UTC)
    )
    return {v.customer_id: view_to_dict(v) for v in report.journeys}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    port = find_free_port()
    home = tmp_path_factory.mktemp("up")
    out = home / "up.out"
    receiver = Receiver()
    config = home / "journeys.toml"
    config.write_text(
        "[api]\ntokens = [\n"
        f'  {{ token = "{MANAGER_TOKEN}", tenants = ["*"], user = "sam@acme", role = "manager" }},\n'
        f'  {{ token = "{VIEWER_TOKEN}", tenants = ["*"], user = "vic@acme", role = "viewer" }},\n'
        "]\n[notify]\nfirst_retry_s = 0.2\n"
        f'[[notify.webhooks]]\nurl = "{receiver.url}"\nsecret = "{WEBHOOK_SECRET}"\n'
        'min_severity = "high"\n',
        encoding="utf-8",
    )
    journeys = Path(sys.executable).with_name("journeys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["JOURNEYS_CONFIG"] = str(config)
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(journeys), "up", "--demo", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        token = _wait_for_token(out, proc)
        # The demo runs sealed, with a key of its own: the banner names its file, not the key.
        key_line = r'export JOURNEYS_MASTER_KEY="\$\(cat (\S+)\)"'
        wait_until = time.monotonic() + 10  # the banner's lines come one by one
        while not re.search(key_line, out.read_text()) and time.monotonic() < wait_until:
            time.sleep(0.1)
        printed = out.read_text()
        bootstrap = re.search(r"export JOURNEYS_BOOTSTRAP_SERVERS=(\S+)", printed)
        key_file = re.search(key_line, printed)
        assert key_file, printed
        master_key = Path(key_file.group(1)).read_text()
        assert master_key not in printed
        live = Live(
            f"http://127.0.0.1:{port}",
            token,
            expected_journeys(master_key),
            bootstrap.group(1) if bootstrap else "",
            receiver,
            master_key,
        )
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
        receiver.server.shutdown()
        receiver.server.server_close()
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


def test_a_manager_acts_from_the_pages_a_viewer_sees_it_and_replay_shows_it(
    live: Live, browser: Browser, artifacts: Path
) -> None:
    # Every demo HIGH flag arrives at the receiver, signed.
    high = {
        f["flag_id"] for j in live.journeys.values() for f in j["flags"] if f["severity"] == "high"
    }
    assert high
    assert live.receiver is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        notified = {n["flag"]["flag_id"] for n in live.receiver.verified().values()}
        if high <= notified:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"high flags never notified: {sorted(high - notified)}")
    assert all(n["flag"]["severity"] == "high" for n in live.receiver.verified().values())

    # A manager acknowledges one from the dashboard and resolves it from its journey page.
    flag = next(
        f
        for j in live.journeys.values()
        for f in j["flags"]
        if f["rule"] == "DATE_MISMATCH" and f["status"] == "open"
    )
    customer = next(c for c, j in live.journeys.items() if flag in j["flags"])
    context = new_context(browser)
    page = context.new_page()
    errors = PageErrors(page)
    page.goto(f"{live.url}/ui/#token={MANAGER_TOKEN}")
    item = page.locator(f'#flag-list li.flag-item[data-flag-id="{flag["flag_id"]}"]')
    item.get_by_role("button", name="Acknowledge").click()
    expect(item.locator(".handling-summary")).to_contain_text("acknowledged by sam@acme")
    page.goto(
        f"{live.url}/ui/journey?customer_id={quote(customer)}#flag={flag['flag_id']}"
        f"&token={MANAGER_TOKEN}"
    )
    extras = page.locator(f'.flag-extras[data-flag-id="{flag["flag_id"]}"]')
    extras.get_by_role("button", name="Resolve…").click()
    dialog = page.get_by_role("dialog", name="Resolve this flag")
    dialog.get_by_label("Reason").fill("called the customer, booking moved")
    dialog.get_by_role("button", name="Resolve", exact=True).click()
    expect(extras.locator(".handling-state")).to_have_text("Resolved by hand")
    page.screenshot(path=artifacts / "live-resolved-by-hand.png", full_page=True)
    context.close()
    assert errors.messages == []

    # Another person, a viewer, sees who did it (and may not act).
    other = new_context(browser)
    viewer = other.new_page()
    viewer.goto(f"{live.url}/ui/?status=any#token={VIEWER_TOKEN}")
    row = viewer.locator(f'#flag-list li.flag-item[data-flag-id="{flag["flag_id"]}"]')
    expect(row.locator(".handling-summary")).to_contain_text("sam@acme")
    expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
    other.close()

    # A replay of that customer from the log shows flagged, seen and fixed, in that order.
    identifier = next(
        f"{i['kind']}:{i['value']}"
        for i in live.journeys[customer]["identifiers"]
        if i.get("not_used_for_matching") is None
    )
    journeys = Path(sys.executable).with_name("journeys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["JOURNEYS_BOOTSTRAP_SERVERS"] = live.bootstrap
    env["JOURNEYS_MASTER_KEY"] = live.master_key
    replayed = subprocess.run(
        [str(journeys), "replay", identifier, "--format", "json"],
        capture_output=True,
        env=env,
        timeout=120,
        check=True,
    )
    document = orjson.loads(replayed.stdout)
    (shown,) = [f for f in document["flags"] if f["flag_id"] == flag["flag_id"]]
    assert shown["status"] == "resolved"
    assert shown["handling"]["acknowledged_by"] == "sam@acme"
    assert shown["handling"]["resolved_by"] == "sam@acme"
    actions = [a["action"] for a in shown["handling"]["actions"]]
    assert actions == ["acknowledge", "resolve"]
    desk = [e["type"] for e in document["timeline"] if e["type"].startswith("flag.")]
    assert desk == ["flag.acknowledged", "flag.resolved"]
