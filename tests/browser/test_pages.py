"""The flags dashboard and the journey page in headless Chromium, against the demo journeys.

Every expected text is computed from the pure code (`demo_api.load_demo`), never copied from
its output.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from playwright.sync_api import Browser, Page, expect

from projections.settings import RULES
from schemas.types import parse_timestamp
from tests.browser.conftest import BROWSER_NOW, PAGE_LIMIT, PageErrors, new_context
from tests.browser.demo_api import AS_OF, TOKEN, Demo, ServerThread, load_demo, make_app
from tests.factories import raw

# ---------------------------------------------------------------------------------------------
# Helpers


def sign_in(page: Page, server: ServerThread, path: str = "/ui/") -> None:
    """Open a page the way `journeys up`'s link does: the token in the fragment."""
    page.goto(f"{server.url}{path}#token={TOKEN}")


def journey_path(flag_or_customer: dict[str, Any] | str) -> str:
    customer = (
        flag_or_customer if isinstance(flag_or_customer, str) else flag_or_customer["customer_id"]
    )
    return f"/ui/journey?{urlencode({'customer_id': customer})}"


def wait_for_list(page: Page) -> None:
    """Wait until the list shows the flags for the filters in the address bar."""
    page.wait_for_function(
        "() => { const l = document.getElementById('flag-list');"
        " return l.dataset.state === 'ready' && l.dataset.query === location.search; }"
    )


def load_all_flags(page: Page) -> None:
    """Wait for the list, then press "Load more" until it is complete."""
    wait_for_list(page)
    more = page.locator("#load-more")
    items = page.locator("#flag-list > li.flag-item")
    while more.is_visible():
        before = items.count()
        more.click()
        expect(items).not_to_have_count(before)
        wait_for_list(page)


def flag_ids_shown(page: Page) -> list[str]:
    ids: list[str] = page.locator("#flag-list > li.flag-item").evaluate_all(
        "items => items.map(i => i.dataset.flagId)"
    )
    return ids


def lanes_of(journey: dict[str, Any]) -> list[str]:
    """The source systems of a journey, in order of first appearance."""
    lanes: list[str] = []
    for event in journey["events"]:
        if event["source"]["system"] not in lanes:
            lanes.append(event["source"]["system"])
    return lanes


def highlighted(page: Page) -> set[str]:
    ids: list[str] = page.locator("article.event.is-highlighted").evaluate_all(
        "cards => cards.map(c => c.dataset.eventId)"
    )
    return set(ids)


def check_journey_page(page: Page, journey: dict[str, Any]) -> None:
    """Header, identifiers, one lane per system with each event in its lane, every flag."""
    expect(page.locator("#customer-id")).to_have_text(journey["customer_id"])
    expect(page.locator(".journey-head .tenant")).to_have_text(journey["tenant"])
    for name in journey["names"][:1]:
        expect(page.locator("#customer-name")).to_have_text(name)
    for ident in journey["identifiers"]:
        row = page.locator(
            f'.ident-table tr[data-kind="{ident["kind"]}"][data-value="{ident["value"]}"]'
        )
        expect(row).to_have_count(1)
        expect(row.locator(".chip")).to_have_text(ident["systems"])

    lanes = lanes_of(journey)
    heads = page.locator("#timeline thead th.lane-head")
    expect(heads).to_have_count(len(lanes))
    assert heads.evaluate_all("hs => hs.map(h => h.dataset.system)") == lanes
    shown = page.locator("#timeline article.event")
    expect(shown).to_have_count(len(journey["events"]))
    assert shown.evaluate_all("cs => cs.map(c => c.dataset.eventId)") == [
        e["event_id"] for e in journey["events"]
    ], "events are shown in the journey's order"
    for event in journey["events"]:
        card = page.locator(f'article.event[data-event-id="{event["event_id"]}"]')
        column = card.evaluate("c => c.closest('td').cellIndex")
        assert column == lanes.index(event["source"]["system"]) + 1, event["event_id"]
        text = card.inner_text()
        assert event["event_id"] in text
        for key in ("booking_id", "order_id", "payment_id", "recall_code", "programme", "to"):
            if isinstance(event["payload"].get(key), str):
                assert event["payload"][key] in text, (event["event_id"], key)

    cards = page.locator(".flag-card")
    expect(cards).to_have_count(len(journey["flags"]))
    for flag in journey["flags"]:
        card = page.locator(f'.flag-card[data-flag-id="{flag["flag_id"]}"]')
        expect(card.locator(".flag-message")).to_have_text(flag["message"])
        expect(card.locator(".status")).to_have_text(flag["status"].capitalize())
        expect(card.locator(".badge")).to_have_text(flag["severity"].capitalize())


