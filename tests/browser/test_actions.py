"""Acting on flags from the pages, in headless Chromium, against the stand-in API.

Each test has its own stand-in (a fresh fold of the demo): an action adds a real `flag.*` event
and the pure code folds it, so what the pages show afterwards is the handling the ledger computes.
Expected texts come from that fold (`Demo.flag`), never from the page's own output.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect

from journeys.server.web import static_dir
from journeys.settings import Settings
from tests.browser.conftest import BROWSER_NOW, PageErrors, new_context
from tests.browser.demo_api import (
    AS_OF,
    MANAGER_TOKEN,
    TOKEN,
    USERS,
    VIEWER_TOKEN,
    Demo,
    ServerThread,
    load_demo,
    make_app,
)

MANAGER = USERS[MANAGER_TOKEN].user
HOSTILE = "<img src=x onerror=alert(1)>\x07\x1b[31mred\u202eevil\x00 <script>alert(2)</script>"
"""A note as an attacker would write it: markup, a bell, a terminal escape, a bidi override."""


@pytest.fixture
def acting() -> Iterator[tuple[ServerThread, Demo]]:
    """A stand-in of its own, so that actions never leak into other tests."""
    demo = load_demo()
    with ServerThread(make_app(demo)) as running:
        yield running, demo


def open_as(page: Page, server: ServerThread, token: str, path: str = "/ui/") -> None:
    """Open a page signed in with a token (in the fragment, as `journeys up`'s link does)."""
    joiner = "&" if "#" in path else "#"
    page.goto(f"{server.url}{path}{joiner}token={token}")


def journey_path(customer_id: str, flag_id: str | None = None) -> str:
    fragment = f"#flag={flag_id}" if flag_id else ""
    return f"/ui/journey?{urlencode({'customer_id': customer_id})}{fragment}"


def manager_flag(demo: Demo, index: int = 0) -> dict[str, Any]:
    """An open flag the manager may act on (their tenant), that nobody acted on yet."""
    user = USERS[MANAGER_TOKEN]
    flags = [f for f in demo.open_flags() if user.sees(f["tenant"]) and "handling" not in f]
    return flags[index]


def row(page: Page, flag: dict[str, Any]) -> Locator:
    return page.locator(f'#flag-list li.flag-item[data-flag-id="{flag["flag_id"]}"]')


def extras(page: Page, flag: dict[str, Any]) -> Locator:
    return page.locator(f'.flag-extras[data-flag-id="{flag["flag_id"]}"]')


def post(server: ServerThread, path: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
    """POST to the stand-in directly (to learn what it answers)."""
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection.request("POST", path, json.dumps(body), headers)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


def text_of(locator: Locator) -> str:
    """The exact text content (no whitespace normalising)."""
    text: str = locator.evaluate("node => node.textContent")
    return text


# ---------------------------------------------------------------------------------------------
# The dashboard


def test_a_manager_acknowledges_from_the_dashboard_and_a_viewer_sees_who(
    page: Page, browser: Browser, acting: tuple[ServerThread, Demo], artifacts: Path
) -> None:
    server, demo = acting
    flag = manager_flag(demo)
    open_as(page, server, MANAGER_TOKEN)
    expect(page.locator("#whoami")).to_contain_text(MANAGER)
    item = row(page, flag)
    expect(item.locator(".handling-state")).to_have_text("Unacknowledged")
    # The ledger folds an action a moment after accepting it: the row says so meanwhile.
    demo.hold = True
    item.get_by_role("button", name="Acknowledge").click()
    expect(item.locator(".action-status")).to_have_text("Saved, waiting for the ledger…")
    expect(item.get_by_role("button", name="Acknowledge")).to_be_disabled()
    expect(item.locator(".handling-state")).to_have_text("Unacknowledged")
    assert len(demo.pending) == 1
    demo.release()

    expect(row(page, flag).locator(".handling-state")).to_have_text("Acknowledged")
    expect(row(page, flag).locator(".handling-summary")).to_contain_text(
        f"acknowledged by {MANAGER}"
    )
    expect(row(page, flag).locator(".action-status")).to_have_text("Acknowledged: saved.")
    # What the row shows is what the ledger folded.
    handling = (demo.flag(flag["flag_id"]) or {})["handling"]
    assert handling["state"] == "acknowledged"
    assert handling["acknowledged_by"] == MANAGER
    assert [a["action"] for a in handling["actions"]] == ["acknowledge"]
    # Once acknowledged, the button to acknowledge goes; focus stays on the row's buttons.
    expect(row(page, flag).get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(row(page, flag).locator(".flag-actions button").first).to_be_focused()
    page.screenshot(path=artifacts / "dashboard-acknowledged.png", full_page=True)

    # Another person, a viewer, sees who did it, and has no buttons.
    other = new_context(browser)
    try:
        viewer = other.new_page()
        viewer.clock.set_fixed_time(BROWSER_NOW)
        errors = PageErrors(viewer)
        open_as(viewer, server, VIEWER_TOKEN)
        expect(row(viewer, flag).locator(".handling-summary")).to_contain_text(
            f"acknowledged by {MANAGER}"
        )
        expect(viewer.locator("#flag-list li.flag-item").first).to_be_visible()
        expect(viewer.locator(".flag-actions")).to_have_count(0)
        expect(viewer.locator("#whoami")).to_contain_text("Viewer")
        assert errors.messages == []
    finally:
        other.close()


def test_the_mine_view_lists_a_flag_once_assigned_to_oneself(
    page: Page, acting: tuple[ServerThread, Demo], artifacts: Path
) -> None:
    server, demo = acting
    flag = manager_flag(demo, 1)
    open_as(page, server, MANAGER_TOKEN)
    page.get_by_role("button", name="Mine", exact=True).click()
    expect(page).to_have_url(re.compile(r"\?handling=mine$"))
    expect(page.locator("#list-state .state-no-match")).to_be_visible()

    page.get_by_role("button", name="All", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/$"))
    row(page, flag).get_by_role("button", name="Assign…").click()
    dialog = page.get_by_role("dialog", name="Assign this flag")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Assign to")).to_be_focused()
    dialog.get_by_label("Assign to").fill(MANAGER)
    dialog.get_by_role("button", name="Assign", exact=True).click()
    expect(dialog).to_have_count(0)
    expect(row(page, flag).locator(".handling-summary")).to_contain_text(f"assigned to {MANAGER}")
    expect(row(page, flag).locator(".handling-state")).to_have_text("Assigned")

    page.get_by_role("button", name="Mine", exact=True).click()
    expect(page).to_have_url(re.compile(r"\?handling=mine$"))
    expect(page.get_by_role("button", name="Mine", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator("#flag-list li.flag-item")).to_have_count(1)
    expect(row(page, flag)).to_be_visible()
    page.screenshot(path=artifacts / "dashboard-mine.png", full_page=True)

    # The view is in the address: it survives a reload.
    page.reload()
    expect(page.locator("#flag-list li.flag-item")).to_have_count(1)
    expect(row(page, flag)).to_be_visible()

    # Unacknowledged no longer holds it (assigning means someone saw it); Assigned does.
    page.get_by_role("button", name="Unacknowledged").click()
    expect(page).to_have_url(re.compile(r"\?handling=unacknowledged$"))
    expect(page.locator("#flag-list li.flag-item").first).to_be_visible()
    expect(row(page, flag)).to_have_count(0)
    page.get_by_role("button", name="Assigned", exact=True).click()
    expect(page).to_have_url(re.compile(r"\?handling=assigned$"))
    expect(page.locator("#flag-list li.flag-item")).to_have_count(1)
    expect(row(page, flag)).to_be_visible()


def test_a_forbidden_action_shows_the_servers_message_and_hint(
    page: Page, acting: tuple[ServerThread, Demo]
) -> None:
    """The role can change after the page loaded (a manager made a viewer): the 403 is shown."""
    server, demo = acting
    flag = manager_flag(demo)
    status, answer = post(
        server, f"/v1/flags/{flag['flag_id']}/actions", {"action": "acknowledge"}, VIEWER_TOKEN
    )
    assert status == 403
    open_as(page, server, MANAGER_TOKEN)
    button = row(page, flag).get_by_role("button", name="Acknowledge")
    expect(button).to_be_visible()
    page.evaluate(f"sessionStorage.setItem('journeys.token', '{VIEWER_TOKEN}')")
    button.click()
    alert = row(page, flag).get_by_role("alert")
    expect(alert).to_have_text(f"{answer['error']['message']} ({answer['error']['hint']})")
    expect(row(page, flag).locator(".handling-state")).to_have_text("Unacknowledged")
    assert "handling" not in (demo.flag(flag["flag_id"]) or {})


def test_a_viewer_sees_no_action_buttons(page: Page, acting: tuple[ServerThread, Demo]) -> None:
    server, demo = acting
    flag = manager_flag(demo)
    open_as(page, server, VIEWER_TOKEN)
    expect(row(page, flag).locator(".handling-state")).to_have_text("Unacknowledged")
    expect(page.locator(".flag-actions")).to_have_count(0)
    page.goto(f"{server.url}{journey_path(flag['customer_id'])}")
    expect(page.locator(".flag-card").first).to_be_visible()
    expect(extras(page, flag).locator(".handling-state")).to_have_text("Unacknowledged")
    expect(page.locator(".flag-actions")).to_have_count(0)
    expect(page.locator(".decision-button")).to_have_count(0)


# ---------------------------------------------------------------------------------------------
# The journey page


def test_a_manager_resolves_from_the_journey_page(
    page: Page, acting: tuple[ServerThread, Demo], artifacts: Path
) -> None:
    server, demo = acting
    flag = manager_flag(demo)
    reason = "Called the customer and rebooked for Friday 10:30"
    open_as(page, server, MANAGER_TOKEN, journey_path(flag["customer_id"], flag["flag_id"]))
    expect(page.locator("th.lane-desk")).to_have_count(0)
    card = extras(page, flag)
    card.get_by_role("button", name="Acknowledge").click()
    expect(extras(page, flag).locator(".handling-state")).to_have_text("Acknowledged")

    extras(page, flag).get_by_role("button", name="Resolve…").click()
    dialog = page.get_by_role("dialog", name="Resolve this flag")
    dialog.get_by_label("Reason").fill(reason)
    dialog.get_by_role("button", name="Resolve", exact=True).click()
    expect(dialog).to_have_count(0)

    folded = demo.flag(flag["flag_id"]) or {}
    expect(extras(page, flag).locator(".handling-state")).to_have_text("Resolved by hand")
    assert folded["status"] == "resolved"
    assert folded["resolution"] == f"resolved by {MANAGER}: {reason}"
    flag_card = page.locator(f'.flag-card[data-flag-id="{flag["flag_id"]}"]')
    expect(flag_card.locator(".status")).to_have_text("Resolved")
    expect(flag_card.locator(".flag-resolution")).to_contain_text(folded["resolution"])
    expect(extras(page, flag).locator(".handling-summary")).to_contain_text(
        f"resolved by {MANAGER}"
    )
    expect(extras(page, flag).get_by_role("button", name="Reopen")).to_be_visible()
    expect(extras(page, flag).get_by_role("button", name="Resolve…")).to_have_count(0)

    # The history lists both actions, in order, as the ledger folded them.
    history = extras(page, flag).locator(".handling-action")
    expect(history).to_have_count(2)
    assert history.evaluate_all("items => items.map(i => i.dataset.action)") == [
        "acknowledge",
        "resolve",
    ]
    assert history.evaluate_all("items => items.map(i => i.dataset.eventId)") == [
        a["event_id"] for a in folded["handling"]["actions"]
    ]

    # The service desk lane: both actions, in order, apart from the source systems.
    expect(page.locator("th.lane-desk")).to_have_text(re.compile(r"^Service desk"))
    desk = page.locator("#timeline td.lane-desk article.desk-event")
    expect(desk).to_have_count(2)
    assert desk.evaluate_all("cards => cards.map(c => c.dataset.type)") == [
        "flag.acknowledged",
        "flag.resolved",
    ]
    last_column = page.locator("#timeline thead th").count() - 1
    assert desk.evaluate_all("cards => cards.map(c => c.closest('td').cellIndex)") == [
        last_column,
        last_column,
    ]
    # The flag is selected (from the address): its actions stay in view beside its events.
    expect(desk.nth(0)).to_have_class(re.compile(r"\bis-related\b"))
    expect(desk.nth(1)).to_contain_text(reason)
    expect(desk.nth(1)).to_contain_text(MANAGER)
    expect(page.locator("#timeline td.lane-desk article.event:not(.desk-event)")).to_have_count(0)
    page.screenshot(path=artifacts / "journey-resolved-by-hand.png", full_page=True)

    # Reopen puts it back.
    extras(page, flag).get_by_role("button", name="Reopen").click()
    expect(extras(page, flag).locator(".handling-state")).to_have_text("Acknowledged")
    expect(page.locator("#timeline td.lane-desk article.desk-event")).to_have_count(3)
    assert (demo.flag(flag["flag_id"]) or {})["status"] == "open"


def test_a_refused_action_shows_the_servers_message(
    page: Page, acting: tuple[ServerThread, Demo]
) -> None:
    server, demo = acting
    flag = manager_flag(demo)
    status, answer = post(
        server, f"/v1/flags/{flag['flag_id']}/actions", {"action": "resolve"}, MANAGER_TOKEN
    )
    assert status == 400
    message = answer["error"]["message"]
    lines_before = len(demo.lines)

    open_as(page, server, MANAGER_TOKEN, journey_path(flag["customer_id"]))
    opener = extras(page, flag).get_by_role("button", name="Resolve…")
    opener.click()
    dialog = page.get_by_role("dialog", name="Resolve this flag")
    dialog.get_by_role("button", name="Resolve", exact=True).click()
    expect(dialog.get_by_role("alert")).to_have_text(message)
    expect(dialog.get_by_label("Reason")).to_be_focused()
    expect(dialog.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    assert len(demo.lines) == lines_before, "nothing was recorded"

    # Escape closes the dialog and gives focus back to the button that opened it.
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(opener).to_be_focused()
    expect(extras(page, flag).locator(".handling-state")).to_have_text("Unacknowledged")


def test_a_hostile_note_is_shown_as_text(page: Page, acting: tuple[ServerThread, Demo]) -> None:
    server, demo = acting
    flag = manager_flag(demo)
    dialogs: list[str] = []

    def seen(opened: Dialog) -> None:
        dialogs.append(opened.message)
        opened.dismiss()

    page.on("dialog", seen)
    open_as(page, server, MANAGER_TOKEN, journey_path(flag["customer_id"]))
    extras(page, flag).get_by_role("button", name="Note…").click()
    dialog = page.get_by_role("dialog", name="Add a note")
    dialog.get_by_label("Note").fill(HOSTILE)
    dialog.get_by_role("button", name="Add note").click()
    expect(dialog).to_have_count(0)

    notes = (demo.flag(flag["flag_id"]) or {})["handling"]["notes"]
    assert [n["text"] for n in notes] == [HOSTILE], "the ledger kept the note as written"
    note = extras(page, flag).locator(".note-text")
    expect(note).to_have_count(1)
    assert text_of(note) == HOSTILE
    desk_note = page.locator("#timeline article.desk-event .desk-note")
    expect(desk_note).to_have_count(1)
    assert text_of(desk_note) == HOSTILE
    expect(page.locator("#journey img")).to_have_count(0)
    expect(page.locator("#journey script")).to_have_count(0)
    assert dialogs == []


def test_snooze_sends_the_readers_local_time_with_its_offset(
    browser: Browser, acting: tuple[ServerThread, Demo]
) -> None:
    server, demo = acting
    flag = manager_flag(demo)
    context = new_context(browser, timezone_id="America/New_York")
    try:
        page = context.new_page()
        page.clock.set_fixed_time(BROWSER_NOW)
        errors = PageErrors(page)
        open_as(page, server, MANAGER_TOKEN, journey_path(flag["customer_id"]))
        extras(page, flag).get_by_role("button", name="Snooze…").click()
        dialog = page.get_by_role("dialog", name="Snooze this flag")
        dialog.get_by_label("Until").fill("2026-11-10T09:30")
        dialog.get_by_role("button", name="Snooze", exact=True).click()
        expect(extras(page, flag).locator(".handling-state")).to_have_text("Snoozed")
        handling = (demo.flag(flag["flag_id"]) or {})["handling"]
        # 09:30 in New York in November is 14:30 UTC (EST, UTC-5).
        assert handling["snoozed_until"] == "2026-11-10T09:30:00-05:00"
        assert errors.messages == []
    finally:
        context.close()


def test_an_admin_blocks_an_identifier(
    page: Page, acting: tuple[ServerThread, Demo], artifacts: Path
) -> None:
    server, demo = acting
    flag = manager_flag(demo)
    journey = demo.journey_dict(flag["customer_id"])
    ident = journey["identifiers"][0]
    open_as(page, server, TOKEN, journey_path(flag["customer_id"]))
    ident_row = page.locator(
        f'.ident-table tr[data-kind="{ident["kind"]}"][data-value="{ident["value"]}"]'
    )
    ident_row.get_by_role("button", name="Block…").click()
    dialog = page.get_by_role("dialog", name="Block this identifier")
    expect(dialog).to_contain_text(ident["value"])
    dialog.get_by_label("Reason").fill("a family phone shared by three customers")
    dialog.get_by_role("button", name="Block", exact=True).click()
    expect(ident_row.locator(".decision-status")).to_contain_text("Decision recorded")
    assert demo.decisions == [
        {
            "decision": "block",
            "identifier": f"{ident['kind']}:{ident['value']}",
            "tenant": journey["tenant"],
            "reason": "a family phone shared by three customers",
            "by": USERS[TOKEN].user,
            "event_id": demo.decisions[0]["event_id"],
        }
    ]
    page.screenshot(path=artifacts / "journey-admin.png", full_page=True)

    # A manager acts on flags but makes no identity decisions.
    open_as(page, server, MANAGER_TOKEN)
    page.goto(f"{server.url}{journey_path(flag['customer_id'])}")
    expect(page.locator(".flag-actions").first).to_be_visible()
    expect(page.locator(".decision-button")).to_have_count(0)


def test_the_actions_module_writes_no_markup() -> None:
    """Notes, reasons and names reach the page as text nodes only."""
    source = (static_dir() / "actions.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink


def _form(number: int, email: str, name: str, hours_before: int) -> dict[str, Any]:
    return {
        "event_id": f"idc-{number}",
        "type": "form.submitted",
        "occurred_at": (AS_OF - timedelta(hours=hours_before)).isoformat(),
        "tenant": "acme-motors",
        "source": {"system": "web-forms", "channel": "web", "site": "leeds"},
        "customer": {"email": email, "phone": "+447700900999", "name": name},
        "payload": {"form": "contact"},
    }


def test_an_admin_confirms_or_splits_an_identity_conflict(page: Page, artifacts: Path) -> None:
    """Two people share a phone; a limit of one e-mail a customer holds the merge back."""
    limited = Settings.model_validate(
        {"tenants": {"acme-motors": {"identity": {"limits": {"email": 1}}}}}
    ).fold_settings()
    demo = load_demo(limited)
    demo.add_event(_form(1, "pat@example.com", "Pat", 2))
    demo.add_event(_form(2, "lee@example.com", "Lee", 1))
    conflicts = [f for f in demo.flags() if f["rule"] == "IDENTITY_CONFLICT"]
    assert len(conflicts) == 2, "the held link flags both customers"
    flag = conflicts[0]
    with ServerThread(make_app(demo)) as server:
        open_as(page, server, TOKEN, journey_path(flag["customer_id"]))
        card = extras(page, flag)
        expect(card.get_by_role("button", name="Split…")).to_be_visible()
        card.get_by_role("button", name="Confirm merge…").click()
        dialog = page.get_by_role("dialog", name="Confirm the merge")
        expect(dialog).to_contain_text("+447700900999")
        dialog.get_by_label("Reason").fill("Pat and Lee are one person: Pat Lee")
        dialog.get_by_role("button", name="Confirm merge").click()
        status = card.locator(".decision-status", has_text="Decision recorded")
        expect(status).to_have_count(1)
        # the merge names the customers of the flag, the held value as `via`
        named = sorted(c["customer_id"] for c in conflicts)
        assert [
            (d["decision"], sorted(d["customers"]), d["via"], d["tenant"], d["by"])
            for d in demo.decisions
        ] == [("merge", named, "phone:+447700900999", "acme-motors", USERS[TOKEN].user)]
        assert "identifier" not in demo.decisions[0]
        page.screenshot(path=artifacts / "journey-identity-conflict.png", full_page=True)

        # A manager handles the flag like any other, but does not decide identities.
        open_as(page, server, MANAGER_TOKEN)
        page.goto(f"{server.url}{journey_path(flag['customer_id'])}")
        expect(extras(page, flag).get_by_role("button", name="Acknowledge")).to_be_visible()
        expect(page.locator(".decision-button")).to_have_count(0)
