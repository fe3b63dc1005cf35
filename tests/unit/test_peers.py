"""Workers ask each other with a signature of their own, never a client's token."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from journeys.server import api, peers
from journeys.settings import TokenEntry
from projections.settings import FoldSettings
from streams.directory import Directory, Member, sealed_record
from streams.flag_index import FlagIndex

SECRET = "peer-secret-for-the-tests-0123456789abcdef"
ACME = "acme-only-token-0123456789ab"
NOW = 1_800_000_000.0
PATH = "/v1/internal/journey?tenant=acme-motors&customer_id=cus_0123456789abcdef"


def test_a_signed_request_verifies_with_the_callers_tenants() -> None:
    headers = peers.sign(SECRET, "GET", PATH, frozenset({"acme-motors", "b"}), NOW)
    assert peers.verify(SECRET, "GET", PATH, headers, NOW + 5) == {"acme-motors", "b"}
    every = peers.sign(SECRET, "GET", PATH, None, NOW)
    assert peers.verify(SECRET, "GET", PATH, every, NOW) is None
    assert SECRET not in str(headers)  # the secret itself never travels


@pytest.mark.parametrize(
    "change",
    [
        {"path": PATH.replace("acme-motors", "other")},
        {"method": "POST"},
        {"body": b"x"},
        {"now": NOW + peers.FRESHNESS_S + 1},
        {"now": NOW - peers.FRESHNESS_S - 1},
        {"secret": "another-secret-0123456789abcdef0123"},
        {"secret": None},
        {"headers": {peers.TENANTS: "*"}},  # widening the scope breaks the signature
        {"headers": {peers.TIMESTAMP: str(int(NOW) + 1)}},
        {"headers": {peers.SIGNATURE: ""}},
    ],
)
def test_anything_changed_or_stale_is_refused(change: dict[str, Any]) -> None:
    headers = peers.sign(SECRET, "GET", PATH, frozenset({"acme-motors"}), NOW)
    args: dict[str, Any] = {
        "secret": SECRET,
        "method": "GET",
        "path": PATH,
        "headers": headers,
        "now": NOW,
        "body": b"",
    }
    args.update({k: v for k, v in change.items() if k != "headers"})
    args["headers"] = {**headers, **change.get("headers", {})}
    with pytest.raises(peers.PeerAuthError):
        peers.verify(
            args["secret"], args["method"], args["path"], args["headers"], args["now"], args["body"]
        )


def _context(
    directory: Directory, session: aiohttp.ClientSession, secret: str = SECRET
) -> api.ApiContext:
    worker = SimpleNamespace(
        kafka=SimpleNamespace(partitions=1),
        owned=lambda _stage: frozenset(),  # this worker owns nothing: it must forward
        tenants=lambda: frozenset(),
    )
    return api.ApiContext(
        worker=worker,  # type: ignore[arg-type]
        fold=FoldSettings(),
        flags=FlagIndex(),
        directory=directory,
        tokens=(TokenEntry(token=ACME, tenants=("acme-motors",)),),
        clock=lambda: datetime.now(UTC),
        worker_id="asker",
        session=session,
        executor=ThreadPoolExecutor(1),
        peer_secret=secret,
    )


def _forward(directory_for: Any, secret: str = SECRET) -> tuple[int, list[web.Request]]:
    """Ask the API for a journey it must forward; what the owner's listener received."""
    seen: list[web.Request] = []

    async def owner(request: web.Request) -> web.Response:
        seen.append(request)
        now = time.time()
        try:
            allowed = peers.verify(SECRET, request.method, request.raw_path, request.headers, now)
        except peers.PeerAuthError:
            return web.json_response({"error": {"code": "unauthorized"}}, status=401)
        return web.json_response(
            {"customer_id": "cus_0123456789abcdef", "seen": sorted(allowed or ["*"])}
        )

    async def main() -> int:
        listener = web.Application()
        listener.router.add_get("/v1/internal/journey", owner)
        async with TestServer(listener) as server, aiohttp.ClientSession() as session:
            url = str(server.make_url("")).rstrip("/")
            context = _context(directory_for(url), session, secret)
            async with TestClient(TestServer(api.create_app(context))) as client:
                response = await client.get(
                    "/v1/journeys/cus_0123456789abcdef?tenant=acme-motors",
                    headers={"Authorization": f"Bearer {ACME}"},
                )
                return response.status

    return asyncio.run(main()), seen


