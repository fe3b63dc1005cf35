"""Sealed journeys and flags served by a worker that does not hold the tenant's ingest partition:
two in-process API apps over one sealed pipeline's real RocksDB state. The worker serving the
journey partitions asks the one holding the rings over the signed peer call, unwraps them and
opens the journey and the flags' handling notes; wrapped keys never reach a client or a log."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from journeys.server import api, peers
from journeys.settings import TokenEntry
from projections.settings import FoldSettings
from schemas.outputs import FlagChange
from streams import queries
from streams.crypto.fields import ERASED, PREFIX
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.ring import KeyRing
from streams.crypto.ring_cache import RingCache
from streams.crypto.sealing import Sealer
from streams.directory import Directory, Member, sealed_record
from streams.flag_index import FlagIndex
from streams.store import keys
from streams.store.state import LocalStore
from tests.factories import raw
from tests.unit import test_stages as stages
from tests.unit.test_stages import PARTITIONS, Pipeline

MASTER = bytes(range(32))
SECRET = "peer-secret-for-the-ring-tests-0123456789"
ADMIN = "rings-test-token-admin-acme-0001"
OTHER = "rings-test-token-admin-other-001"
VIEWER = "rings-test-token-viewer-acme-001"
NOW = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)
ALL = frozenset(range(PARTITIONS))
EMAIL = "zq7ann@example.org"
NOTE = "zq7 call back after five, on the landline"
REASON = "zq7 sorted on the phone"

TOKENS = (
    TokenEntry(token=ADMIN, tenants=("acme",), role="admin", user="dpo"),
    TokenEntry(token=OTHER, tenants=("other",), role="admin", user="someone"),
    TokenEntry(token=VIEWER, tenants=("acme",), role="viewer", user="vic"),
)


def _lines() -> list[bytes]:
    """A customer told another day than the one booked (a flag opens); a person then notes the
    flag and resolves it: free text sealed like every personal field."""
    first = raw(
        "booking.created",
        {"booking_id": "B1", "slot": "2026-11-10T10:30:00+00:00", "service": "MOT"},
        customer={"email": EMAIL, "name": "Ann Zq7"},
        system="booking",
        event_id="b-1",
        when="2026-11-01T09:00:00+00:00",
    )
    second = raw(
        "message.sent",
        {"medium": "sms", "stated_slot": "2026-11-11T10:30:00+00:00", "text": "zq7 see you"},
        customer={"email": EMAIL},
        system="sms-gateway",
        event_id="b-2",
        when="2026-11-01T10:00:00+00:00",
    )
    return [orjson.dumps(first), orjson.dumps(second)]


def _handling(flag_id: str) -> list[bytes]:
    who = {"system": "journeys", "customer": {"email": EMAIL}}
    noted = raw(
        "flag.noted",
        {"flag_id": flag_id, "by": "r.khan", "note": NOTE},
        event_id="h-1",
        when="2026-11-02T09:00:00+00:00",
        **who,
    )
    resolved = raw(
        "flag.resolved",
        {"flag_id": flag_id, "by": "r.khan", "note": REASON},
        event_id="h-2",
        when="2026-11-02T10:00:00+00:00",
        **who,
    )
    return [orjson.dumps(noted), orjson.dumps(resolved)]


@dataclass
class Sealed:
    """A sealed pipeline's state, the customer and its flags."""

    pipeline: Pipeline
    customer_id: str
    flags: FlagIndex


def _sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sealed:
    # the pipeline's partitioner, so the API reads where the stages wrote
    monkeypatch.setattr(queries, "partition_of", lambda key, _count: stages.partition_of(key))
    pipeline = Pipeline(tmp_path / "state", sealer=Sealer(LocalKeyProvider(MASTER)))
    for line in _lines():
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    (opened,) = [c for c in pipeline.flags if c.change == "opened"]
    for line in _handling(opened.flag.flag_id):
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert not pipeline.dead
    return Sealed(pipeline, opened.customer_id, _index(pipeline.flags))


def _index(changes: list[FlagChange]) -> FlagIndex:
    index = FlagIndex()
    for change in changes:
        index.apply(change)
    return index


