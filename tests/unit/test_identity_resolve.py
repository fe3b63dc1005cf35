"""A merge or split named by customer ids resolves, from the journeys as the ledger shows them,
to the identifier it is about; the decision it gives, folded with the log, does what a decision
naming that identifier by hand does (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from journeys.cli.check import check_lines, report_to_dict
from journeys.cli.send import decision_line
from projections.handling.resolve import (
    ResolutionError,
    conflict_identifier,
    held_between,
    resolve_merge,
    resolve_split,
)
from tests.unit.test_identity_rules import MERGING, SHOP, _line, _settings

LIMITED = _settings({"limits": {"email": 1}})
DECIDED_AT = datetime(2024, 3, 10, 9, tzinfo=UTC)


def _journeys(lines: list[bytes], settings: Any = LIMITED) -> list[dict[str, Any]]:
    journeys: list[dict[str, Any]] = report_to_dict(check_lines(lines, settings))["journeys"]
    return sorted(journeys, key=lambda j: j["names"])


def _decide(type_: str, identifier: str, customers: tuple[str, ...]) -> bytes:
    return decision_line(
        type_, identifier, "acme", "one person", "r.khan", DECIDED_AT, customers=customers
    )


def test_a_held_link_between_two_customers_is_the_merge_confirmed_and_it_merges_them() -> None:
    carol, dave = _journeys(SHOP)
    assert (carol["names"], dave["names"]) == (["Carol"], ["Dave"])
    resolved = resolve_merge(carol, dave, "GB")
    assert resolved.identifier == "phone:+441134960000"
    assert resolved.customers == (carol["customer_id"], dave["customer_id"])
    line = _decide("identity.merge_confirmed", resolved.identifier, resolved.customers)
    assert orjson.loads(line)["payload"]["customers"] == list(resolved.customers)
    (merged,) = _journeys([*SHOP, line])
    assert merged["names"] == ["Carol", "Dave"]
    assert not [
        f for f in merged["flags"] if f["rule"] == "IDENTITY_CONFLICT" and f["status"] == "open"
    ]


def test_the_conflict_flag_alone_names_the_value_when_the_journeys_share_nothing() -> None:
    carol, dave = _journeys(SHOP)
    (flag,) = [f for f in carol["flags"] if f["rule"] == "IDENTITY_CONFLICT"]
    kind, value, customers = conflict_identifier(flag) or ("", "", ())
    assert (kind, value) == ("phone", "+441134960000")
    assert set(customers) == {carol["customer_id"], dave["customer_id"]}
    # take the phone off Dave's identifiers: only the flag names it now
    dave_alone = {**dave, "identifiers": [i for i in dave["identifiers"] if i["kind"] != "phone"]}
    assert held_between(carol, dave_alone, "GB") == ["phone:+441134960000"]
    # a conflict no longer open names nothing
    resolved = [{**flag, "status": "resolved"}]
    assert held_between({**carol, "flags": resolved}, {**dave_alone, "flags": resolved}, "GB") == []


def test_customers_holding_nothing_in_common_get_an_error_saying_what_to_do() -> None:
    (priya,) = _journeys(MERGING)
    carol, _ = _journeys(SHOP)
    with pytest.raises(ResolutionError) as caught:
        resolve_merge(priya, carol, "GB")
    assert caught.value.candidates == ()
    assert "no identifier is held between" in str(caught.value)
    assert "KIND:VALUE" in caught.value.hint
    with pytest.raises(ResolutionError, match="already one customer"):
        resolve_merge(priya, priya, "GB")


def test_junk_both_customers_carry_is_never_the_value_confirmed() -> None:
    dealer = [
        _line(f"d-{n}", "message.received", f"2024-03-09T1{n}:00:00Z", ids, medium="sms")
        for n, ids in enumerate(
            [
                {"email": "alice@example.com", "phone": "00000000000", "name": "Alice"},
                {"email": "bob@example.com", "phone": "00000000000", "name": "Bob"},
            ]
        )
    ]
    alice, bob = _journeys(dealer, _settings())
    assert alice["customer_id"] != bob["customer_id"]
    assert held_between(alice, bob, "GB") == []


SHARING_TWO = [
    *SHOP,
    _line(
        "s-3",
        "booking.created",
        "2024-03-09T12:00:00Z",
        {"email": "carol@example.com", "plate": "AB12 CDE"},
        booking_id="BK-1",
        slot="2024-03-15",
    ),
    _line(
        "s-4",
        "booking.created",
        "2024-03-09T13:00:00Z",
        {"email": "dave@example.com", "plate": "ab12cde"},
        booking_id="BK-2",
        slot="2024-03-16",
    ),
]


def test_several_values_held_between_them_need_via_and_via_must_be_one_of_them() -> None:
    carol, dave = _journeys(SHARING_TWO)
    with pytest.raises(ResolutionError) as caught:
        resolve_merge(carol, dave, "GB")
    assert caught.value.candidates == ("phone:+441134960000", "plate:AB12CDE")
    assert "--via" in caught.value.hint
    chosen = resolve_merge(carol, dave, "GB", via="plate:ab12 cde")
    assert chosen.identifier == "plate:AB12CDE"
    # the same number however it is written
    assert resolve_merge(carol, dave, "GB", via="phone:0113 496 0000").identifier == (
        "phone:+441134960000"
    )
    with pytest.raises(ResolutionError, match="is not held between") as wrong:
        resolve_merge(carol, dave, "GB", via="email:carol@example.com")
    assert wrong.value.candidates == caught.value.candidates


def test_a_split_by_customer_goes_along_its_one_merge_and_splits_it() -> None:
    (priya,) = _journeys(MERGING, _settings())
    resolved = resolve_split(priya, "GB")
    assert resolved == type(resolved)("email:priya@example.com", (priya["customer_id"],))
    line = _decide("identity.split", resolved.identifier, resolved.customers)
    parts = _journeys([*MERGING, line], _settings())
    assert len(parts) == 2
    # split since: the merge through it is undone, none is left to split along
    for part in parts:
        with pytest.raises(ResolutionError, match="lists no merge"):
            resolve_split(part, "GB")


def test_a_customer_merged_through_several_values_is_refused_with_them_listed() -> None:
    lines = [
        *MERGING,
        _line("m-5", "message.received", "2024-03-09T13:00:00Z", {"phone": "07700 900123"}, medium="sms"),
        _line(
            "m-6", "call.logged", "2024-03-09T14:00:00Z",
            {"phone": "07700 900123", "plate": "AB12CDE"}, direction="inbound",
        ),
    ]  # fmt: skip
    (priya,) = _journeys(lines, _settings())
    with pytest.raises(ResolutionError) as caught:
        resolve_split(priya, "GB")
    assert set(caught.value.candidates) == {"email:priya@example.com", "phone:+447700900123"}
    assert "from cus_" in str(caught.value)
    assert resolve_split(priya, "GB", via="phone:+44 7700 900123").identifier == (
        "phone:+447700900123"
    )
    with pytest.raises(ResolutionError, match="holds no linking identifier"):
        resolve_split(priya, "GB", via="phone:+44 7700 900999")


def test_a_merge_back_listed_by_the_values_decided_form_splits_along_the_journeys_value() -> None:
    # live, a confirmed merge's merge back names a phone by its national number
    carol, _ = _journeys(SHOP)
    merge = {"at": "2024-03-10T09:00:00+00:00", "event_id": "decision-1", "from_customer": "cus_x"}
    merged = {**carol, "merges": [{**merge, "identifier": "phone 1134960000"}]}
    assert resolve_split(merged, None).identifier == "phone:+441134960000"
    unknown = {**carol, "merges": [{**merge, "identifier": "phone 7700900999"}]}
    with pytest.raises(ResolutionError, match="lists no merge"):
        resolve_split(unknown, None)
