"""The `IDENTITY_CONFLICT` decision buttons on a running stack (issue 13), seen through Chromium:
a real broker and worker hold Carol's and Dave's shared phone past an e-mail limit, the live
journey page shows the conflict ingest opened with "Confirm merge…", an admin confirms it from
the page, and the worker merges the two customers through the held value.

The stand-in API test (`test_actions.py`) covers the dialog in depth on a pure fold; this one
proves the live journey carries the flag. Polls only bound a hang (no timed assertion).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from playwright.sync_api import Page, expect

from journeys.devbroker import find_free_port
from tests.integration.conftest import bootstrap_servers, broker_endpoint
from tests.integration.ledger_log import (
    WorkerProcess,
    create,
    kafka_for_test,
    produce,
    sdk_keyed,
    wait_for,
    write_config,
)

__all__ = ["bootstrap_servers", "broker_endpoint"]  # the integration suite's broker fixtures

ADMIN = "live-conflict-admin-0123456789abcdef"
PHONE = "+44 113 496 0000"
EMAILS = ("carol@example.com", "dave@example.com")


def _line(event_id: str, hour: int, email: str, name: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "order.placed",
            "occurred_at": f"2024-03-09T{hour:02d}:00:00Z",
            "tenant": "acme",
            "source": {"system": "shop"},
            "customer": {"email": email, "phone": PHONE, "name": name},
            "payload": {"order_id": f"NW-{event_id}", "items": ["SKU-9"]},
        }
    )


def _journey(url: str, email: str) -> dict[str, Any] | None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    params = {"email": email, "tenant": "acme"}
    response = httpx.get(url + "/v1/journeys", params=params, headers=headers, timeout=10)
    return response.json() if response.status_code == 200 else None


def _conflicts(journey: dict[str, Any] | None) -> list[dict[str, Any]]:
    flags = [] if journey is None else journey["flags"]
    return [f for f in flags if f["rule"] == "IDENTITY_CONFLICT" and f["status"] == "open"]


@pytest.fixture(scope="module")
def live(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A worker's URL, once it shows Carol's and Dave's conflict in their live journeys."""
    kafka = kafka_for_test(bootstrap_servers, partitions=2)
    # Playwright's sync API runs an event loop on this thread: talk to the broker from another
    pool = ThreadPoolExecutor(max_workers=1)
    names = pool.submit(create, kafka).result()
    tmp = tmp_path_factory.mktemp("live-conflict")
    config = write_config(tmp / "journeys.toml", kafka)
    with config.open("a") as handle:
        handle.write(
            f'[api]\ntokens = [{{token = "{ADMIN}", tenants = ["acme"], user = "r.khan", '
            'role = "admin"}]\n'
            "[tenants.acme.identity]\nlimits = { email = 1 }\n"
        )
    port = find_free_port()
    worker = WorkerProcess(config, tmp / "w", tmp / "w.log", api_port=port).start()
    lines = [_line("s-1", 10, EMAILS[0], "Carol"), _line("s-2", 11, EMAILS[1], "Dave")]
    with pool:
        pool.submit(asyncio.run, produce(kafka, names.touchpoints, sdk_keyed(lines))).result()
    url = f"http://127.0.0.1:{port}"

    def served() -> bool:
        try:
            return all(len(_conflicts(_journey(url, e))) == 1 for e in EMAILS)
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    try:
        wait_for(served, 90, "the live journeys showing the IDENTITY_CONFLICT", 1.0)
        yield url
    finally:
        assert worker.stop() == 0, worker.log_text()[-3000:]


def test_an_admin_confirms_a_live_conflict_from_the_journey_page(
    page: Page, live: str, artifacts: Path
) -> None:
    carol = _journey(live, EMAILS[0])
    assert carol is not None
    (flag,) = _conflicts(carol)
    path = f"/ui/journey?{urlencode({'customer_id': carol['customer_id']})}"
    page.goto(f"{live}{path}#token={ADMIN}")
    card = page.locator(f'.flag-extras[data-flag-id="{flag["flag_id"]}"]')
    expect(card.get_by_role("button", name="Split…")).to_be_visible()
    card.get_by_role("button", name="Confirm merge…").click()
    dialog = page.get_by_role("dialog", name="Confirm the merge")
    expect(dialog).to_contain_text("+441134960000")
    dialog.get_by_label("Reason").fill("Carol and Dave are one household")
    dialog.get_by_role("button", name="Confirm merge").click()
    expect(card.locator(".decision-status", has_text="Decision recorded")).to_have_count(1)
    page.screenshot(path=artifacts / "journey-live-identity-conflict.png", full_page=True)

    def merged() -> bool:
        one, two = (_journey(live, e) for e in EMAILS)
        return (
            one is not None
            and two is not None
            and one["customer_id"] == two["customer_id"]
            and not _conflicts(one)
        )

    wait_for(merged, 90, "the confirmed merge joining Carol and Dave live", 0.5)
    joined = _journey(live, EMAILS[0]) or {}
    (merge,) = joined["merges"]
    assert merge["identifier"] == "phone +441134960000"
    assert merge["decision"].startswith("merge confirmed by r.khan")
