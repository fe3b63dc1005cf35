"""The fold is a function of the set of events, proven with hypothesis over generated journeys.

The generated journeys are a dealer group's customers over one to three tenants: people who
share a household e-mail, write their phone nationally or internationally, type their plate
with or without spaces, chat from a browser session and then call, book, get a text with a
date, order, pay, cancel, get looked up by the roadside partner... Each property compares
what readers see (`view_to_dict` of every journey, as of two fixed moments) between two routes
that must agree:

- arrival order does not matter;
- the same event again (same id, same content) changes nothing;
- `Ledger.add` one event at a time equals `fold_all` at once, after every prefix too;
- folding the stream in two halves equals folding it at once;
- customer ids are derived from the identifiers alone, and stitching joins exactly the events
  that share an identifier, never across tenants and never on a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.flags import flag_id
from projections.identifiers import identity_ids
from projections.identity import NO_LIMITS, IdentityPolicy, customer_id_for
from projections.journey import Journey, event_order
from projections.journey import apply as apply_event
from projections.ledger import Ledger, fold_all
from projections.rules import RULE_NAMES
from projections.settings import FoldSettings
from projections.view import view, view_to_dict
from schemas.codec import decode_event, encode_event, event_to_dict, validate_document
from schemas.errors import EventConflictError
from schemas.events import DECISION_TYPES, ERASURE_TYPE, EVENT_TYPES, HANDLING_TYPES, Event
from tests import factories

T0 = datetime(2024, 3, 11, 8, 0, tzinfo=UTC)
"""Monday 11 March 2024, 08:00 UTC: generated events fall in the five days after."""

AS_OF = (T0 + timedelta(hours=36), T0 + timedelta(days=9))
"""Two moments to view at: mid-stream (some 24 h windows still open) and after everything."""

NO_REGION = FoldSettings()
UNLIMITED = FoldSettings(default_identity=IdentityPolicy(limits=NO_LIMITS))
"""No identity limits: stitching alone, for the properties of stitching (limits are tested in
test_identity_limits: a held link leaves a key on an event that its customer does not hold)."""
GB_ACME = FoldSettings(default_regions=MappingProxyType({"acme": "GB"}))

# an erasure is an order to ingest, like a decision: it joins no journey
TOUCHPOINTS = tuple(t for t in EVENT_TYPES if t not in DECISION_TYPES | {ERASURE_TYPE})

ANCHOR_SYSTEMS = ("booking", "sms-gateway", "shop", "payments", "crm", "dms", "head-office")
"""Systems of the generated events, for flag ids that may match a generated flag."""
"""The catalogue less people's identity decisions (tested in test_identity_rules)."""

