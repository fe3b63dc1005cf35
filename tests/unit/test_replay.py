"""Replay: a journey, its flags and their first visibility as they stood at a past moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from journeys.bench.load import skewed_lines
from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from projections.flags import Flag
from projections.identity import customer_id_for
from projections.ledger import fold
from projections.replay import (
    CUSTOMER_ID,
    Query,
    Replay,
    events_to_fold,
    first_visible,
    parse_identifier,
    parse_query,
    replay,
    replay_to_dict,
)
from projections.rules import detect
from projections.settings import FoldSettings
from projections.view import JourneyView
from schemas.codec import decode_event, encode_event
from schemas.errors import (
    AmbiguousCustomerError,
    CustomerNotFoundError,
    InvalidWindowError,
    JourneyLedgerError,
    UnknownIdentifierError,
)
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.test_identity_rules import _settings

SETTINGS = FoldSettings()
TICK = timedelta(microseconds=1)


def demo_events() -> list[Event]:
    return [decode_event(line) for line in demo_lines()]


DEMO = demo_events()


SENT = {(e.tenant, e.event_id): line for e, line in zip(DEMO, demo_lines(), strict=True)}
"""Each demo event as its producer sent it (`redacted` is the ledger's to set, on masking)."""


def check_at(events: list[Event], moment: datetime) -> list[JourneyView]:
    """What `journeys check --as-of T` shows for the events that occurred by T."""
    lines = [
        SENT.get((e.tenant, e.event_id), encode_event(e)) for e in events if e.occurred_at <= moment
    ]
    return check_lines(lines, SETTINGS, moment).journeys


def all_flags(events: list[Event], moment: datetime) -> dict[str, Flag]:
    return {f.flag_id: f for v in check_at(events, moment) for f in v.flags}


def query_for(journey: JourneyView) -> str:
    ident = journey.identifiers[0]
    return f"{ident.kind}:{ident.value}"


def cut_points(events: list[Event]) -> list[datetime]:
    """Every event time, a moment either side of it, and a day and more after the first ones."""
    moments: set[datetime] = set()
    for event in events:
        moments |= {event.occurred_at, event.occurred_at - TICK, event.occurred_at + TICK}
        moments.add(event.occurred_at + timedelta(hours=24, seconds=1))
    last = max(e.occurred_at for e in events) + timedelta(days=2)
    return sorted(m for m in moments if m <= last)


# --- replay as of T is `journeys check` of the events up to T ---------------------------------------


@pytest.mark.parametrize("moment", cut_points(DEMO)[::3])
def test_replay_equals_check_of_the_events_up_to_the_moment(moment: datetime) -> None:
    expected = check_at(DEMO, moment)
    for journey in expected:
        result = replay(DEMO, query_for(journey), moment, SETTINGS)
        assert result.view == journey
        assert result.timeline == journey.events
        assert [f.flag for f in result.flags] == list(journey.flags)
        by_id = replay(DEMO, journey.customer_id, moment, SETTINGS)
        assert by_id.view == journey
        assert not by_id.resolution.superseded


def test_every_demo_journey_is_replayed_at_many_cut_points() -> None:
    final = check_at(DEMO, cut_points(DEMO)[-1])
    assert len(final) >= 7
    assert len(cut_points(DEMO)[::3]) > 20


@pytest.mark.parametrize("moment", cut_points(DEMO)[1::4])
def test_later_flags_are_absent_and_later_resolutions_still_open(moment: datetime) -> None:
    end = cut_points(DEMO)[-1]
    final = all_flags(DEMO, end)
    for journey in check_at(DEMO, moment):
        result = replay(DEMO, query_for(journey), moment, SETTINGS)
        shown = {f.flag.flag_id: f.flag for f in result.flags}
        for flag_id, later in final.items():
            if later.opened_at > moment:
                assert flag_id not in shown
            if flag_id in shown and later.resolved_at is not None and later.resolved_at > moment:
                assert shown[flag_id].status == "open"
                assert shown[flag_id].resolved_at is None


def test_the_demo_has_a_flag_resolved_after_a_cut_point_that_is_open_at_it() -> None:
    moment = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
    result = replay(DEMO, "email:tom.becker@example.org", moment, SETTINGS)
    duplicate = next(f.flag for f in result.flags if f.flag.rule == "DUPLICATE_ORDER")
    assert duplicate.status == "open"
    later = replay(DEMO, "email:tom.becker@example.org", moment + timedelta(hours=1), SETTINGS)
    assert next(f.flag for f in later.flags if f.flag.rule == "DUPLICATE_ORDER").status == (
        "resolved"
    )
    assert not any(f.flag.rule == "PAYMENT_FOR_CANCELLED_ORDER" for f in result.flags)


# --- first visibility --------------------------------------------------------------------------------


@pytest.mark.parametrize("moment", [cut_points(DEMO)[-1], datetime(2026, 11, 4, 9, tzinfo=UTC)])
def test_first_visible_is_the_moment_the_flag_appears(moment: datetime) -> None:
    seen = 0
    for journey in check_at(DEMO, moment):
        result = replay(DEMO, query_for(journey), moment, SETTINGS)
        for item in result.flags:
            seen += 1
            visible = item.first_visible_at
            assert visible <= moment
            assert item.flag.flag_id not in all_flags(DEMO, visible - TICK)
            # Time-based flags show at any moment after their deadline; the others at it.
            shown = all_flags(DEMO, min(visible + TICK, moment))
            assert item.flag.flag_id in shown
            assert item.first_visible_systems == shown[item.flag.flag_id].systems
    assert seen >= 10


def test_an_unanswered_enquiry_first_shows_at_its_deadline() -> None:
    enquiry = ev("message.received", {"medium": "email"}, when=at(), system="inbox")
    result = replay([enquiry], "email:sam@example.com", at(days=3), SETTINGS)
    (item,) = result.flags
    assert item.flag.rule == "UNANSWERED_ENQUIRY"
    assert item.first_visible_at == at(hours=24)
    assert item.first_visible_systems == ("inbox",)


def test_a_contradiction_is_visible_only_once_identity_links_its_events() -> None:
    asked = ev(
        "chat.message",
        {"speaker": "customer", "requested_slot": "2024-03-15T10:30:00+00:00"},
        when=at(),
        system="chat-vendor",
        customer={"anonymous_id": "chat-1"},
    )
    booked = ev(
        "booking.created",
        {"booking_id": "B1", "slot": "2024-03-16T10:30:00+00:00"},
        when=at(hours=1),
        system="dealer-booking",
        customer={"email": "sam@example.com"},
    )
    link = ev(
        "chat.message",
        {"speaker": "customer", "provided": ["email"]},
        when=at(hours=5),
        system="chat-vendor",
        customer={"anonymous_id": "chat-1", "email": "sam@example.com"},
    )
    events = [link, booked, asked]
    after = replay(events, "anonymous_id:chat-1", at(hours=6), SETTINGS)
    (item,) = [f for f in after.flags if f.flag.rule == "DATE_MISMATCH"]
    assert item.flag.opened_at == at(hours=1)
    assert item.first_visible_at == at(hours=5)
    assert item.first_visible_systems == ("chat-vendor", "dealer-booking")
    before = replay(events, "anonymous_id:chat-1", at(hours=4), SETTINGS)
    assert [e.event_id for e in before.view.events] == [asked.event_id]
    assert before.flags == ()


# --- windows, duplicates, conflicts ----------------------------------------------------------------


def test_the_window_narrows_the_timeline_but_not_the_flags() -> None:
    moment = datetime(2026, 11, 2, 10, tzinfo=UTC)
    whole = replay(DEMO, "plate:LM19 XKD", moment, SETTINGS)
    narrow = replay(
        DEMO,
        "plate:LM19 XKD",
        moment,
        SETTINGS,
        from_=datetime(2026, 11, 2, 9, 14, tzinfo=UTC),
        to=datetime(2026, 11, 2, 9, 20, tzinfo=UTC),
    )
    assert [e.event_id for e in narrow.timeline] == ["acm-0003", "acm-0004", "acm-0005"]
    assert narrow.flags == whole.flags
    assert narrow.view == whole.view
    assert narrow.knowledge == whole.knowledge


@pytest.mark.parametrize(
    ("from_", "to", "as_of"),
    [
        (at(hours=2), at(hours=1), at(hours=3)),
        (None, at(hours=4), at(hours=3)),
        (None, None, datetime(2024, 3, 11, 9, 0)),
        (datetime(2024, 3, 11, 9, 0), None, at(hours=3)),
    ],
)
def test_bad_windows_are_refused(
    from_: datetime | None, to: datetime | None, as_of: datetime
) -> None:
    event = ev("form.submitted", {"form": "contact"})
    with pytest.raises(InvalidWindowError) as raised:
        replay([event], "email:sam@example.com", as_of, SETTINGS, from_=from_, to=to)
    assert raised.value.hint


def test_duplicates_count_once_and_a_conflicting_redelivery_is_ignored() -> None:
    first = ev("form.submitted", {"form": "contact"}, event_id="x-1")
    again = ev("form.submitted", {"form": "contact"}, event_id="x-1")
    changed = ev("form.submitted", {"form": "other"}, event_id="x-1")
    result = replay([first, again, changed, again], "email:sam@example.com", at(1), SETTINGS)
    assert result.view.events == (first,)
    assert (result.stats.duplicates, result.stats.conflicts, result.stats.events_read) == (2, 1, 4)


# --- resolving the query ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "region", "key"),
    [
        ("phone:+44 7700 900123", None, "phone:+44:7700900123"),
        ("phone:07700 900123", "GB", "phone:+44:7700900123"),
        ("phone:07700 900123", None, "phone:7700900123"),
        ("plate:ab12 cde", None, "plate:AB12CDE"),
        ("Registration: AB12-CDE", None, "plate:AB12CDE"),
        ("email: X@Y.com ", None, "email:x@y.com"),
        ("order_id:NW-100481", None, "order_id:NW-100481"),
        ("order number:NW-100481", None, "order_id:NW-100481"),
        ("vin:wvwzzz1kz6w000123", None, "vin:WVWZZZ1KZ6W000123"),
        ("anonymous_id:chat-5521", None, "anonymous_id:chat-5521"),
        ("cus_0123456789abcdef", None, "cus_0123456789abcdef"),
        ("customer_id:CUS_0123456789ABCDEF", None, "cus_0123456789abcdef"),
    ],
)
def test_identifiers_parse_to_the_keys_the_ledger_uses(
    text: str, region: str | None, key: str
) -> None:
    assert parse_identifier(text, region) == key


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("LM19XKD", "names no kind"),
        ("colour:red", "unknown kind of identifier 'colour'"),
        ("name:Priya Shah", "two people can share a name"),
        ("phone:call me", "phone"),
        ("email:nobody", "email"),
        ("plate:", "plate"),
        ("cus_123", "16 hex digits"),
        ("customer_id:abc", "16 hex digits"),
        ("customer_ref:4929 1234 5678 9015", "card number"),
    ],
)
def test_bad_queries_are_refused_naming_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(UnknownIdentifierError) as raised:
        parse_query(text)
    assert says in str(raised.value)
    assert "4929 1234 5678 9015" not in str(raised.value)
    assert raised.value.hint
    assert isinstance(raised.value, JourneyLedgerError)


