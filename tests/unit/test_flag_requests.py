"""Actions on flags and identity decisions as requests: each refusal names its field, and the
event built carries the token's user and the customer's strongest linking identifier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from projections.handling.requests import (
    ActionRequest,
    RequestError,
    action_document,
    decision_document,
    linking_identifiers,
    parse_action,
    parse_decision,
)
from projections.identity import PRIORITY
from schemas.codec import decode_event
from schemas.errors import UnknownIdentifierError

NOW = datetime(2026, 11, 4, 9, 30, tzinfo=UTC)
FLAG = "flg_3f2a9c0d1b7e6a54"
CUS_A = "cus_04bce3cd83512c23"
CUS_B = "cus_152d00493a11ed65"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("acknowledge", "body"),
        ({}, "action"),
        ({"action": "shout"}, "action"),
        ({"action": 3}, "action"),
        ({"action": "assign"}, "assignee"),
        ({"action": "assign", "assignee": "   "}, "assignee"),
        ({"action": "assign", "assignee": "sam\x1b[31m"}, "assignee"),
        ({"action": "assign", "assignee": "x" * 201}, "assignee"),
        ({"action": "note"}, "note"),
        ({"action": "resolve", "note": ""}, "note"),
        ({"action": "resolve", "note": "done\x00"}, "note"),
        ({"action": "note", "note": "x" * 10_001}, "note"),
        ({"action": "note", "note": {"deep": [[["x"]]]}}, "note"),
        ({"action": "snooze"}, "until"),
        ({"action": "snooze", "until": "next tuesday"}, "until"),
        ({"action": "snooze", "until": "2026-11-05T09:00:00"}, "until"),  # no offset
        ({"action": "acknowledge", "until": "2026-11-05T09:00:00+00:00"}, "until"),
        ({"action": "note", "note": "x", "assignee": "sam"}, "assignee"),
        ({"action": "acknowledge", "by": "someone-else"}, "by"),
    ],
)
def test_a_bad_action_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_action(body)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_good_actions_are_read_with_what_they_need() -> None:
    assert parse_action({"action": "acknowledge"}) == ActionRequest("acknowledge")
    assert parse_action({"action": "assign", "assignee": " leeds-desk "}).assignee == "leeds-desk"
    assert parse_action({"action": "note", "note": "line one\n\tline two"}).note == (
        "line one\n\tline two"
    )
    snoozed = parse_action({"action": "snooze", "until": "2026-11-05T09:00:00+01:00"})
    assert snoozed.until == datetime(2026, 11, 5, 8, tzinfo=UTC)
    assert parse_action({"action": "reopen", "note": None}) == ActionRequest("reopen")
    with pytest.raises(RequestError, match=r"^until: must be in the future"):
        parse_action({"action": "snooze", "until": "2026-11-04T09:30:00Z"}, NOW)


def _ident(kind: str, value: str, refused: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"kind": kind, "value": value, "systems": ["crm"]}
    if refused is not None:
        found["not_used_for_matching"] = refused
    return found


def test_identifiers_that_may_link_come_in_priority_order() -> None:
    identifiers = [
        _ident("phone", "+447700900123"),
        _ident("email", "shared@example.com", "blocked by a person"),
        _ident("plate", "AB12CDE"),
        _ident("customer_ref", "N/A", "junk"),
        _ident("email", "priya@example.com"),
    ]
    assert linking_identifiers(identifiers, PRIORITY) == [
        ("email", "priya@example.com"),
        ("phone", "+447700900123"),
        ("plate", "AB12CDE"),
    ]
    plates_first = ("plate", *(k for k in PRIORITY if k != "plate"))
    assert linking_identifiers(identifiers, plates_first)[0] == ("plate", "AB12CDE")
    assert linking_identifiers([_ident("email", "x@example.com", "junk")], PRIORITY) == []


@pytest.mark.parametrize(
    "body",
    [
        {"action": "acknowledge"},
        {"action": "assign", "assignee": "leeds-desk", "note": "bookings own it"},
        {"action": "note", "note": "called the customer"},
        {"action": "resolve", "note": "refund sent"},
        {"action": "reopen"},
        {"action": "snooze", "until": "2026-11-05T09:00:00+00:00"},
    ],
)
def test_the_event_is_valid_and_signed_by_the_user(body: dict[str, Any]) -> None:
    asked = parse_action(body)
    document = action_document(
        asked,
        flag_id=FLAG,
        tenant="acme",
        identifier=("email", "priya@example.com"),
        user="sam@acme",
        now=NOW,
        event_id="act_1",
    )
    event = decode_event(orjson.dumps(document))  # the door's own check
    assert event.type == f"flag.{_past(asked.action)}"
    assert event.payload.by == "sam@acme"  # type: ignore[union-attr]
    assert event.payload.flag_id == FLAG  # type: ignore[union-attr]
    assert event.source.actor == "sam@acme"
    assert event.customer.email == "priya@example.com"
    assert event.occurred_at == NOW


def _past(action: str) -> str:
    return {
        "acknowledge": "acknowledged",
        "assign": "assigned",
        "note": "noted",
        "resolve": "resolved",
        "reopen": "reopened",
        "snooze": "snoozed",
    }[action]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "forget", "identifier": "phone:0113", "tenant": "a", "reason": "r"}, "decision"),
        ({"decision": "block", "tenant": "acme", "reason": "shared"}, "identifier"),
        ({"decision": "block", "identifier": "colour:red", "tenant": "a", "reason": "r"}, "identifier"),
        (
            {"decision": "block", "identifier": "cus_0123456789abcdef", "tenant": "a", "reason": "r"},
            "identifier",
        ),
        ({"decision": "block", "identifier": "phone:0113 496 0000", "reason": "r"}, "tenant"),
        ({"decision": "block", "identifier": "phone:0113 496 0000", "tenant": "acme"}, "reason"),
        ({"decision": "block", "identifier": "phone:0113 496 0000", "tenant": "acme",
          "reason": "r", "decided_by": "someone-else"}, "decided_by"),
        ({"decision": "block", "customers": [CUS_A, CUS_B], "tenant": "a", "reason": "r"},
         "customers"),
        ({"decision": "split", "customers": [CUS_A, CUS_B], "tenant": "a", "reason": "r"},
         "customers"),
        ({"decision": "merge", "customer": CUS_A, "tenant": "a", "reason": "r"}, "customer"),
        ({"decision": "merge", "customers": [CUS_A], "tenant": "a", "reason": "r"}, "customers"),
        ({"decision": "merge", "customers": CUS_A, "tenant": "a", "reason": "r"}, "customers"),
        ({"decision": "merge", "customers": [CUS_A, CUS_A], "tenant": "a", "reason": "r"},
         "customers"),
        ({"decision": "merge", "customers": [CUS_A, "phone:0113"], "tenant": "a", "reason": "r"},
         "customers"),
        ({"decision": "merge", "customers": [CUS_A, CUS_B], "identifier": "phone:0113 496 0000",
          "tenant": "a", "reason": "r"}, "identifier"),
        ({"decision": "merge", "identifier": CUS_A, "tenant": "a", "reason": "r"}, "identifier"),
        ({"decision": "merge", "identifier": "phone:0113 496 0000", "via": "phone:0113 496 0000",
          "tenant": "a", "reason": "r"}, "via"),
        ({"decision": "merge", "customers": [CUS_A, CUS_B], "via": "colour:red", "tenant": "a",
          "reason": "r"}, "via"),
        ({"decision": "split", "customer": ["x"], "tenant": "a", "reason": "r"}, "customer"),
        ({"decision": "split", "customer": CUS_A, "tenant": "a"}, "reason"),
    ],
)  # fmt: skip
def test_a_bad_decision_names_its_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_decision(body)
    assert caught.value.field == field


def test_a_merge_or_split_may_name_customers_instead_of_an_identifier() -> None:
    merge = parse_decision(
        {"decision": "merge", "customers": [CUS_A, CUS_B.upper().replace("CUS_", "cus_")],
         "via": "phone:0113 496 0000", "tenant": "acme", "reason": "one person"}
    )  # fmt: skip
    assert (merge.type, merge.identifier, merge.customers) == (
        "identity.merge_confirmed",
        None,
        (CUS_A, CUS_B),
    )
    assert merge.via == "phone:0113 496 0000"
    split = parse_decision({"decision": "split", "customer": CUS_A, "tenant": "a", "reason": "r"})
    assert (split.type, split.customers, split.via) == ("identity.split", (CUS_A,), None)
    document = decision_document(
        split.type,
        "email:family@example.com",
        split.tenant,
        split.reason,
        by="ana",
        now=NOW,
        event_id="d",
        system="journeys",
        customers=split.customers,
    )
    event = decode_event(orjson.dumps(document))
    assert event.payload.customers == (CUS_A,)  # type: ignore[union-attr]


def test_a_decision_becomes_the_event_the_cli_writes() -> None:
    asked = parse_decision(
        {"decision": "merge", "identifier": "phone:0113 496 0000", "tenant": "acme", "reason": "r"}
    )
    document = decision_document(
        asked.type,
        asked.identifier,
        asked.tenant,
        asked.reason,
        by="ana@acme",
        now=NOW,
        event_id="decision-1",
        system="journeys",
    )
    event = decode_event(orjson.dumps(document))
    assert event.type == "identity.merge_confirmed"
    assert event.payload.decided_by == "ana@acme"  # type: ignore[union-attr]
    assert event.customer.phone == "0113 496 0000"
    with pytest.raises(UnknownIdentifierError):
        decision_document(
            "identity.blocked",
            "cus_0123456789abcdef",
            "acme",
            "r",
            by="ana",
            now=NOW,
            event_id="d",
            system="journeys",
        )


def test_the_client_posts_the_action_and_says_why_it_was_refused() -> None:
    import httpx

    from journeys.sdk.client import ApiClient, ApiError

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/flg_0000000000000000/actions"):
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "x"}})
        if request.headers["Authorization"] == "Bearer viewer":
            error = {"code": "forbidden", "message": "this needs the manager role"}
            return httpx.Response(403, json={"error": error})
        return httpx.Response(202, json={"event_id": "act_1", "flag_id": FLAG})

    transport = httpx.MockTransport(answer)
    with ApiClient("http://api", "manager", transport=transport) as client:
        assert client.act_on_flag(FLAG, "resolve", note="refund sent")["event_id"] == "act_1"
        assert orjson.loads(seen[-1].content) == {"action": "resolve", "note": "refund sent"}
        assert seen[-1].url.path == f"/v1/flags/{FLAG}/actions"
        with pytest.raises(ApiError) as missing:
            client.act_on_flag("flg_0000000000000000", "acknowledge")
        assert missing.value.status == 404
    with ApiClient("http://api", "viewer", transport=transport) as client:
        with pytest.raises(ApiError) as refused:
            client.act_on_flag(FLAG, "acknowledge")
        assert refused.value.status == 403
        assert "manager role" in str(refused.value)


def test_the_flags_listing_says_who_has_a_flag() -> None:
    from journeys.cli.query import handling_line

    line = handling_line(
        {
            "state": "assigned",
            "assignee": "leeds-desk",
            "acknowledged_by": "sam@acme",
            "resolved_by": None,
            "notes": [{"at": "2026-11-04T09:00:00+00:00", "by": "sam@acme", "text": "x"}],
        }
    )
    assert line == "assigned · assigned to leeds-desk · acknowledged by sam@acme · 1 note(s)"