def _worker(
    ingest: frozenset[int],
    journeys: frozenset[int],
    identity: Any,
    stored: Any,
    sealer: Sealer | None = None,
) -> Any:
    return SimpleNamespace(
        kafka=SimpleNamespace(partitions=PARTITIONS),
        owned=lambda stage: ingest if stage == "ingest" else journeys,
        tenants=lambda: frozenset({"acme"}),
        identity_store=identity,
        journey_store=stored,
        sealer=sealer or Sealer(LocalKeyProvider(MASTER)),  # each worker unwraps with its own
    )


def _context(
    worker: Any, name: str, flags: FlagIndex, directory: Directory, session: Any, secret: str
) -> api.ApiContext:
    return api.ApiContext(
        worker=worker,
        fold=FoldSettings(),
        flags=flags,
        directory=directory,
        tokens=TOKENS,
        clock=lambda: NOW,
        worker_id=name,
        session=session,
        executor=ThreadPoolExecutor(2),
        peer_secret=secret,
    )


Scenario = Callable[[TestClient[Any, Any], TestClient[Any, Any]], Awaitable[None]]


def _two_workers(
    tmp_path: Path,
    sealed: Sealed,
    scenario: Scenario,
    holder_secret: str = SECRET,
    server_sealer: Sealer | None = None,
) -> None:
    """`holder` holds the ingest partitions (the rings) and no journey; `server` holds every
    journey partition and an empty identity store. The scenario gets (server, holder)."""

    async def main() -> None:
        empty = LocalStore(tmp_path / "empty")
        holder_worker = _worker(ALL, frozenset(), sealed.pipeline.identity, empty)
        server_worker = _worker(frozenset(), ALL, empty, sealed.pipeline.journeys, server_sealer)
        async with aiohttp.ClientSession() as session:
            directory = Directory(SECRET)
            holder = _context(
                holder_worker, "holder", sealed.flags, directory, session, holder_secret
            )
            server = _context(server_worker, "server", sealed.flags, directory, session, SECRET)
            async with (
                TestClient(TestServer(api.create_app(holder))) as holder_client,
                TestClient(TestServer(api.create_app(server))) as server_client,
            ):
                for name, client, ingest, journeys in (
                    ("holder", holder_client, ALL, ()),
                    ("server", server_client, (), ALL),
                ):
                    url = str(client.make_url("")).rstrip("/")
                    member = Member(name, url, tuple(ingest), tuple(journeys), ("acme",), 1.0)
                    directory.apply(name.encode(), sealed_record(SECRET, member))
                await scenario(server_client, holder_client)
        empty.close()

    asyncio.run(main())


async def _get(client: TestClient[Any, Any], path: str, token: str = ADMIN) -> tuple[int, Any]:
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