def test_a_query_prints_as_it_was_asked() -> None:
    assert str(parse_query("phone:+44 7700 900123")) == "phone:+44 7700 900123"
    assert parse_query("cus_0123456789abcdef") == Query(CUSTOMER_ID, "cus_0123456789abcdef")


def test_an_identifier_seen_only_later_is_not_found_and_says_when_it_appears() -> None:
    event = ev("form.submitted", {"form": "contact"}, when=at(hours=5))
    with pytest.raises(CustomerNotFoundError, match="first appears at 2024-03-11T14:00"):
        replay([event], "email:SAM@example.com", at(hours=1), SETTINGS)
    with pytest.raises(CustomerNotFoundError, match="no event in the log"):
        replay([event], "email:other@example.com", at(hours=6), SETTINGS)


def test_a_national_phone_query_finds_the_international_number() -> None:
    event = ev("message.sent", {"medium": "sms"}, customer={"phone": "+44 7700 900123"})
    result = replay([event], "phone:07700900123", at(1), SETTINGS)
    assert result.view.events == (event,)


def test_an_identifier_held_by_two_tenants_needs_the_tenant() -> None:
    acme = ev("form.submitted", {"form": "contact"}, tenant="acme")
    other = ev("form.submitted", {"form": "contact"}, tenant="globex")
    with pytest.raises(AmbiguousCustomerError) as raised:
        replay([acme, other], "email:sam@example.com", at(1), SETTINGS)
    assert "acme, globex" in str(raised.value)
    assert len(raised.value.candidates) == 2
    result = replay([acme, other], "email:sam@example.com", at(1), SETTINGS, tenant="globex")
    assert result.view.events == (other,)
    assert result.resolution.tenant == "globex"