# ---------------------------------------------------------------------------------------------
# The dashboard


def test_dashboard_shows_every_open_flag_newest_first(
    page: Page, server: ServerThread, demo: Demo, artifacts: Path
) -> None:
    open_flags = demo.open_flags()
    assert len(open_flags) > PAGE_LIMIT, "the demo should need more than one page"
    sign_in(page, server)

    assert "token" not in page.url, "the token is taken out of the address bar"
    assert page.evaluate("sessionStorage.getItem('journeys.token')") == TOKEN
    items = page.locator("#flag-list > li.flag-item")
    expect(items).to_have_count(PAGE_LIMIT)
    load_all_flags(page)
    expect(page.locator("#load-more")).to_be_hidden()

    ids = flag_ids_shown(page)
    assert sorted(ids) == sorted(f["flag_id"] for f in open_flags)
    by_id = {f["flag_id"]: f for f in open_flags}
    opened = [parse_timestamp(by_id[i]["opened_at"]) for i in ids]
    assert opened == sorted(opened, reverse=True), "newest first"
    for flag in open_flags:
        item = page.locator(f'#flag-list li[data-flag-id="{flag["flag_id"]}"]')
        expect(item.locator(".flag-message")).to_have_text(flag["message"])
        expect(item.locator(".badge")).to_have_text(flag["severity"].capitalize())
        href = item.locator("a").get_attribute("href")
        assert href == f"{journey_path(flag)}#flag={quote(flag['flag_id'])}"
        for system in flag["systems"]:
            expect(item.locator(".chip", has_text=system)).to_have_count(1)
        for site in flag["sites"]:
            expect(item.locator(".flag-meta")).to_contain_text(site)
    expect(page.locator("#list-count")).to_have_text(f"{len(open_flags)} open flags")
    page.screenshot(path=artifacts / "dashboard.png", full_page=True)


def test_dashboard_counts_open_flags_by_rule_and_site(
    page: Page, server: ServerThread, demo: Demo
) -> None:
    open_flags = demo.open_flags()
    sign_in(page, server)
    expect(page.locator("#by-rule")).not_to_have_attribute("aria-busy", "true")

    by_rule = Counter(f["rule"] for f in open_flags)
    for rule in {*RULES, *by_rule}:
        card = page.locator(f'#by-rule [data-rule="{rule}"]')
        expect(card.locator(".rule-count")).to_have_text(str(by_rule[rule]))
    by_site = Counter(site for f in open_flags for site in f["sites"])
    for site, count in by_site.items():
        expect(page.locator(f'#by-site [data-site="{site}"] .site-count')).to_have_text(str(count))
    no_site = sum(1 for f in open_flags if not f["sites"])
    if no_site:
        expect(page.locator('#by-site .no-site[data-site=""] .site-count')).to_have_text(
            str(no_site)
        )
    expect(page.locator("#summary-total .total-number")).to_have_text(str(len(open_flags)))

    # A rule card filters the list to that rule, and the site counts to that rule.
    rule, count = by_rule.most_common(1)[0]
    page.locator(f'#by-rule [data-rule="{rule}"]').click()
    expect(page.locator(f'#by-rule [data-rule="{rule}"]')).to_have_attribute("aria-pressed", "true")
    expect(page).to_have_url(re.compile(rf"\?rule={rule}$"))
    load_all_flags(page)
    expect(page.locator("#flag-list > li.flag-item")).to_have_count(count)
    assert set(page.locator("#flag-list > li").evaluate_all("l => l.map(i => i.dataset.rule)")) == {
        rule
    }
    in_rule = Counter(site for f in open_flags if f["rule"] == rule for site in f["sites"])
    for site, n in in_rule.items():
        expect(page.locator(f'#by-site [data-site="{site}"] .site-count')).to_have_text(str(n))