PROPERTY = settings(
    max_examples=70,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what the customers write ---------------------------------------------------------------
# Each pool entry is one real identifier, written in the ways producers write it. Entries of
# a pool are different identifiers: different phone numbers never share national digits.

EMAILS: tuple[tuple[str, ...], ...] = (
    ("sam.patel@example.com", "Sam.Patel@Example.com", " SAM.PATEL@EXAMPLE.COM "),
    ("the.okafors@example.net", "The.Okafors@example.net"),
    ("jo.bloggs@example.org", "Jo.Bloggs@example.org "),
)
PHONES: tuple[tuple[str, ...], ...] = (
    (
        "07700 900123",
        "07700900123",
        "+44 7700 900123",
        "+447700900123",
        "0044 7700 900123",
        "+44 (0)7700 900123",
    ),
    ("07700 900456", "+44 7700 900456", "07700-900-456"),
    ("(212) 555-0199", "212-555-0199", "+1 212 555 0199", "+1-212-555-0199"),
    ("020 7946 0018", "+44 20 7946 0018"),
)
PLATES: tuple[tuple[str, ...], ...] = (
    ("AB12 CDE", "ab12cde", "AB-12-CDE", "ab12 CDE"),
    ("YD19 KXR", "yd19 kxr", "YD19KXR"),
    ("KX70 LMN", "kx70-lmn"),
)
VINS: tuple[tuple[str, ...], ...] = (("WVWZZZ1KZAW000123", "wvw-zzz1kzaw000123"),)
CHATS: tuple[tuple[str, ...], ...] = (
    ("chat-sess-7f3a91",),
    ("chat-sess-22b0c4",),
    ("web-visitor-5c2e91d0",),
)
REFS: tuple[tuple[str, ...], ...] = (("ACME-C-004512",), ("ACME-C-009981",))
MEMBERSHIPS: tuple[tuple[str, ...], ...] = (("RSA-88213",), ("RSA-90417",))
POOLS: dict[str, tuple[tuple[str, ...], ...]] = {
    "email": EMAILS,
    "phone": PHONES,
    "plate": PLATES,
    "vin": VINS,
    "anonymous_id": CHATS,
    "customer_ref": REFS,
    "membership_id": MEMBERSHIPS,
}
NAMES = ("Sam Patel", "Ada Okafor", "Jo Bloggs")  # few, so unrelated people share them

TENANTS = ("acme", "globex-motors", "initech")
OFFSETS = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)))
SYSTEMS = ("web", "chat-vendor", "sms-gateway", "booking", "call-centre", "dms", "shop")
SITES = ("acme-leeds", "acme-york")
PARTIES = ("roadside-partner", "call-centre", "dms", "insurer", "Roadside Partner")
SLOTS = (
    "2024-03-12T10:30:00+00:00",
    "2024-03-12T11:30:00+01:00",  # the same instant, another local time: another slot
    "2024-03-13T10:30:00+00:00",
    "2024-03-12",
    "2024-03-13",
    "2024-03-12T09:00:00-05:00",
)
BOOKINGS = ("BK-1042", "BK-1043", "BK-2001")
ORDERS = ("ORD-10456", "ORD-10457", "ORD-10458")
PAYMENTS = ("PAY-6597", "PAY-6598", "PAY-6612")
SKUS = ("WIPER-SET-600", "SCREENWASH-5L", "FLOOR-MATS-GOLF")
AMOUNTS = ("34.98", "34.98", "120.00")
ASKS = ("phone number", "email", "registration", "date", "site", "full name", "order number")
PROGRAMMES = ("roadside-assistance", "Roadside Assistance", "service-plan")
RECALLS = ("24R-017", "24r 017", "23R-102")

Token = tuple[str, int]
"""Ground truth of one identifier: its kind and which pool entry it is."""


@dataclass(frozen=True)
class Scenario:
    """Generated events and, for each, the identifiers it carries as ground truth."""

    events: tuple[Event, ...]
    tokens: dict[str, frozenset[Token]]


Person = dict[str, int]


@st.composite
def people(draw: st.DrawFn) -> Person:
    """A customer: a few identifier kinds, each one entry of its pool (so people overlap)."""
    kinds = draw(st.sets(st.sampled_from(sorted(POOLS)), min_size=1, max_size=4))
    return {kind: draw(st.integers(0, len(POOLS[kind]) - 1)) for kind in sorted(kinds)}


def _slot(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(SLOTS))


def _maybe(draw: st.DrawFn, values: Sequence[Any]) -> Any:
    return draw(st.none() | st.sampled_from(values))


