"""Acting on flags and deciding identity through the API: roles, who is recorded, and refusals.

The app runs in aiohttp's test server over a stub worker (no broker); the producer validates
each event as the real one does and keeps it, so a test reads exactly what would be written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from journeys.sdk.producer import Delivery, prepare
from journeys.server import api
from journeys.settings import TokenEntry
from projections.settings import FoldSettings
from streams.directory import Directory
from streams.flag_index import FlagIndex
from tests.factories import flag_change

FLAG = "flg_3f2a9c0d1b7e6a54"
OTHER_FLAG = "flg_00000000000000ff"
TOKENS = {
    "viewer": TokenEntry(token="viewer-token-0123456789", tenants=("acme",), user="vic@acme"),
    "manager": TokenEntry(
        token="manager-token-0123456789", tenants=("acme",), user="sam@acme", role="manager"
    ),
    "admin": TokenEntry(token="admin-token-0123456789", tenants=("*",), role="admin"),
}
NOW = datetime(2026, 11, 4, 9, 30, tzinfo=UTC)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role].token}"}


class _Producer:
    """Validates like `JourneyProducer.send`, keeps the event, answers as if written."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, event: Any) -> asyncio.Future[Delivery]:
        prepare(event)
        self.sent.append(event)
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        future.set_result(Delivery("touchpoints", 0, 0))
        return future


def _journey(_context: api.ApiContext, tenant: str, customer_id: str, *_: object) -> dict[str, Any]:
    identifiers = [
        {"kind": "customer_ref", "value": "CR-1", "not_used_for_matching": "blocked"},
        # A link a limit held: the value is not refused, but its key is another customer's.
        {"kind": "email", "value": "family@example.com", "systems": ["shop"]},
        {"kind": "phone", "value": "+447700900123", "systems": ["crm"]},
        {"kind": "plate", "value": "AB12CDE", "systems": ["dms"]},
    ]
    return {"tenant": tenant, "customer_id": customer_id, "identifiers": identifiers}


def _owner(_worker: object, tenant: str, keys: list[str]) -> str | None:
    """The identity graph: the e-mail is held by another customer."""
    if any("family@example.com" in key for key in keys):
        return "cus_00000000000000cc"
    phone = "cus_00000000000000aa" if tenant == "acme" else "cus_00000000000000bb"
    return phone if any("7700900123" in key for key in keys) else None


def _run(
    scenario: Callable[[TestClient[Any, Any], _Producer], Awaitable[None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api, "_local_journey", _journey)
    monkeypatch.setattr(api, "lookup_customer", _owner)
    flags = FlagIndex()
    flags.apply(flag_change("opened", "acme", "cus_00000000000000aa", FLAG, opened_at="2026"))
    flags.apply(flag_change("opened", "other", "cus_00000000000000bb", OTHER_FLAG, opened_at="x"))
    producer = _Producer()

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=2) as executor:
            worker = SimpleNamespace(
                kafka=SimpleNamespace(partitions=1),
                owned=lambda _stage: frozenset({0}),
                tenants=lambda: frozenset({"acme", "other"}),
                identity_store=SimpleNamespace(get=lambda _partition, _key: None),  # no decisions
                sealer=None,  # nothing sealed: no ring to read
            )
            context = api.ApiContext(
                worker=worker,  # type: ignore[arg-type]
                fold=FoldSettings(),
                flags=flags,
                directory=Directory(),
                tokens=tuple(TOKENS.values()),
                clock=lambda: NOW,
                worker_id="w1",
                producer=producer,  # type: ignore[arg-type]
                executor=executor,
            )
            async with TestClient(TestServer(api.create_app(context))) as client:
                await scenario(client, producer)

    asyncio.run(main())


def _act(client: TestClient[Any, Any], role: str, body: Any, flag: str = FLAG) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(f"/v1/flags/{flag}/actions", data=data, headers=auth(role))


def test_a_manager_acts_as_the_tokens_user(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        response = await _act(client, "manager", {"action": "assign", "assignee": "leeds-desk"})
        assert response.status == 202
        answer = await response.json()
        (event,) = producer.sent
        assert answer == {
            "event_id": event["event_id"],
            "flag_id": FLAG,
            "action": "assign",
            "tenant": "acme",
            "customer_id": "cus_00000000000000aa",
        }
        assert event["event_id"].startswith("act_")
        assert event["type"] == "flag.assigned"
        assert event["payload"] == {"flag_id": FLAG, "by": "sam@acme", "assignee": "leeds-desk"}
        assert event["source"]["actor"] == "sam@acme"
        assert event["occurred_at"] == NOW.isoformat()
        # The blocked reference never links, the e-mail is another customer's: the phone.
        assert event["customer"] == {"phone": "+447700900123"}

    _run(scenario, monkeypatch)


def test_a_viewer_is_refused_with_the_role_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        response = await _act(client, "viewer", {"action": "acknowledge"})
        assert response.status == 403
        error = (await response.json())["error"]
        assert error["code"] == "forbidden"
        assert "manager role" in error["message"]
        assert producer.sent == []

    _run(scenario, monkeypatch)


def test_another_tenants_flag_answers_like_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        missing = "flg_0123456789abcdef"
        other = await _act(client, "manager", {"action": "acknowledge"}, OTHER_FLAG)
        unknown = await _act(client, "manager", {"action": "acknowledge"}, missing)
        assert other.status == unknown.status == 404
        assert (await other.text()).replace(OTHER_FLAG, missing) == await unknown.text()
        assert producer.sent == []
        admin = await _act(client, "admin", {"action": "acknowledge"}, OTHER_FLAG)
        assert admin.status == 202  # the flag exists: a token covering its tenant reaches it

    _run(scenario, monkeypatch)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "dance"}, "action"),
        ({"action": "assign"}, "assignee"),
        ({"action": "resolve"}, "note"),
        ({"action": "note"}, "note"),
        ({"action": "snooze"}, "until"),
        ({"action": "snooze", "until": "tomorrow"}, "until"),
        ({"action": "snooze", "until": "2026-11-04T09:00:00+00:00"}, "until"),  # before now
        ({"action": "acknowledge", "by": "the-boss"}, "by"),
        ({"action": "assign", "assignee": "sam\u202e\x07"}, "assignee"),
        (b"[" * 5000 + b"]" * 5000, "body"),
        (b"{not json", "body"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, body: Any, field: str
) -> None:
    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        response = await _act(client, "manager", body)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["message"].startswith(f"{field}: ")
        assert producer.sent == []

    _run(scenario, monkeypatch)