def test_a_replay_folds_only_the_tenants_carrying_the_identifier() -> None:
    acme = ev("form.submitted", {"form": "contact"}, tenant="acme")
    national = ev(
        "message.sent", {"medium": "sms"}, tenant="globex", customer={"phone": "07700 900123"}
    )
    other = ev("form.submitted", {"form": "contact"}, tenant="initech", customer={"plate": "X1"})
    events = [acme, national, other]
    assert events_to_fold(parse_query("email:SAM@example.com"), events, SETTINGS) == [acme]
    phone = parse_query("phone:+44 7700 900123")  # the national spelling's number
    assert events_to_fold(phone, events, SETTINGS) == [national]
    assert events_to_fold(parse_query("plate:nowhere"), events, SETTINGS) == []
    assert events_to_fold(parse_query(customer_id_for("acme", ["x"])), events, SETTINGS) == events


GENERATED = [decode_event(line) for line in skewed_lines(1_200, 240, 4)]
"""A generated load: eight tenants, phones spelled differently by each system, merges."""


@pytest.mark.parametrize("step", range(4))
def test_replay_of_every_identifier_equals_check_on_a_generated_load(step: int) -> None:
    """Folding only the tenants carrying the identifier finds what folding all of them does."""
    moment = max(e.occurred_at for e in GENERATED) - timedelta(days=step * 3)
    expected = check_at(GENERATED, moment)
    owners: dict[str, list[JourneyView]] = {}
    for journey in expected:
        for ident in journey.identifiers:
            owners.setdefault(f"{ident.kind}:{ident.value}", []).append(journey)
    replayed = 0
    for query, journeys in sorted(owners.items())[step::4]:
        try:
            result = replay(GENERATED, query, moment, SETTINGS)
        except AmbiguousCustomerError:
            assert len({j.tenant for j in journeys}) > 1, query
            continue
        except CustomerNotFoundError:
            # junk and blocked values join nobody
            seen = [i for j in journeys for i in j.identifiers if f"{i.kind}:{i.value}" == query]
            assert seen, query
            assert all(i.not_matched for i in seen), query
            continue
        assert result.view in journeys, query
        replayed += 1
    assert replayed > 50