def payload_for(draw: st.DrawFn, type_: str) -> tuple[dict[str, Any], str]:
    """A realistic payload of a type, and the system that would send it."""
    family = type_.split(".")[0]
    if type_ in ("form.submitted", "form.failed"):
        body: dict[str, Any] = {"form": "service-booking", "requested_slot": _maybe(draw, SLOTS)}
        return body, "web"
    if type_ == "chat.message":
        speaker = draw(st.sampled_from(("customer", "agent", "bot")))
        body = {"speaker": speaker, "text": "Hi, can I book my car in?"}
        if speaker == "customer":
            body["requested_slot"] = _maybe(draw, SLOTS)
            body["provided"] = draw(st.lists(st.sampled_from(ASKS), max_size=2, unique=True))
        else:
            body["asked_for"] = draw(st.lists(st.sampled_from(ASKS), max_size=2, unique=True))
        return body, "chat-vendor"
    if type_ == "message.received":
        return {"medium": draw(st.sampled_from(("email", "letter", "sms")))}, "crm"
    if type_ == "enquiry.responded":
        return {"via": draw(st.sampled_from(("email", "phone")))}, "crm"
    if type_ == "call.logged":
        body = {
            "direction": draw(st.sampled_from(("inbound", "outbound"))),
            "transferred_to": _maybe(draw, PARTIES),
            "asked_for": draw(st.lists(st.sampled_from(ASKS), max_size=2, unique=True)),
        }
        return body, draw(st.sampled_from(("call-centre", "dms", "roadside-partner")))
    if type_ == "referral.made":
        to = draw(st.sampled_from(PARTIES))
        return {"to": to}, draw(st.sampled_from(("call-centre", "dms", "roadside-partner")))
    if type_ in ("booking.created", "booking.changed"):
        return {"booking_id": draw(st.sampled_from(BOOKINGS)), "slot": _slot(draw)}, "booking"
    if type_ == "booking.cancelled":
        return {"booking_id": draw(st.sampled_from(BOOKINGS))}, "booking"
    if type_ == "message.sent":
        body = {
            "medium": draw(st.sampled_from(("sms", "email"))),
            "stated_slot": _maybe(draw, SLOTS),
            "booking_id": _maybe(draw, BOOKINGS),
            "template": "booking-confirmation",
        }
        return body, "sms-gateway"
    if type_ == "survey.responded":
        # Both common scales: a low score reads the flags that preceded it (LOW_SCORE_AFTER_FLAGS).
        scale = draw(st.sampled_from((5, 10)))
        return {"score": draw(st.integers(0, scale)), "scale": scale}, "survey"
    if type_ == "order.placed":
        body = {
            "order_id": draw(st.sampled_from(ORDERS)),
            "items": draw(
                st.none() | st.lists(st.sampled_from(SKUS), min_size=1, max_size=2, unique=True)
            ),
            "amount": _maybe(draw, AMOUNTS),
            "currency": "GBP",
        }
        return body, "shop"
    if family == "order":
        return {"order_id": draw(st.sampled_from(ORDERS))}, "shop"
    if family == "payment":
        body = {
            "payment_id": draw(st.sampled_from(PAYMENTS)),
            "order_id": _maybe(draw, ORDERS),
            "amount": "34.98",
            "currency": "GBP",
        }
        return body, "payments"
    if type_ == "enrolment.confirmed":
        body = {
            "programme": draw(st.sampled_from(PROGRAMMES)),
            "effective_from": _maybe(draw, SLOTS),
        }
        return body, "dms"
    if type_ == "enrolment.lookup":
        body = {"programme": draw(st.sampled_from(PROGRAMMES)), "found": draw(st.booleans())}
        return body, "roadside-partner"
    if type_ == "recall.notified":
        return {"recall_code": draw(st.sampled_from(RECALLS))}, "head-office"
    if type_ == "recall.lookup":
        body = {"recall_code": draw(st.sampled_from(RECALLS)), "found": draw(st.booleans())}
        return body, "dms"
    if type_ in HANDLING_TYPES:
        # Flag ids a scenario's rules may really give (rule + one event id), so that some
        # actions land on a standing flag; the rest name flags that never were.
        rule = draw(st.sampled_from(RULE_NAMES))
        anchor = f"{draw(st.sampled_from(ANCHOR_SYSTEMS))}-{draw(st.integers(0, 23)):04d}"
        body = {"flag_id": flag_id(rule, anchor), "by": draw(st.sampled_from(("sam", "jo")))}
        if draw(st.booleans()) or type_ in ("flag.noted", "flag.resolved"):
            body["note"] = "called the customer"
        if type_ == "flag.assigned":
            body["assignee"] = draw(st.sampled_from(("sam", "leeds-desk")))
        if type_ == "flag.snoozed":
            body["until"] = (T0 + timedelta(hours=draw(st.integers(1, 96)))).isoformat()
        return body, "journeys"
    raise AssertionError(f"no payload for {type_}")  # pragma: no cover


