"""`POST /v1/customers/{id}/erasure` over a stub worker: admin only, and the event it writes
passes the door and names the customer by the ledger's id only."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from schemas.codec import decode_event
from tests.unit.test_flag_actions import TOKENS, _Producer, _run, auth

PATH = "/v1/customers/cus_00000000000000aa/erasure"


def test_an_admin_erases_and_the_event_holds_no_identifier(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"tenant": "acme", "grounds": "DSR-2026-11"}

    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        refused = await client.post(PATH, json=body, headers=auth("manager"))
        assert refused.status == 403
        assert "admin role" in (await refused.json())["error"]["message"]
        assert not producer.sent
        response = await client.post(PATH, json=body, headers=auth("admin"))
        assert response.status == 202
        (document,) = producer.sent
        answer = await response.json()
        assert answer == {
            "event_id": document["event_id"],
            "tenant": "acme",
            "customer_id": "cus_00000000000000aa",
        }
        event = decode_event(orjson.dumps(document))
        assert event.type == "identity.erased"
        assert event.customer.model_dump(exclude_none=True) == {
            "anonymous_id": "cus_00000000000000aa"
        }
        assert event.payload.model_dump() == {
            "customer_id": "cus_00000000000000aa",
            "decided_by": TOKENS["admin"].who,
            "grounds": "DSR-2026-11",
        }

    _run(scenario, monkeypatch)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"grounds": "DSR-1"}, "tenant: "), ({"tenant": "acme"}, "grounds: "), ([], "tenant: ")],
)
def test_a_bad_erasure_body_is_a_400_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, body: Any, field: str
) -> None:
    async def scenario(client: TestClient[Any, Any], producer: _Producer) -> None:
        response = await client.post(PATH, json=body, headers=auth("admin"))
        assert response.status == 400
        assert (await response.json())["error"]["message"].startswith(field)
        assert not producer.sent

    _run(scenario, monkeypatch)