def test_dashboard_filters(page: Page, server: ServerThread, demo: Demo, artifacts: Path) -> None:
    flags = demo.flags()
    sign_in(page, server)
    expect(page.locator("#flag-list > li.flag-item").first).to_be_visible()

    page.select_option("#f-status", "resolved")
    expect(page).to_have_url(re.compile(r"\?status=resolved$"))
    load_all_flags(page)
    resolved = [f["flag_id"] for f in flags if f["status"] == "resolved"]
    assert sorted(flag_ids_shown(page)) == sorted(resolved)
    for flag in flags:
        if flag["status"] == "resolved" and flag["resolution"]:
            item = page.locator(f'#flag-list li[data-flag-id="{flag["flag_id"]}"]')
            expect(item.locator(".flag-resolution")).to_contain_text(flag["resolution"])

    page.select_option("#f-status", "")
    load_all_flags(page)
    assert sorted(flag_ids_shown(page)) == sorted(f["flag_id"] for f in flags)

    site = Counter(s for f in flags for s in f["sites"]).most_common(1)[0][0]
    page.fill("#f-site", site)
    page.press("#f-site", "Enter")
    expect(page).to_have_url(re.compile(rf"site={site}"))
    load_all_flags(page)
    assert sorted(flag_ids_shown(page)) == sorted(f["flag_id"] for f in flags if site in f["sites"])

    tenant = sorted({f["tenant"] for f in flags})[-1]
    page.fill("#f-site", "")
    page.fill("#f-tenant", tenant)
    page.press("#f-tenant", "Enter")
    load_all_flags(page)
    assert sorted(flag_ids_shown(page)) == sorted(
        f["flag_id"] for f in flags if f["tenant"] == tenant
    )

    # "In the last 24 hours", by the browser's clock.
    page.click("#clear-filters")
    page.select_option("#f-since", "1")
    since = BROWSER_NOW.timestamp() - 24 * 3600
    recent = [
        f["flag_id"]
        for f in flags
        if f["status"] == "open" and parse_timestamp(f["opened_at"]).timestamp() >= since
    ]
    if recent:
        load_all_flags(page)
        assert sorted(flag_ids_shown(page)) == sorted(recent)
    else:
        expect(page.locator("#list-state .state")).to_be_visible()

    # Nothing matches: an empty state that offers to clear the filters.
    page.fill("#f-site", "no-such-site")
    page.press("#f-site", "Enter")
    empty = page.locator("#list-state .state-no-match")
    expect(empty).to_be_visible()
    expect(page.locator("#flag-list > li")).to_have_count(0)
    page.screenshot(path=artifacts / "dashboard-empty.png")
    empty.get_by_role("button", name="Clear filters").click()
    expect(page).to_have_url(re.compile(r"/ui/$"))
    expect(page.locator("#flag-list > li.flag-item").first).to_be_visible()


# ---------------------------------------------------------------------------------------------
# The journey page