@st.composite
def scenarios(draw: st.DrawFn, max_events: int = 24) -> Scenario:
    """A multi-customer event set over one to three tenants, with unique event ids."""
    tenants = draw(st.lists(st.sampled_from(TENANTS), min_size=1, max_size=3, unique=True))
    persons = draw(st.lists(people(), min_size=1, max_size=4))
    count = draw(st.integers(0, max_events))
    # Ids unrelated to generation order, so that ties in `occurred_at` break either way.
    numbers = draw(st.permutations(range(count)))
    events: list[Event] = []
    tokens: dict[str, frozenset[Token]] = {}
    for number in numbers:
        person = draw(st.sampled_from(persons))
        kinds = draw(st.sets(st.sampled_from(sorted(person)), min_size=1, max_size=3))
        customer: dict[str, Any] = {
            kind: draw(st.sampled_from(POOLS[kind][person[kind]])) for kind in sorted(kinds)
        }
        name = draw(st.none() | st.sampled_from(NAMES))
        if name is not None:
            customer["name"] = name
        type_ = draw(st.sampled_from(TOUCHPOINTS))
        chat = (
            POOLS["anonymous_id"][person["anonymous_id"]][0] if "anonymous_id" in person else None
        )
        payload, system = payload_for(draw, type_)
        moment = T0 + timedelta(minutes=30 * draw(st.integers(0, 5 * 48)))
        source: dict[str, Any] = {"system": system}
        if draw(st.booleans()):
            source["site"] = draw(st.sampled_from(SITES))
        document: dict[str, Any] = {
            "event_id": f"{system}-{number:04d}",
            "type": type_,
            "occurred_at": moment.astimezone(draw(st.sampled_from(OFFSETS))).isoformat(),
            "tenant": draw(st.sampled_from(tenants)),
            "source": source,
            "customer": customer,
            "payload": {key: value for key, value in payload.items() if value is not None},
        }
        if type_ == "chat.message" and chat is not None:
            document["correlation_id"] = chat
        elif draw(st.booleans()):
            document["correlation_id"] = f"case-{draw(st.integers(1, 3))}"
        event = validate_document(document)
        assert not event.redacted, "the generator wrote something that looks like a card"
        events.append(event)
        tokens[event.event_id] = frozenset((kind, person[kind]) for kind in kinds)
    return Scenario(tuple(events), tokens)


# --- what is compared -----------------------------------------------------------------------


def snapshot(journeys: Iterable[Journey], fold: FoldSettings) -> list[list[dict[str, Any]]]:
    """What readers see of every journey, as of each moment of `AS_OF`."""
    ordered = sorted(journeys, key=lambda j: (j.tenant, j.customer_id))
    return [[view_to_dict(view(j, moment, fold)) for moment in AS_OF] for j in ordered]


def shape(journeys: Iterable[Journey]) -> set[tuple[str, str, tuple[str, ...]]]:
    """Each journey's tenant, customer id and events in order (cheap to compare)."""
    return {(j.tenant, j.customer_id, tuple(e.event_id for e in j.events)) for j in journeys}


def one_by_one(events: Iterable[Event], fold: FoldSettings) -> Ledger:
    """A ledger fed one event at a time."""
    ledger = Ledger(fold)
    for event in events:
        ledger.add(event)
    return ledger


fold_settings = st.sampled_from((NO_REGION, GB_ACME))


# --- the properties -------------------------------------------------------------------------


@PROPERTY
@given(scenario=scenarios(), fold=fold_settings, data=st.data())
def test_arrival_order_does_not_matter(
    scenario: Scenario, fold: FoldSettings, data: st.DataObject
) -> None:
    expected = snapshot(one_by_one(scenario.events, fold), fold)
    arrival = data.draw(st.permutations(scenario.events), label="arrival order")
    assert snapshot(one_by_one(arrival, fold), fold) == expected
    assert snapshot(fold_all(arrival, fold), fold) == expected


@PROPERTY
@given(scenario=scenarios(), fold=fold_settings, data=st.data())
def test_the_same_event_again_changes_nothing(
    scenario: Scenario, fold: FoldSettings, data: st.DataObject
) -> None:
    expected = snapshot(fold_all(scenario.events, fold), fold)
    if not scenario.events:
        return
    again = data.draw(st.lists(st.sampled_from(scenario.events), min_size=1, max_size=8))
    # Redelivered as a producer would: the same JSON, decoded afresh.
    redelivered = [decode_event(encode_event(event)) for event in again]
    stream = data.draw(st.permutations([*scenario.events, *redelivered]), label="with repeats")
    ledger = Ledger(fold)
    results = [ledger.add(event) for event in stream]
    assert sum(result is None for result in results) == len(redelivered)
    assert snapshot(ledger, fold) == expected
    assert snapshot(fold_all(stream, fold), fold) == expected
    for event in redelivered:
        assert ledger.add(event) is None


@PROPERTY
@given(scenario=scenarios(), fold=fold_settings)
def test_one_at_a_time_equals_all_at_once(scenario: Scenario, fold: FoldSettings) -> None:
    ledger = Ledger(fold)
    for count, event in enumerate(scenario.events, start=1):
        ledger.add(event)
        assert shape(ledger) == shape(fold_all(scenario.events[:count], fold)), count
    assert snapshot(ledger, fold) == snapshot(fold_all(scenario.events, fold), fold)