def test_a_worker_without_the_ring_asks_for_it_and_opens_the_journey(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sealed = _sealed(tmp_path, monkeypatch)
    customer = sealed.customer_id
    answers: dict[str, Any] = {}

    async def scenario(server: TestClient[Any, Any], holder: TestClient[Any, Any]) -> None:
        answers["journey"] = await _get(server, f"/v1/journeys/{customer}?tenant=acme")
        answers["by_email"] = await _get(server, f"/v1/journeys?email={EMAIL}&tenant=acme")
        answers["holder"] = await _get(holder, f"/v1/journeys/{customer}?tenant=acme")
        answers["export"] = await _get(server, f"/v1/customers/{customer}/export?tenant=acme")
        answers["flags"] = await _get(server, "/v1/flags?tenant=acme")
        answers["other"] = await _get(server, f"/v1/journeys/{customer}?tenant=acme", OTHER)
        export = f"/v1/customers/{customer}/export"
        answers["refused"] = [
            await _get(server, f"{export}?tenant=acme", OTHER),  # the token does not cover it
            await _get(server, f"{export}?tenant=other", OTHER),  # not a customer of `other`
            await _get(server, f"{export}?tenant=acme", VIEWER),  # not an admin
            await _get(server, export),  # no tenant
        ]

    with caplog.at_level(logging.DEBUG):
        _two_workers(tmp_path, sealed, scenario)
    status, journey = answers["journey"]
    assert status == 200
    text = orjson.dumps(journey).decode()
    assert PREFIX not in text
    assert EMAIL in text
    assert "Ann Zq7" in text
    assert [e["event_id"] for e in journey["events"]] == ["b-1", "b-2", "h-1", "h-2"]
    # the flags the server works out from the opened events carry the notes in clear
    assert NOTE in text
    assert REASON in text
    # the same answer whichever worker is asked (the holder forwards the journey read)
    assert answers["by_email"] == (200, journey)
    assert answers["holder"] == (200, journey)
    status, export = answers["export"]
    assert status == 200
    assert export == {
        "export_version": 1,
        "tenant": "acme",
        "customer_id": customer,
        "journey": journey,
    }
    status, page = answers["flags"]
    assert status == 200
    (flag,) = page["flags"]
    handling = flag["handling"]
    assert [n["text"] for n in handling["notes"]] == [NOTE, REASON]
    assert [a.get("note") for a in handling["actions"]] == [NOTE, REASON]
    assert REASON in flag["resolution"]
    assert PREFIX not in orjson.dumps(page).decode()
    assert answers["other"][0] == 404  # another tenant's token: not found, no ring read
    assert [status for status, _ in answers["refused"]] == [404, 404, 403, 400]
    assert "wk:v1:" not in caplog.text
    assert PREFIX not in caplog.text
    # (the test server's access log has the request lines; a worker runs without one)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "zq7" not in ours


def test_the_ring_call_answers_only_a_signed_request_with_wrapped_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = _sealed(tmp_path, monkeypatch)
    customer = sealed.customer_id
    partition = stages.partition_of(b"acme")
    stored = sealed.pipeline.identity.get(partition, keys.ring_key("acme", customer))
    assert stored is not None
    data_keys = Sealer(LocalKeyProvider(MASTER)).unwrapped(KeyRing.from_bytes(stored))
    answers: dict[str, Any] = {}

    async def scenario(server: TestClient[Any, Any], holder: TestClient[Any, Any]) -> None:
        path = f"/v1/internal/rings?tenant=acme&customer_id={customer}&customer_id=cus_none"
        answers["token"] = await _get(holder, path)  # a client's token is not a peer
        for scope, name in ((frozenset({"acme"}), "signed"), (frozenset({"other"}), "scoped")):
            headers = peers.sign(SECRET, "GET", path, scope, time.time())
            response = await holder.get(path, headers=headers)
            answers[name] = (response.status, await response.read())
        del server

    _two_workers(tmp_path, sealed, scenario)
    assert answers["token"][0] == 401
    status, body = answers["signed"]
    assert status == 200
    assert orjson.loads(body) == {"rings": {customer: stored.decode()}}  # wrapped keys only
    for key in data_keys.values():
        assert base64.b64encode(key) not in body
        assert key not in body
    assert answers["scoped"][0] == 404  # a scope without the tenant sees nothing


def test_a_ring_that_cannot_be_asked_for_is_a_503_not_an_erased_journey(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = _sealed(tmp_path, monkeypatch)
    customer = sealed.customer_id
    answers: dict[str, Any] = {}

    async def scenario(server: TestClient[Any, Any], holder: TestClient[Any, Any]) -> None:
        del holder
        answers["journey"] = await _get(server, f"/v1/journeys/{customer}?tenant=acme")
        answers["flags"] = await _get(server, "/v1/flags?tenant=acme")

    _two_workers(tmp_path, sealed, scenario, holder_secret="another-secret-0123456789abcdef")
    status, problem = answers["journey"]
    assert status == 503
    assert "peer" in problem["error"]["message"]
    assert "wk:v1:" not in orjson.dumps(problem).decode()
    status, page = answers["flags"]
    assert status == 200  # the list still answers; the notes it cannot open read [sealed]
    handling = page["flags"][0]["handling"]
    assert [n["text"] for n in handling["notes"]] == ["[sealed]", "[sealed]"]
    assert PREFIX not in orjson.dumps(page).decode()


def test_after_erasure_the_forwarded_journey_and_the_notes_read_erased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = _sealed(tmp_path, monkeypatch)
    customer = sealed.customer_id
    erasure = raw(
        "identity.erased",
        {"customer_id": customer, "decided_by": "dpo", "grounds": "DSR-1"},
        customer={"anonymous_id": customer},
        system="journeys",
        event_id="erase-1",
    )
    sealed.pipeline.append("touchpoints", b"acme", orjson.dumps(erasure))
    sealed.pipeline.drain()
    assert not sealed.pipeline.dead
    answers: dict[str, Any] = {}

    async def scenario(server: TestClient[Any, Any], holder: TestClient[Any, Any]) -> None:
        del holder
        answers["journey"] = await _get(server, f"/v1/journeys/{customer}?tenant=acme")
        answers["flags"] = await _get(server, "/v1/flags?tenant=acme")

    _two_workers(tmp_path, sealed, scenario)
    status, journey = answers["journey"]
    assert status == 200
    assert journey["events"][0]["customer"]["email"] == ERASED
    status, page = answers["flags"]
    assert status == 200
    (flag,) = page["flags"]
    assert [n["text"] for n in flag["handling"]["notes"]] == [ERASED, ERASED]
    text = orjson.dumps(page).decode() + orjson.dumps(journey).decode()
    assert "zq7" not in text
    assert PREFIX not in text


def _ring_calls(caplog: pytest.LogCaptureFixture, customer_id: str = "") -> int:
    """The ring calls the holder has answered so far (naming `customer_id`, when given)."""
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    return sum("/v1/internal/rings?" in line and customer_id in line for line in lines)


def _erase(sealed: Sealed) -> None:
    erasure = raw(
        "identity.erased",
        {"customer_id": sealed.customer_id, "decided_by": "dpo", "grounds": "DSR-2"},
        customer={"anonymous_id": sealed.customer_id},
        system="journeys",
        event_id="erase-2",
    )
    sealed.pipeline.append("touchpoints", b"acme", orjson.dumps(erasure))
    sealed.pipeline.drain()
    assert not sealed.pipeline.dead


async def _note_texts(server: TestClient[Any, Any]) -> list[str]:
    status, page = await _get(server, "/v1/flags?tenant=acme")
    assert status == 200
    (flag,) = page["flags"]
    return [n["text"] for n in flag["handling"]["notes"]]


def test_a_ring_asked_of_another_worker_is_kept_for_its_ttl_and_no_longer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sealed = _sealed(tmp_path, monkeypatch)
    path = f"/v1/journeys/{sealed.customer_id}?tenant=acme"
    now = [0.0]
    cache = RingCache(ttl_s=10.0, clock=lambda: now[0])
    seen: dict[str, Any] = {}

    async def scenario(server: TestClient[Any, Any], holder: TestClient[Any, Any]) -> None:
        del holder
        seen["journeys"] = [await _get(server, path) for _ in range(3)]
        seen["notes"] = await _note_texts(server)
        seen["calls"] = [_ring_calls(caplog)]
        now[0] += 10.0  # the ring's time is up: asked again
        seen["journeys"].append(await _get(server, path))
        seen["calls"].append(_ring_calls(caplog))
        _erase(sealed)  # an erasure this worker is not told of (its journey stage is elsewhere)
        seen["kept"] = await _note_texts(server)
        now[0] += 10.0
        seen["erased"] = await _note_texts(server)
        seen["calls"].append(_ring_calls(caplog))

    with caplog.at_level(logging.INFO):
        sealer = Sealer(LocalKeyProvider(MASTER), peer_rings=cache)
        _two_workers(tmp_path, sealed, scenario, server_sealer=sealer)
    first = seen["journeys"][0]
    assert first[0] == 200
    assert EMAIL in orjson.dumps(first[1]).decode()
    assert all(answer == first for answer in seen["journeys"])
    assert seen["notes"] == [NOTE, REASON]
    # three journeys and a page of flags: one ring call; the TTL over, one more
    assert seen["calls"] == [1, 2, 3]
    # the documented bound: a worker not told of the erasure opens the notes until the TTL ends
    assert seen["kept"] == [NOTE, REASON]
    assert seen["erased"] == [ERASED, ERASED]
    assert "wk:v1:" not in repr(cache)
    assert "dk_" not in repr(cache)


def test_the_journey_stage_applying_an_erasure_drops_the_kept_ring_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sealed = _sealed(tmp_path, monkeypatch)
    cache = RingCache(ttl_s=300.0, clock=lambda: 0.0)  # never runs out here
    sealed.pipeline.on_erased = cache.drop  # this worker's journey stage, as `Worker` wires it
    seen: dict[str, Any] = {}

    async def scenario(server: TestClient[Any, Any], holder: TestClient[Any, Any]) -> None:
        del holder
        seen["before"] = await _note_texts(server)
        seen["kept"] = len(cache)
        _erase(sealed)
        seen["dropped"] = len(cache)
        seen["after"] = await _note_texts(server)
        seen["calls"] = _ring_calls(caplog)

    with caplog.at_level(logging.INFO):
        sealer = Sealer(LocalKeyProvider(MASTER), peer_rings=cache)
        _two_workers(tmp_path, sealed, scenario, server_sealer=sealer)
    assert seen["before"] == [NOTE, REASON]
    assert (seen["kept"], seen["dropped"]) == (1, 0)
    assert seen["after"] == [ERASED, ERASED]
    assert seen["calls"] == 2  # asked again after the drop, and told there is no ring


PHONE = "+447700900123"


def test_a_kept_ring_lacking_a_merged_key_is_asked_again_and_a_merged_id_costs_no_ring_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(queries, "partition_of", lambda key, _count: stages.partition_of(key))
    pipeline = Pipeline(tmp_path / "state", sealer=Sealer(LocalKeyProvider(MASTER)))
    by_email = raw("message.received", {"text": "zq7 hello", "medium": "email"})
    by_email["customer"] = {"email": EMAIL}
    by_phone = raw("message.received", {"text": "zq7 ring me", "medium": "sms"})
    by_phone["customer"] = {"phone": PHONE}
    for line in (by_email, by_phone):
        pipeline.append("touchpoints", b"acme", orjson.dumps(line))
    pipeline.drain()
    ids = sorted({c for (_, c) in pipeline.stored()})
    assert len(ids) == 2
    both = raw("booking.created", {"booking_id": "B7", "slot": "2026-11-10T10:30:00+00:00"})
    both["customer"] = {"email": EMAIL, "phone": PHONE}
    sealed = Sealed(pipeline, ids[0], FlagIndex())
    now = [0.0]
    cache = RingCache(ttl_s=300.0, clock=lambda: now[0])
    seen: dict[str, Any] = {}

    async def scenario(server: TestClient[Any, Any], holder: TestClient[Any, Any]) -> None:
        del holder
        for customer_id in ids:  # both rings kept
            assert (await _get(server, f"/v1/journeys/{customer_id}?tenant=acme"))[0] == 200
        seen["kept"] = len(cache)
        pipeline.append("touchpoints", b"acme", orjson.dumps(both))
        pipeline.drain()
        assert not pipeline.dead
        before = {c: _ring_calls(caplog, c) for c in ids}
        seen["answers"] = [await _get(server, f"/v1/journeys/{c}?tenant=acme") for c in ids]
        seen["calls"] = {c: _ring_calls(caplog, c) - before[c] for c in ids}
        now[0] += 300.0  # nothing kept any more: each id asked for as if for the first time
        before = {c: _ring_calls(caplog, c) for c in ids}
        seen["later"] = [await _get(server, f"/v1/journeys/{c}?tenant=acme") for c in ids]
        seen["later_calls"] = {c: _ring_calls(caplog, c) - before[c] for c in ids}

    with caplog.at_level(logging.INFO):
        sealer = Sealer(LocalKeyProvider(MASTER), peer_rings=cache)
        _two_workers(tmp_path, sealed, scenario, server_sealer=sealer)
    assert seen["kept"] == 2
    (first, journey), (second, again) = seen["answers"]
    assert (first, second) == (200, 200)
    assert journey == again  # the merged id followed to the survivor
    survivor = journey["customer_id"]
    (absorbed,) = [c for c in ids if c != survivor]
    text = orjson.dumps(journey).decode()
    assert ERASED not in text  # the kept ring lacked the absorbed customer's key: asked again
    assert PREFIX not in text
    assert EMAIL in text
    assert "zq7 hello" in text
    assert "zq7 ring me" in text
    assert seen["calls"] == {absorbed: 0, survivor: 1}  # once, after the kept ring fell short
    assert seen["later"] == seen["answers"]
    # with no ring kept, the merged id is followed before any ring is read: one read in all
    assert seen["later_calls"] == {absorbed: 0, survivor: 1}