def test_a_forward_carries_a_signature_and_the_callers_tenants_not_the_token() -> None:
    def sealed(url: str) -> Directory:
        directory = Directory(SECRET)
        owner = Member("owner", url, (0,), (0,), ("acme-motors",), 1.0)
        directory.apply(b"owner", sealed_record(SECRET, owner))
        return directory

    status, seen = _forward(sealed)
    assert status == 200
    assert len(seen) == 1
    assert "Authorization" not in seen[0].headers
    assert ACME not in str(dict(seen[0].headers))
    assert seen[0].headers[peers.TENANTS] == "acme-motors"


def test_a_peer_refusing_the_signature_is_unavailable_not_unauthorized() -> None:
    other = "a-different-peer-secret-0123456789abcdef"

    def sealed(url: str) -> Directory:
        directory = Directory(other)
        directory.apply(b"owner", sealed_record(other, Member("owner", url, (0,), (0,), (), 1.0)))
        return directory

    status, seen = _forward(sealed, other)
    assert len(seen) == 1
    assert status == 503


def test_a_forged_member_record_gets_nothing() -> None:
    def forged(url: str) -> Directory:
        directory = Directory(SECRET)
        attacker = Member("evil", url, (0,), (0,), ("acme-motors",), 99.0)
        directory.apply(b"evil", sealed_record(None, attacker))
        directory.apply(b"evil", sealed_record("not-the-secret-0123456789abcdef0123", attacker))
        assert directory.unauthenticated == 2
        return directory

    status, seen = _forward(forged)
    assert status == 503  # nobody trusted serves the partition
    assert seen == []


def test_journeys_up_generates_a_peer_secret_unless_one_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from journeys.cli import up
    from journeys.settings import load_settings

    seen: list[str | None] = []

    def worker_command(settings: Any, *args: Any, **kwargs: Any) -> int:
        del args, kwargs
        seen.append(settings.api.peer_secret)
        return 0

    monkeypatch.setattr(up, "worker_command", worker_command)
    configured = load_settings(None, {"JOURNEYS_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    for settings in (
        configured,
        load_settings(
            None, {"JOURNEYS_BOOTSTRAP_SERVERS": "127.0.0.1:1", "JOURNEYS_PEER_SECRET": SECRET}
        ),
    ):
        up.up_command(
            settings, demo=False, host="127.0.0.1", port=0, data_dir=tmp_path, loglevel="warning"
        )
    generated, given = seen
    assert generated is not None
    assert len(generated) >= 32
    assert given == SECRET


def test_a_forwarded_journey_read_carries_the_decisions_the_ingest_owner_holds() -> None:
    """Journey and ingest partitions on another worker: the asker reads the journey, asks for
    the decisions about its identifiers, and reads it again with them (all signed)."""
    seen: list[tuple[str, dict[str, str]]] = []
    reason = "blocked by r.khan on 2024-03-09: the shop's switchboard"

    async def owner(request: web.Request) -> web.Response:
        peers.verify(SECRET, request.method, request.raw_path, request.headers, time.time())
        seen.append((request.path, dict(request.query)))
        if request.path == "/v1/internal/decided":
            assert request.query.getall("value") == ["email:c@x.example", "phone:1134960000"]
            return web.json_response({"decided": {"phone:1134960000": reason}})
        identifiers = [
            {"kind": "email", "value": "c@x.example", "systems": ["shop"]},
            {"kind": "phone", "value": "+441134960000", "systems": ["shop"]},
        ]
        return web.json_response(
            {"customer_id": "cus_0123456789abcdef", "identifiers": identifiers}
        )

    async def main() -> int:
        listener = web.Application()
        listener.router.add_get("/v1/internal/journey", owner)
        listener.router.add_get("/v1/internal/decided", owner)
        async with TestServer(listener) as server, aiohttp.ClientSession() as session:
            url = str(server.make_url("")).rstrip("/")
            directory = Directory(SECRET)
            member = Member("owner", url, (0,), (0,), ("acme-motors",), 1.0)
            directory.apply(b"owner", sealed_record(SECRET, member))
            context = _context(directory, session)
            async with TestClient(TestServer(api.create_app(context))) as client:
                response = await client.get(
                    "/v1/journeys/cus_0123456789abcdef?tenant=acme-motors",
                    headers={"Authorization": f"Bearer {ACME}"},
                )
                return response.status

    assert asyncio.run(main()) == 200
    assert [path for path, _ in seen] == [
        "/v1/internal/journey",
        "/v1/internal/decided",
        "/v1/internal/journey",
    ]
    assert "decided" not in seen[0][1]
    assert orjson.loads(seen[2][1]["decided"]) == {"phone:1134960000": reason}