@PROPERTY
@given(scenario=scenarios(), fold=fold_settings, data=st.data())
def test_two_halves_fold_to_the_whole(
    scenario: Scenario, fold: FoldSettings, data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(scenario.events)), label="split")
    first, second = scenario.events[:split], scenario.events[split:]
    ledger = Ledger(fold)
    ledger.add_all(first)
    assert snapshot(ledger, fold) == snapshot(fold_all(first, fold), fold)
    ledger.add_all(second)
    assert snapshot(ledger, fold) == snapshot(fold_all(scenario.events, fold), fold)
    later_first = Ledger(fold)
    later_first.add_all(second)
    later_first.add_all(first)
    assert snapshot(later_first, fold) == snapshot(ledger, fold)


@PROPERTY
@given(scenario=scenarios(), fold=fold_settings)
def test_customer_ids_come_from_the_identifiers_alone(
    scenario: Scenario, fold: FoldSettings
) -> None:
    fold = replace(fold, default_identity=UNLIMITED.default_identity)
    journeys = fold_all(scenario.events, fold)
    for journey in journeys:
        region = fold.region_for(journey.tenant)
        keys = {ident.key for event in journey.events for ident in identity_ids(event, region)}
        assert journey.customer_id == customer_id_for(journey.tenant, keys)
        assert journey.customer_id.startswith("cus_")
        assert {event.tenant for event in journey.events} == {journey.tenant}
    held = [event.event_id for journey in journeys for event in journey.events]
    assert sorted(held) == sorted(event.event_id for event in scenario.events)
    ids = [(j.tenant, j.customer_id) for j in journeys]
    assert len(ids) == len(set(ids))


@PROPERTY
@given(scenario=scenarios())
def test_stitching_joins_exactly_the_events_that_share_an_identifier(scenario: Scenario) -> None:
    # Ground truth from the generator, not from the normaliser: two events are one customer's
    # when a chain of shared identifiers (each however it was written) links them in a tenant.
    parent = {event.event_id: event.event_id for event in scenario.events}

    def root(node: str) -> str:
        while parent[node] != node:
            node = parent[node]
        return node

    by_token: dict[tuple[str, Token], str] = {}
    for event in scenario.events:
        for token in scenario.tokens[event.event_id]:
            other = by_token.setdefault((event.tenant, token), event.event_id)
            parent[root(event.event_id)] = root(other)
    expected: dict[str, set[str]] = {}
    for event in scenario.events:
        expected.setdefault(root(event.event_id), set()).add(event.event_id)
    for route in (
        fold_all(scenario.events, UNLIMITED),
        list(one_by_one(scenario.events, UNLIMITED)),
    ):
        found = sorted(sorted(j.event_ids) for j in route)
        assert found == sorted(sorted(group) for group in expected.values())


@PROPERTY
@given(scenario=scenarios(max_events=12), data=st.data())
def test_an_id_re_sent_with_other_content_is_a_conflict_and_the_first_stays(
    scenario: Scenario, data: st.DataObject
) -> None:
    if not scenario.events:
        return
    original = data.draw(st.sampled_from(scenario.events), label="original")
    document = event_to_dict(original)
    # The same instant written in another offset reads as another local time: other content.
    offset = data.draw(st.sampled_from(OFFSETS), label="offset")
    document["occurred_at"] = original.occurred_at.astimezone(offset).isoformat()
    if document == event_to_dict(original):
        document["correlation_id"] = "case-resent"
    changed = validate_document(document)
    ledger = Ledger()
    ledger.add_all(scenario.events)
    before = snapshot(ledger, NO_REGION)
    with pytest.raises(EventConflictError):
        ledger.add(changed)
    assert snapshot(ledger, NO_REGION) == before
    journey = next(j for j in ledger if original.event_id in j.event_ids)
    with pytest.raises(EventConflictError):
        apply_event(journey, changed)