def test_clicking_a_flag_opens_its_journey_with_its_events_highlighted(
    page: Page, server: ServerThread, demo: Demo, artifacts: Path
) -> None:
    def systems(flag: dict[str, Any]) -> int:
        return len(lanes_of(demo.journey_dict(flag["customer_id"])))

    flag = max(demo.open_flags(), key=lambda f: (len(f["event_ids"]), systems(f)))
    journey = demo.journey_dict(flag["customer_id"])
    sign_in(page, server)
    load_all_flags(page)
    page.locator(f'#flag-list li[data-flag-id="{flag["flag_id"]}"] a').click()

    expect(page).to_have_url(f"{server.url}{journey_path(flag)}#flag={quote(flag['flag_id'])}")
    check_journey_page(page, journey)
    expect(page.locator(f'.flag-card[data-flag-id="{flag["flag_id"]}"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator("article.event.is-highlighted")).to_have_count(len(flag["event_ids"]))
    assert highlighted(page) == set(flag["event_ids"])
    expect(page.locator("#selection-bar")).to_be_visible()
    page.screenshot(path=artifacts / "journey.png", full_page=True)


def test_every_flag_highlights_its_events(page: Page, server: ServerThread, demo: Demo) -> None:
    sign_in(page, server)
    checked: set[str] = set()
    for flag in demo.flags():
        page.goto(f"{server.url}{journey_path(flag)}#flag={quote(flag['flag_id'])}")
        if flag["customer_id"] not in checked:
            check_journey_page(page, demo.journey_dict(flag["customer_id"]))
            checked.add(flag["customer_id"])
        expect(page.locator("article.event.is-highlighted")).to_have_count(len(flag["event_ids"]))
        assert highlighted(page) == set(flag["event_ids"]), flag["flag_id"]
    assert checked == {f["customer_id"] for f in demo.flags()}


def test_selecting_flags_on_the_journey_page(
    page: Page, server: ServerThread, demo: Demo, artifacts: Path
) -> None:
    journey = max(demo.views.values(), key=lambda v: len(v.flags))
    data = demo.journey_dict(journey.customer_id)
    assert len(data["flags"]) >= 2
    sign_in(page, server, journey_path(journey.customer_id))
    expect(page.locator(".flag-card")).to_have_count(len(data["flags"]))
    assert highlighted(page) == set()

    # With the keyboard: focus a flag card, Enter selects it.
    for flag in data["flags"]:
        card = page.locator(f'.flag-card[data-flag-id="{flag["flag_id"]}"]')
        card.focus()
        page.keyboard.press("Enter")
        expect(card).to_have_attribute("aria-pressed", "true")
        expect(page).to_have_url(re.compile(rf"#flag={re.escape(quote(flag['flag_id']))}$"))
        assert highlighted(page) == set(flag["event_ids"])
        others = page.locator('.flag-card[aria-pressed="true"]')
        expect(others).to_have_count(1)
    page.screenshot(path=artifacts / "journey-selected.png", full_page=True)

    # Escape clears the selection and the fragment.
    page.keyboard.press("Escape")
    expect(page.locator("article.event.is-highlighted")).to_have_count(0)
    assert "#flag=" not in page.url

    # The flag marker on an event selects its flag.
    flag = data["flags"][0]
    event_id = flag["event_ids"][0]
    page.locator(
        f'article.event[data-event-id="{event_id}"] .event-flag[data-flag-id="{flag["flag_id"]}"]'
    ).click()
    assert highlighted(page) == set(flag["event_ids"])


@pytest.mark.parametrize("kind", ["phone", "plate", "email", "order_id", "customer_id"])
def test_identifier_search_finds_the_journey(
    page: Page, server: ServerThread, demo: Demo, artifacts: Path, kind: str
) -> None:
    """Search as a service manager would type it, with the spelling a source system used."""
    if kind == "customer_id":
        expected = next(iter(demo.views.values()))
        query = expected.customer_id
    else:
        event = next(e for v in demo.views.values() for e in v.events if getattr(e.customer, kind))
        raw = getattr(event.customer, kind)
        found = demo.find(kind, raw)
        assert found is not None
        expected = found
        # a kind prefix for phone and plate, bare values for e-mail and order number
        query = f"{kind}:{raw}" if kind in ("phone", "plate") else raw
    sign_in(page, server)
    page.fill("#search-input", query)
    page.press("#search-input", "Enter")
    expect(page).to_have_url(re.compile(r"/ui/journey\?"))
    check_journey_page(page, demo.journey_dict(expected.customer_id))
    if kind != "customer_id":
        expect(page.locator(".matched")).to_be_visible()
    if kind == "phone":
        page.screenshot(path=artifacts / "journey-by-phone.png", full_page=True)


def test_search_for_an_unknown_identifier(
    page: Page, server: ServerThread, demo: Demo, artifacts: Path
) -> None:
    plate = "ZZ99 QQQ"
    assert demo.find("plate", plate) is None
    sign_in(page, server)
    page.fill("#search-input", f"plate:{plate}")
    page.press("#search-input", "Enter")
    expect(page.locator(".state-not-found")).to_be_visible()
    expect(page.locator(".state-not-found")).to_contain_text(plate)
    page.screenshot(path=artifacts / "journey-not-found.png")

    page.goto(f"{server.url}/ui/journey?customer_id=cus_0000000000000000")
    expect(page.locator(".state-not-found")).to_be_visible()


def test_journey_page_on_a_phone(
    browser: Browser, server: ServerThread, demo: Demo, artifacts: Path
) -> None:
    flag = max(demo.open_flags(), key=lambda f: len(f["event_ids"]))
    context = new_context(browser, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.clock.set_fixed_time(BROWSER_NOW)
        errors = PageErrors(page)
        sign_in(page, server, f"{journey_path(flag)}")
        page.goto(f"{server.url}{journey_path(flag)}#flag={quote(flag['flag_id'])}")
        check_journey_page(page, demo.journey_dict(flag["customer_id"]))
        expect(page.locator("article.event .event-system").first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways ({width}px)"
        page.screenshot(path=artifacts / "journey-phone.png", full_page=True)
        page.goto(f"{server.url}/ui/")
        load_all_flags(page)
        page.screenshot(path=artifacts / "dashboard-phone.png", full_page=True)
        assert errors.messages == []
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------
# Signing in


def test_without_a_token_the_pages_ask_for_one(
    page: Page, browser: Browser, server: ServerThread, demo: Demo, artifacts: Path
) -> None:
    before = len(server.seen)
    page.goto(f"{server.url}/ui/")
    expect(page.locator("#signin form")).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
    expect(page.get_by_label("Access token")).to_be_focused()
    expect(page.locator("#signin-error")).to_have_count(0)
    assert len(server.seen) == before, "nothing is asked of the API without a token"
    page.screenshot(path=artifacts / "sign-in.png")

    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#flag-list > li.flag-item")).to_have_count(PAGE_LIMIT)
    assert page.evaluate("sessionStorage.getItem('journeys.token')") == TOKEN

    # The journey page asks too, in a fresh tab of a fresh profile.
    fresh = new_context(browser)
    try:
        other = fresh.new_page()
        other.goto(f"{server.url}{journey_path(demo.open_flags()[0])}")
        expect(other.locator("#signin form")).to_be_visible()
    finally:
        fresh.close()

    # Sign out forgets the token.
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin form")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('journeys.token')") is None

    # Every request the pages made carried the token in the header, never in the address.
    assert server.seen[before:]
    for request in server.seen[before:]:
        assert request.authorization == f"Bearer {TOKEN}"
        assert TOKEN not in request.query


def test_a_wrong_token_shows_sign_in_with_an_error(
    page: Page, server: ServerThread, demo: Demo, artifacts: Path
) -> None:
    page.goto(f"{server.url}/ui/#token=not-the-token")
    error = page.locator("#signin-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("did not accept")
    expect(page.locator("#main")).to_be_hidden()
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('journeys.token')") is None
    page.screenshot(path=artifacts / "sign-in-wrong-token.png")

    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#flag-list > li.flag-item")).to_have_count(PAGE_LIMIT)
    # The summary pages through every open flag; let it finish so only the click meets the new token.
    expect(page.locator("#by-rule")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#summary-total .total-number")).to_be_visible()

    # A token refused later (revoked, say) brings the form back, with the error.
    page.evaluate("sessionStorage.setItem('journeys.token', 'revoked')")
    page.locator("#load-more").click()
    expect(page.locator("#signin-error")).to_be_visible()

    # The journey page handles it the same way.
    page.goto(f"{server.url}{journey_path(demo.open_flags()[0])}#token=wrong")
    expect(page.locator("#signin-error")).to_be_visible()


def test_the_journey_page_says_why_each_event_is_here_and_lists_its_merges(
    browser: Browser, artifacts: Path
) -> None:
    demo = load_demo()  # its own copy: the event below merges two of the demo's customers
    joining = raw(
        "form.submitted",
        {"form": "contact"},
        event_id="why-1",
        tenant="acme-motors",
        when=AS_OF - timedelta(hours=1),
        customer={"email": "aisha.khan@example.com", "phone": "0113 496 0000"},
    )
    demo.add_event(joining)
    (journey,) = (
        demo.journey_dict(v.customer_id)
        for v in demo.views.values()
        if v.events[-1].event_id == "why-1"
    )
    assert len(journey["merges"]) == 1
    context = new_context(browser)
    page = context.new_page()
    page.clock.set_fixed_time(BROWSER_NOW)
    errors = PageErrors(page)
    with ServerThread(make_app(demo, max_limit=PAGE_LIMIT)) as server:
        sign_in(page, server, journey_path(journey["customer_id"]))
        check_journey_page(page, journey)
        for n, event in enumerate(journey["events"]):
            linked = page.locator(
                f'article.event[data-event-id="{event["event_id"]}"] .event-linked'
            )
            by = journey["linked_by"].get(event["event_id"])
            if by is not None:
                expect(linked).to_have_text(f"linked by {by}")
            elif n == 0:
                expect(linked).to_have_text("first of this customer")
            else:
                expect(linked).to_have_text("shares no identifier with an earlier event")
        (merge,) = journey["merges"]
        item = page.locator("#merges li.merge")
        expect(item).to_have_count(1)
        expect(item.locator(".merge-from")).to_have_text(merge["from_customer"])
        expect(item.locator(".merge-identifier")).to_have_text(merge["identifier"])
        expect(item).to_contain_text("why-1")
        page.screenshot(path=artifacts / "journey-merges.png", full_page=True)
    context.close()
    assert errors.messages == []