def test_a_huge_body_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        note = "x" * 200_000
        response = await _act(client, "manager", {"action": "note", "note": note})
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "too_large"
        assert producer.sent == []

    _run(scenario, monkeypatch)


def test_a_huge_body_without_a_length_is_refused_after_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def chunks() -> Any:
        yield b'{"action": "note", "note": "'
        for _ in range(100):  # 1 MiB in all, sent chunked: no Content-Length to refuse up front
            yield b"x" * 10_000
        yield b'"}'

    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        path = f"/v1/flags/{FLAG}/actions"
        response = await client.post(path, data=chunks(), headers=auth("manager"))
        assert response.status == 413
        assert producer.sent == []

    _run(scenario, monkeypatch)


def test_me_says_who_the_token_acts_as(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(client: TestClient[Any, Any], _producer: _Producer) -> None:
        viewer = await (await client.get("/v1/me", headers=auth("viewer"))).json()
        assert viewer == {
            "user": "vic@acme",
            "role": "viewer",
            "tenants": ["acme"],
            "may_act_on_flags": False,
            "may_decide_identity": False,
        }
        admin = await (await client.get("/v1/me", headers=auth("admin"))).json()
        assert admin["tenants"] == ["*"]
        assert admin["user"].startswith("token-")
        assert admin["may_decide_identity"] is True
        assert (await client.get("/v1/me")).status == 401

    _run(scenario, monkeypatch)


def test_events_written_by_people_cannot_come_through_v1_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        forged = {
            "event_id": "forged-1",
            "type": "flag.resolved",
            "occurred_at": "2026-11-04T09:00:00+00:00",
            "tenant": "acme",
            "source": {"system": "journeys", "actor": "the-boss"},
            "customer": {"phone": "+44 7700 900123"},
            "payload": {"flag_id": FLAG, "by": "the-boss", "note": "nothing to see"},
        }
        response = await client.post("/v1/events", json=[forged], headers=auth("admin"))
        result = (await response.json())["results"][0]
        assert result["status"] == "rejected"
        assert result["problems"][0]["field"] == "type"
        assert producer.sent == []

    _run(scenario, monkeypatch)


def test_identity_decisions_need_the_admin_role(monkeypatch: pytest.MonkeyPatch) -> None:
    decision = {
        "decision": "block",
        "identifier": "phone:0113 496 0000",
        "tenant": "acme",
        "reason": "the branch switchboard",
    }

    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        path = "/v1/identity/decisions"
        refused = await client.post(path, json=decision, headers=auth("manager"))
        assert refused.status == 403
        assert "admin role" in (await refused.json())["error"]["message"]
        response = await client.post(path, json=decision, headers=auth("admin"))
        assert response.status == 202
        answer = await response.json()
        (event,) = producer.sent
        assert answer == {
            "event_id": event["event_id"],
            "type": "identity.blocked",
            "tenant": "acme",
        }
        assert event["payload"]["decided_by"] == TOKENS["admin"].who
        assert event["customer"] == {"phone": "0113 496 0000"}
        bad = await client.post(path, json={**decision, "tenant": None}, headers=auth("admin"))
        assert (await bad.json())["error"]["message"].startswith("tenant: ")

    _run(scenario, monkeypatch)


def test_unknown_handling_filter_is_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(client: TestClient[Any, Any], _producer: _Producer) -> None:
        response = await client.get("/v1/flags?handling=everything", headers=auth("viewer"))
        assert response.status == 400
        assert (await response.json())["error"]["message"].startswith("handling: ")
        mine = await client.get("/v1/flags?handling=mine", headers=auth("manager"))
        assert (await mine.json())["flags"] == []

    _run(scenario, monkeypatch)