def test_a_re_sent_slot_in_another_offset_is_other_content() -> None:
    # 10:30 in London and 11:30 in Paris are one instant but two different slots for the
    # customer (DATE_MISMATCH compares local times), so the second is not a retry.
    common: dict[str, Any] = {
        "event_id": "booking-0001",
        "type": "booking.created",
        "occurred_at": "2024-03-11T09:00:00+00:00",
        "tenant": "acme",
        "source": {"system": "booking"},
        "customer": {"email": "sam.patel@example.com"},
    }
    first = validate_document(
        {**common, "payload": {"booking_id": "BK-1042", "slot": "2024-03-12T10:30:00+00:00"}}
    )
    second = validate_document(
        {**common, "payload": {"booking_id": "BK-1042", "slot": "2024-03-12T11:30:00+01:00"}}
    )
    ledger = Ledger()
    ledger.add(first)
    with pytest.raises(EventConflictError):
        ledger.add(second)
    (journey,) = ledger
    assert event_to_dict(journey.events[0])["payload"]["slot"] == "2024-03-12T10:30:00+00:00"


def test_the_generator_covers_the_catalogue_and_overlapping_identifiers() -> None:
    # A guard on the strategy itself: the properties are only as good as what it generates.
    seen_types: set[str] = set()
    shared_across_tenants = merged = spellings = 0

    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    @given(scenarios())
    def collect(scenario: Scenario) -> None:
        nonlocal shared_across_tenants, merged, spellings
        seen_types.update(event.type for event in scenario.events)
        by_value: dict[str, set[str]] = {}
        for event in scenario.events:
            if event.customer.phone:
                by_value.setdefault(event.customer.phone, set()).add(event.tenant)
        phones = {e.customer.phone for e in scenario.events if e.customer.phone}
        spellings += len(phones) > 1
        shared_across_tenants += any(len(t) > 1 for t in by_value.values())
        merged += any(len(j.events) > 2 for j in fold_all(scenario.events))

    collect()
    assert seen_types == set(TOUCHPOINTS)
    assert shared_across_tenants
    assert merged
    assert spellings


def sorted_ledger(events: Iterable[Event], fold: FoldSettings) -> dict[tuple[str, str], Journey]:
    """The fold as it was before appending in order: each add re-sorts the whole journey."""
    ledger = Ledger(fold)
    journeys: dict[tuple[str, str], list[Event]] = {}
    for event in events:
        change = ledger.add(event)
        if change is None:
            continue
        held = [e for old in change.absorbed for e in journeys.pop((event.tenant, old))]
        held += journeys.pop((event.tenant, change.customer_id), [])
        journeys[(event.tenant, change.customer_id)] = [*held, event]
    return {
        key: Journey(key[0], key[1], tuple(sorted(held, key=lambda e: (e.occurred_at, e.event_id))))
        for key, held in journeys.items()
    }


@PROPERTY
@given(scenario=scenarios(max_events=40), fold=fold_settings, data=st.data())
def test_appending_in_order_equals_sorting_for_shuffled_input(
    scenario: Scenario, fold: FoldSettings, data: st.DataObject
) -> None:
    # `sorted_ledger` follows merges only; a limit's settle moves events between customers
    fold = replace(fold, default_identity=UNLIMITED.default_identity)
    arrival = data.draw(st.permutations(scenario.events), label="arrival order")
    # a mostly ordered stream with a few late events, and a fully shuffled one
    nearly = sorted(arrival, key=lambda e: e.occurred_at)
    if len(nearly) > 2:
        late = data.draw(st.integers(0, len(nearly) - 1), label="late event")
        nearly.append(nearly.pop(late))
    for stream in (arrival, nearly):
        ledger = one_by_one(stream, fold)
        assert ledger.journeys == sorted_ledger(stream, fold)
        for journey in ledger.journeys.values():
            assert list(journey.events) == sorted(journey.events, key=event_order)


def test_folding_a_long_journey_compares_each_event_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The journey is no longer re-sorted per add: order keys computed stay O(n log n)."""
    from projections import journey as journey_module

    calls = 0
    original = journey_module.event_order

    def counting(event: Event) -> tuple[datetime, str]:
        nonlocal calls
        calls += 1
        return original(event)

    monkeypatch.setattr(journey_module, "event_order", counting)
    count = 1_500
    events = [
        factories.ev(
            "chat.message",
            {"speaker": "customer", "text": "hi"},
            # every tenth event arrives late, five minutes before the one before it
            when=factories.at(minutes=n - 5 if n % 10 == 0 else n),
            event_id=f"long-{n:05d}",
        )
        for n in range(count)
    ]
    ledger = one_by_one(events, NO_REGION)
    (journey,) = ledger.journeys.values()
    assert len(journey.events) == count
    assert calls <= count * (2 + 2 * count.bit_length())  # re-sorting: about count**2 / 2