def _split_then_joined() -> tuple[Event, Event, Event]:
    by_phone = ev(
        "message.sent", {"medium": "sms"}, when=at(), customer={"phone": "+44 7700 900123"}
    )
    by_plate = ev(
        "booking.created",
        {"booking_id": "B1", "slot": "2024-03-15"},
        when=at(hours=1),
        customer={"plate": "AB12CDE"},
    )
    joined = ev(
        "form.submitted",
        {"form": "contact"},
        when=at(hours=2),
        customer={"email": "sam@example.com", "phone": "+44 7700 900123", "plate": "AB12CDE"},
    )
    return by_phone, by_plate, joined


def test_an_absorbed_customer_id_resolves_to_the_survivor_and_says_so() -> None:
    by_phone, by_plate, joined = _split_then_joined()
    phone_id = customer_id_for("acme", ["phone:+44:7700900123"])
    events = [joined, by_plate, by_phone]
    before = replay(events, phone_id, at(hours=1), SETTINGS)
    assert before.resolution.customer_id == phone_id
    assert not before.resolution.superseded
    assert before.resolution.note is None
    after = replay(events, phone_id, at(hours=3), SETTINGS)
    survivor = customer_id_for("acme", ["email:sam@example.com"])
    assert after.resolution.customer_id == survivor
    assert after.resolution.requested_id == phone_id
    assert after.resolution.superseded
    assert after.resolution.note is not None
    assert f"{phone_id} was merged into {survivor}" in after.resolution.note
    assert joined.event_id in after.resolution.note
    assert len(after.view.events) == 3


