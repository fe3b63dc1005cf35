"""Identity you can trust: junk never links, blocked values and limits hold merges, as-of."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from journeys.cli.check import check_lines, report_to_dict
from journeys.cli.send import decision_line
from journeys.settings import Settings
from projections.identifiers import identity_ids, normalise
from projections.identity import IdentityPolicy, MemoryIdentity, link
from projections.ledger import Ledger, fold, fold_all, identity_stats
from projections.settings import FoldSettings
from schemas.codec import decode_event
from schemas.errors import UnknownIdentifierError
from tests.factories import ev
from tests.unit.test_stages import Pipeline


def _settings(identity: dict[str, Any] | None = None, region: str | None = "GB") -> FoldSettings:
    tenant: dict[str, Any] = {"default_region": region} if region else {}
    if identity is not None:
        tenant["identity"] = identity
    return Settings.model_validate({"tenants": {"acme": tenant}}).fold_settings()


def _line(event_id: str, type_: str, when: str, customer: dict[str, str], **payload: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": type_,
            "occurred_at": when,
            "tenant": "acme",
            "source": {"system": "shop"},
            "customer": customer,
            "payload": payload,
        }
    )


DEALER = [
    _line(
        "d-1",
        "booking.created",
        "2024-03-09T10:00:00Z",
        {"email": "alice@example.com", "phone": "00000000000", "name": "Alice"},
        booking_id="BK-1",
        slot="2024-03-15T10:00:00Z",
    ),
    _line(
        "d-2",
        "booking.created",
        "2024-03-09T11:00:00Z",
        {"email": "bob@example.com", "phone": "00000000000", "name": "Bob"},
        booking_id="BK-2",
        slot="2024-03-16T10:00:00Z",
    ),
]

SHOP = [
    _line(
        "s-1",
        "order.placed",
        "2024-03-09T10:00:00Z",
        {"email": "carol@example.com", "phone": "0113 496 0000", "name": "Carol"},
        order_id="NW-1",
        items=["SKU-9"],
    ),
    _line(
        "s-2",
        "order.placed",
        "2024-03-09T11:00:00Z",
        {"email": "dave@example.com", "phone": "0113 496 0000", "name": "Dave"},
        order_id="NW-2",
        items=["SKU-9"],
    ),
]


def _names(lines: list[bytes], settings: FoldSettings) -> list[tuple[str, ...]]:
    return sorted(j.names for j in check_lines(lines, settings).journeys)


@pytest.mark.parametrize(
    ("kind", "value", "region", "reason"),
    [
        ("phone", "00000000000", None, "run of one digit"),
        ("phone", "+44 0000 000000", None, "run of one digit"),
        ("phone", "0123456789", None, "consecutive digits"),
        ("phone", "+44 12", None, "not a possible number"),
        ("phone", "07700 9001234567", "GB", "not a possible number for region GB"),
        ("email", "noemail@dealer.co.uk", None, "placeholder address"),
        ("email", "N/A", None, "placeholder address"),
        ("email", "sam@example.invalid", None, "placeholder domain"),
        ("email", "sam@mail.test", None, "placeholder domain"),
        ("email", "sam@test.com", None, "placeholder domain"),
        ("email", "sam@noemail.co.uk", None, "placeholder domain"),
        ("email", "sam@localhost", None, "placeholder domain"),
        ("email", "sam at example.com", None, "not a valid e-mail address"),
        ("vin", "00000000000000000", None, "one character repeated"),
        ("customer_ref", "unknown", None, "placeholder value"),
    ],
)
def test_junk_identifiers_carry_the_reason(
    kind: str, value: str, region: str | None, reason: str
) -> None:
    problem = normalise(kind, value, region).unusable
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    ("kind", "value", "region"),
    [
        ("phone", "+44 7700 900123", None),
        ("phone", "07700 900123", None),
        ("phone", "07700 900123", "GB"),
        ("phone", "001 310 555 0142", None),
        ("phone", "0113 496 0000", "GB"),
        ("email", "alice@example.com", None),
        ("email", "Sam.Patel@Example.com", None),
        ("plate", "AB12 CDE", None),
        ("anonymous_id", "sess-9f2c", None),
    ],
)
def test_real_identifiers_are_plausible(kind: str, value: str, region: str | None) -> None:
    assert normalise(kind, value, region).unusable is None


def test_a_placeholder_phone_never_joins_two_customers() -> None:
    report = check_lines(DEALER, _settings(region=None))
    assert sorted(j.names for j in report.journeys) == [("Alice",), ("Bob",)]
    phone = next(i for i in report.journeys[0].identifiers if i.kind == "phone")
    assert phone.value == "00000000000"
    assert phone.not_matched == "placeholder number (a run of one digit)"
    shown = report_to_dict(report)["journeys"][0]["identifiers"]
    assert {"kind": "phone", "value": "00000000000", "systems": ["shop"]} | {
        "not_used_for_matching": "placeholder number (a run of one digit)"
    } in shown


def test_an_event_with_only_junk_stands_alone() -> None:
    ledger = Ledger()
    for event_id in ("j-1", "j-2"):
        ledger.add(
            ev(
                "form.submitted",
                {"form": "f"},
                customer={"email": "noemail@dealer.com"},
                event_id=event_id,
            )
        )
    assert len(list(ledger)) == 2


def test_a_shared_switchboard_merges_without_settings() -> None:
    report = check_lines(SHOP, _settings())
    assert _names(SHOP, _settings()) == [("Carol", "Dave")]
    assert [f.rule for j in report.journeys for f in j.flags] == ["DUPLICATE_ORDER"]


def test_a_blocked_switchboard_never_links() -> None:
    settings = _settings({"blocked": {"phone": ["0113 496 0000"]}})
    report = check_lines(SHOP, settings)
    assert sorted(j.names for j in report.journeys) == [("Carol",), ("Dave",)]
    assert [f for j in report.journeys for f in j.flags] == []
    phones = {i.not_matched for j in report.journeys for i in j.identifiers if i.kind == "phone"}
    assert phones == {"blocked for this tenant"}


def test_a_blocked_phone_is_blocked_however_it_is_written() -> None:
    settings = _settings({"blocked": {"phone": ["0113 496 0000"]}}, region=None)
    lines = [SHOP[0], SHOP[1].replace(b"0113 496 0000", b"+44 113 496 0000")]
    assert _names(lines, settings) == [("Carol",), ("Dave",)]


def test_blocked_patterns_match_the_normalised_value() -> None:
    settings = _settings({"blocked_patterns": {"email": ["^noreply@"]}})
    lines = [
        _line(
            "n-1", "form.submitted", "2024-03-09T10:00:00Z", {"email": "NoReply@Shop.com"}, form="a"
        ),
        _line(
            "n-2", "form.submitted", "2024-03-09T11:00:00Z", {"email": "noreply@shop.com"}, form="b"
        ),
    ]
    assert len(check_lines(lines, settings).journeys) == 2


def test_an_email_limit_holds_the_merge_and_opens_a_conflict_on_both() -> None:
    settings = _settings({"limits": {"email": 1}})
    report = check_lines(SHOP, settings)
    assert sorted(j.names for j in report.journeys) == [("Carol",), ("Dave",)]
    flags = [(j.names, f) for j in report.journeys for f in j.flags]
    assert {names for names, _ in flags} == {("Carol",), ("Dave",)}
    for _, flag in flags:
        assert (flag.rule, flag.severity, flag.status) == ("IDENTITY_CONFLICT", "medium", "open")
        assert flag.event_ids == ("s-2",)
        for journey in report.journeys:
            assert journey.customer_id in flag.message
        assert "phone +441134960000" in flag.message
        assert "more than 1 email" in flag.message
    assert len({flag.flag_id for _, flag in flags}) == 1
    document = report_to_dict(report)
    assert document["summary"]["open_flags"] == 2
    ledger = Ledger(settings)
    for line in SHOP:
        ledger.add(decode_event(line))
    (conflict,) = ledger.conflicts_of("acme", report.journeys[0].customer_id)
    assert conflict.rule == "IDENTITY_CONFLICT"


def test_a_conflict_is_not_shown_before_it_happened() -> None:
    settings = _settings({"limits": {"email": 1}})
    report = check_lines(SHOP, settings, datetime.fromisoformat("2024-03-09T10:30:00+00:00"))
    assert [(j.names, j.flags) for j in report.journeys] == [(("Carol",), ())]


def test_a_held_event_follows_its_highest_priority_identifier() -> None:
    policy = IdentityPolicy(limits={"customer_ref": 1})
    graph = MemoryIdentity()
    for ids in (["customer_ref:A", "plate:AB12CDE"], ["customer_ref:B", "anonymous_id:s1"]):
        kinds = [normalise(k.split(":")[0], k.split(":")[1]) for k in ids]
        graph.apply(link(graph, "acme", kinds, policy))
    # An event naming B's session and A's plate with ref B: it stays with B.
    ids = [
        normalise("anonymous_id", "s1"),
        normalise("plate", "AB12CDE"),
        normalise("customer_ref", "B"),
    ]
    change = link(graph, "acme", ids, policy)
    graph.apply(change)
    assert change.customer_id == graph.customer_of("customer_ref:B")
    assert graph.customer_of("plate:AB12CDE") == graph.customer_of("customer_ref:A")
    assert [(c.kind, c.limit) for c in change.conflicts] == [("plate", "customer_ref")]


def test_limits_below_them_change_nothing() -> None:
    events = [
        ev(
            "form.submitted",
            {"form": "f"},
            customer={"email": "a@shop.com", "phone": "+44 7700 900123"},
        ),
        ev(
            "form.submitted",
            {"form": "f"},
            customer={"email": "b@shop.com", "phone": "+44 7700 900123"},
        ),
    ]
    settings = _settings({"limits": {"email": 2}})
    ledger = Ledger(settings)
    ledger.add_all(events)
    assert [j.customer_id for j in ledger] == [j.customer_id for j in fold_all(events, settings)]


def test_a_national_number_never_joins_countries_that_disagree() -> None:
    events = [
        ev("form.submitted", {"form": "f"}, customer={"phone": "+44 7700 900123"}),
        ev("form.submitted", {"form": "f"}, customer={"phone": "+1 770 090 0123"}),
        ev("form.submitted", {"form": "f"}, customer={"phone": "+33 1 23 45 67 89"}),
    ]
    # Two international numbers with one national number: the national one holds.
    same_nsn = [
        ev("form.submitted", {"form": "f"}, customer={"phone": "+44 7700 900123"}, event_id="p-1"),
        ev("form.submitted", {"form": "f"}, customer={"phone": "+49 7700 900123"}, event_id="p-2"),
        ev("form.submitted", {"form": "f"}, customer={"phone": "07700 900123"}, event_id="p-3"),
    ]
    for batch in (events, same_nsn, list(reversed(same_nsn))):
        ledger = Ledger()
        ledger.add_all(batch)
        holders = [j for j in ledger if len(j.events) > 1]
        for journey in holders:
            phones = {e.customer.phone for e in journey.events}
            assert not {"+44 7700 900123", "+49 7700 900123"} <= phones


def test_settings_refuse_unknown_kinds_and_bad_patterns() -> None:
    for identity in (
        {"blocked": {"fax": ["1"]}},
        {"blocked_patterns": {"email": ["("]}},
        {"limits": {"email": -1}},
        {"priority": ["email"]},
    ):
        with pytest.raises(ValidationError, match="identity"):
            _settings(identity)


BOOKING_THEN_SMS = [
    _line(
        "b-1",
        "booking.created",
        "2024-03-09T09:00:00Z",
        {"phone": "+44 7700 900123"},
        booking_id="BK-7",
        slot="2024-03-15T10:00:00Z",
    ),
    _line(
        "m-1",
        "message.sent",
        "2024-03-10T09:00:00Z",
        {"phone": "+44 7700 900123"},
        medium="sms",
        booking_id="BK-7",
        stated_slot="2024-03-16T10:00:00Z",
    ),
    _line(
        "m-2",
        "message.sent",
        "2024-03-11T09:00:00Z",
        {"phone": "+44 7700 900123"},
        medium="sms",
        booking_id="BK-7",
        stated_slot="2024-03-15T10:00:00Z",
    ),
]


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2024-03-09T12:00:00Z", []),
        ("2024-03-10T12:00:00Z", [("DATE_MISMATCH", "open")]),
        ("2024-03-11T12:00:00Z", [("DATE_MISMATCH", "resolved")]),
    ],
)
def test_as_of_means_as_of(as_of: str, expected: list[tuple[str, str]]) -> None:
    report = check_lines(BOOKING_THEN_SMS, _settings(), datetime.fromisoformat(as_of))
    assert [(f.rule, f.status) for j in report.journeys for f in j.flags] == expected
    assert all(e.occurred_at <= report.as_of for j in report.journeys for e in j.events)  # type: ignore[operator]


MERGING = [
    _line(
        "m-1", "form.submitted", "2024-03-09T10:00:00Z", {"email": "priya@example.com"}, form="a"
    ),
    _line(
        "m-2",
        "chat.message",
        "2024-03-09T10:05:00Z",
        {"anonymous_id": "sess-1", "plate": "AB12 CDE"},
        speaker="customer",
    ),
    _line(
        "m-3",
        "booking.created",
        "2024-03-09T11:00:00Z",
        {"email": "Priya@example.com", "plate": "AB12CDE"},
        booking_id="BK-1",
        slot="2024-03-15",
    ),
    _line("m-4", "message.sent", "2024-03-09T12:00:00Z", {"plate": "ab12-cde"}, medium="sms"),
]


def test_every_event_says_which_identifier_linked_it_and_the_journey_lists_its_merges() -> None:
    (journey,) = report_to_dict(check_lines(MERGING, _settings()))["journeys"]
    assert journey["linked_by"] == {"m-3": "email priya@example.com", "m-4": "plate AB12CDE"}
    # m-3 joined the e-mail's customer to the plate's, which keeps its id (its smallest key)
    (merge,) = journey["merges"]
    assert (merge["event_id"], merge["identifier"]) == ("m-3", "email priya@example.com")
    assert merge["into"] == journey["customer_id"] != merge["from_customer"]


def test_why_does_not_depend_on_arrival_order_of_unrelated_lines() -> None:
    forward = report_to_dict(check_lines(MERGING, _settings()))["journeys"][0]
    moved = [MERGING[1], MERGING[0], MERGING[2], MERGING[3]]
    again = report_to_dict(check_lines(moved, _settings()))["journeys"][0]
    assert forward["merges"] == again["merges"]
    assert forward["linked_by"] == again["linked_by"]


def test_merges_after_as_of_are_not_listed() -> None:
    report = check_lines(MERGING, _settings(), datetime.fromisoformat("2024-03-09T10:30:00+00:00"))
    assert [j.merges for j in report.journeys] == [(), ()]


def _decision(type_: str, event_id: str, when: str, phone: str = "+44 113 496 0000") -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": type_,
            "occurred_at": when,
            "tenant": "acme",
            "source": {"system": "journeys-cli", "actor": "r.khan"},
            "customer": {"phone": phone},
            "payload": {"reason": "the shop's switchboard", "decided_by": "r.khan"},
        }
    )


BLOCK = _decision("identity.blocked", "dec-1", "2024-03-09T12:00:00Z")
UNBLOCK = _decision("identity.unblocked", "dec-2", "2024-03-09T13:00:00Z")


def _shape(lines: list[bytes], as_of: str | None = None) -> list[dict[str, Any]]:
    moment = datetime.fromisoformat(as_of) if as_of else None
    document = report_to_dict(check_lines(lines, _settings(), moment))
    return sorted(
        (
            {
                "customer_id": j["customer_id"],
                "events": [e["event_id"] for e in j["events"]],
                "flags": [(f["rule"], f["status"]) for f in j["flags"]],
            }
            for j in document["journeys"]
        ),
        key=lambda j: str(j["customer_id"]),
    )


def test_a_block_decided_later_splits_the_customers_it_had_joined() -> None:
    merged = _shape(SHOP)
    assert [j["flags"] for j in merged] == [[("DUPLICATE_ORDER", "open")]]
    split = _shape([*SHOP, BLOCK])
    assert sorted(j["events"] for j in split) == [["s-1"], ["s-2"]]
    assert all(j["flags"] == [] for j in split)
    report = check_lines([*SHOP, BLOCK], _settings())
    assert report.decisions == 1
    reasons = {i.not_matched for j in report.journeys for i in j.identifiers if i.kind == "phone"}
    assert reasons == {"blocked by r.khan on 2024-03-09: the shop's switchboard"}


def test_as_of_before_the_block_shows_the_merge_as_it_stood() -> None:
    assert _shape([*SHOP, BLOCK], "2024-03-09T11:30:00+00:00") == _shape(SHOP)


def test_blocking_then_unblocking_returns_exactly_the_previous_journeys() -> None:
    assert _shape([*SHOP, BLOCK, UNBLOCK]) == _shape(SHOP)
    assert _shape([UNBLOCK, *SHOP, BLOCK]) == _shape(SHOP)
    assert _shape([*SHOP, UNBLOCK, BLOCK]) == _shape(SHOP)  # the unblock came later in time


EVERYTHING = [
    *SHOP,
    *DEALER,
    *MERGING,
    BLOCK,
    UNBLOCK,
    _decision("identity.split", "dec-5", "2024-03-09T10:30:00Z", "+44 7700 900999"),
    _decision("identity.merge_confirmed", "dec-6", "2024-03-09T09:00:00Z", "+44 7700 900999"),
    _line("x-1", "form.submitted", "2024-03-09T10:00:00Z", {"phone": "+44 7700 900999"}, form="a"),
    _line("x-2", "form.submitted", "2024-03-09T11:00:00Z", {"phone": "+44 7700 900999"}, form="b"),
    BOOKING_THEN_SMS[0],
]


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.permutations(EVERYTHING))
def test_arrival_order_never_changes_customers_or_flags_with_decisions(lines: list[bytes]) -> None:
    assert _shape(lines) == _shape(EVERYTHING)


def test_decision_events_join_no_journey_and_never_link_live() -> None:
    event = decode_event(BLOCK)
    (ident,) = identity_ids(event, "GB")
    assert ident.kind == "event"
    ledger = Ledger()
    assert ledger.add(event) is None
    assert list(ledger) == []


def test_the_cli_builds_a_valid_decision_that_check_honours() -> None:
    now = datetime.fromisoformat("2024-03-09T12:00:00+00:00")
    line = decision_line(
        "identity.blocked", "phone:0113 496 0000", "acme", "switchboard", "r.khan", now
    )
    event = decode_event(line)
    assert (event.type, event.customer.phone, event.source.actor) == (
        "identity.blocked",
        "0113 496 0000",
        "r.khan",
    )
    assert sorted(j["events"] for j in _shape([*SHOP, line])) == [["s-1"], ["s-2"]]
    with pytest.raises(UnknownIdentifierError):
        decision_line("identity.blocked", "cus_0123456789abcdef", "acme", "x", "y", now)


def test_the_live_stage_honours_a_block_for_later_events(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    for line in (BLOCK, *SHOP):
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    stored = sorted(events for events in pipeline.stored().values() if "dec-1" not in events)
    assert stored == [["s-1"], ["s-2"]]
    assert [f for f in pipeline.flags if f.rule == "DUPLICATE_ORDER"] == []
    unblocked = Pipeline(tmp_path / "again")
    for line in (BLOCK, UNBLOCK, *SHOP):
        unblocked.append("touchpoints", b"acme", line)
    unblocked.drain()
    assert ["s-1", "s-2"] in unblocked.stored().values()


def test_identity_stats_name_the_shared_value_and_count_refusals() -> None:
    events = [decode_event(line) for line in (*DEALER, *SHOP)]
    plain = identity_stats(fold(events, _settings()), "acme")
    assert plain["suspected_shared"] == [
        {"identifier": "phone +441134960000", "strong_identifiers": 2}
    ]
    assert plain["refused"] == {"junk": 2, "blocked": 0, "limit": 0}
    assert plain["largest_customers"][0]["identifiers"] == 3  # Carol and Dave, merged
    held = identity_stats(fold(events, _settings({"limits": {"email": 1}})), "acme")
    assert held["refused"] == {"junk": 2, "blocked": 0, "limit": 1}
    assert held["customers"] == 4
    blocked = identity_stats(fold([*events, decode_event(BLOCK)], _settings()), "acme")
    assert blocked["refused"]["blocked"] == 2
    assert blocked["suspected_shared"] == []


SPLIT = _decision("identity.split", "dec-3", "2024-03-09T12:00:00Z")
CONFIRM = _decision("identity.merge_confirmed", "dec-4", "2024-03-09T13:00:00Z")


def test_a_split_followed_by_a_confirming_merge_equals_never_having_split() -> None:
    assert sorted(j["events"] for j in _shape([*SHOP, SPLIT])) == [["s-1"], ["s-2"]]
    assert _shape([*SHOP, SPLIT, CONFIRM]) == _shape(SHOP)
    assert _shape([CONFIRM, SPLIT, *SHOP]) == _shape(SHOP)


def test_a_confirmed_merge_goes_past_the_limit_and_the_conflict_closes() -> None:
    limited = _settings({"limits": {"email": 1}})
    held = check_lines([*SHOP], limited)
    assert len(held.journeys) == 2
    confirmed = check_lines([*SHOP, CONFIRM], limited)
    assert [j.names for j in confirmed.journeys] == [("Carol", "Dave")]
    assert [f.rule for j in confirmed.journeys for f in j.flags] == ["DUPLICATE_ORDER"]


def test_the_live_ingest_counts_refused_links_as_the_pure_fold_does(tmp_path: Path) -> None:
    from streams.kafka.records import InRecord
    from streams.stages.ingest import ingest
    from streams.store.state import BatchState, LocalStore

    def counted(name: str, lines: list[bytes], settings: FoldSettings) -> dict[str, int]:
        state = BatchState(LocalStore(tmp_path / name), 0)
        records = [InRecord("touchpoints", 0, i, b"acme", line) for i, line in enumerate(lines)]
        refused = {"junk": 0, "blocked": 0, "limit": 0}
        ingest(state, records, settings, refused=refused)
        return refused

    limited = _settings({"limits": {"email": 1}})
    for name, chosen in (("plain", _settings()), ("limited", limited)):
        pure = identity_stats(fold([decode_event(x) for x in (*DEALER, *SHOP)], chosen), "acme")
        assert counted(name, [*DEALER, *SHOP], chosen) == pure["refused"]
    assert counted("limited-again", [*DEALER, *SHOP], limited)["limit"] == 1
    assert counted("blocked", [BLOCK, *SHOP], _settings()) == {"junk": 0, "blocked": 2, "limit": 0}