def test_a_customer_id_formed_later_resolves_to_its_only_fragment_or_lists_them() -> None:
    by_phone, by_plate, joined = _split_then_joined()
    live_id = customer_id_for("acme", ["email:sam@example.com"])
    one = replay([by_phone, joined], live_id, at(hours=1), SETTINGS)
    assert one.resolution.customer_id == customer_id_for("acme", ["phone:+44:7700900123"])
    assert one.resolution.note is not None
    assert "formed after" in one.resolution.note
    with pytest.raises(AmbiguousCustomerError) as raised:
        replay([by_phone, by_plate, joined], live_id, at(hours=1, minutes=30), SETTINGS)
    assert len(raised.value.candidates) == 2
    with pytest.raises(CustomerNotFoundError, match="has no events up to"):
        replay([joined], live_id, at(hours=1), SETTINGS)
    with pytest.raises(CustomerNotFoundError, match="no customer"):
        replay([joined], "cus_0000000000000000", at(hours=3), SETTINGS)


# --- the value and its JSON ------------------------------------------------------------------------


def test_replay_to_dict_is_json_ready_and_complete() -> None:
    moment = datetime(2026, 11, 2, 10, tzinfo=UTC)
    result: Replay = replay(DEMO, "phone:+44 7700 900123", moment, SETTINGS)
    data = orjson.loads(orjson.dumps(replay_to_dict(result)))
    assert data["resolution"]["customer_id"] == result.view.customer_id
    assert data["query"]["matched_key"] == "phone:+44:7700900123"
    assert data["summary"]["events"] == 6
    assert data["summary"]["systems"] == ["chat-vendor", "dealer-booking", "sms-gateway"]
    mismatch = next(f for f in data["flags"] if f["rule"] == "DATE_MISMATCH")
    assert mismatch["first_visible_at"] == "2026-11-02T09:41:00+00:00"
    assert mismatch["first_visible_systems"] == ["dealer-booking", "sms-gateway"]
    flagged = {t["event_id"] for t in data["timeline"] if mismatch["flag_id"] in t["flag_ids"]}
    assert flagged == {"acm-0004", "acm-0006"}
    assert [s["system"] for s in data["knowledge"]["systems"]] == data["summary"]["systems"]


def test_a_flag_shows_when_a_limit_s_settle_moves_another_customer_s_events() -> None:
    """Zoe's enquiry is answered by a reply to her car's VIN until Ann's event takes the car
    (one e-mail a customer: Ann's sorts first): the settle moves the reply away from Zoe, whose
    enquiry is unanswered again although the event was Ann's. Replay evaluates Zoe then too."""
    settings = _settings({"limits": {"email": 1}})
    vin, plate = "WVWZZZ1KZAW000120", "AB12CDE"
    zoe = {"email": "zoe@shop.net", "plate": plate}
    events = [
        ev("form.submitted", {"form": "contact"}, when=at(), customer=zoe, event_id="z-1"),
        ev("enquiry.responded", {}, when=at(hours=1), customer={"vin": vin}, event_id="z-2"),
        ev(
            "survey.responded",
            {"score": 9},
            when=at(hours=2),
            event_id="z-3",
            customer={"vin": vin, "plate": plate},
        ),
        ev(
            "survey.responded",
            {"score": 9},
            when=at(hours=3),
            event_id="z-4",
            customer={"email": "ann@shop.net", "plate": plate},
        ),
    ]
    moment = at(days=2)
    journeys = {tuple(e.event_id for e in j.events): j for j in fold(events, settings)}
    assert sorted(journeys) == [("z-1",), ("z-2", "z-3", "z-4")]
    (flag,) = detect(journeys[("z-1",)].events, moment, settings.rules)
    assert flag.rule == "UNANSWERED_ENQUIRY"
    visible = first_visible(events, [flag], moment, settings)
    assert visible[flag.flag_id][0] == at(hours=24)
