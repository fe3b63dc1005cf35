"""The query API on two real workers: auth, tenant isolation, lookups, pagination, ingestion.

Every answer is compared with the pure fold of the same events (`journeys check`), and the two
workers must give the same answers (each forwards what it does not own to the other).
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import orjson
import pytest

from journeys.cli.check import check_lines
from journeys.demo import demo_lines
from journeys.devbroker import find_free_port
from projections.settings import FoldSettings
from projections.view import view_to_dict
from streams.config import KafkaSettings, TopicNames
from streams.directory import Member, sealed_record
from streams.kafka.records import customer_key
from tests.integration.ledger_log import (
    WorkerProcess,
    create,
    kafka_for_test,
    produce,
    sdk_keyed,
    wait_for,
    write_config,
)

ALL = "all-tenants-token-0123456789"
ACME = "acme-only-token-0123456789ab"
PEER_SECRET = "api-test-peer-secret-0123456789abcdef"


@dataclass
class Stack:
    """Two workers with their APIs on the test's topics, fed the demo journeys."""

    kafka: KafkaSettings
    urls: list[str]
    lines: list[bytes]

    def get(
        self, path: str, token: str | None = ALL, url: int = 0, **params: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.urls[url] + path, params=params, headers=headers, timeout=10)

    def expected(self) -> dict[str, dict[str, Any]]:
        report = check_lines(self.lines, FoldSettings(), datetime.now(UTC))
        return {v.customer_id: view_to_dict(v) for v in report.journeys}


@pytest.fixture(scope="module")
def stack(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    kafka = kafka_for_test(bootstrap_servers)
    names = create(kafka)
    tmp = tmp_path_factory.mktemp("api")
    config = write_config(tmp / "journeys.toml", kafka)
    with config.open("a") as handle:
        handle.write(
            "[api]\n"
            f'tokens = [{{token = "{ALL}", tenants = ["*"]}}, '
            f'{{token = "{ACME}", tenants = ["acme-motors"]}}]\n'
            f'peer_secret = "{PEER_SECRET}"\n'
        )
    ports = [find_free_port(), find_free_port()]
    workers = [
        WorkerProcess(config, tmp / f"w{i}", tmp / f"w{i}.log", api_port=port).start()
        for i, port in enumerate(ports)
    ]
    lines = demo_lines()
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(lines)))
    result = Stack(kafka, [f"http://127.0.0.1:{p}" for p in ports], lines)
    expected = result.expected()

    def served() -> bool:
        try:
            flags = result.get("/v1/flags", limit=500).json()["flags"]
            owned = [result.get("/health", url=i).json()["partitions"] for i in range(2)]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        want = sum(len(j["flags"]) for j in expected.values())
        split = all(o["journeys"] for o in owned)  # both workers own some partitions
        # and each knows where the other's partitions are (the members topic has caught up)
        answers = all(
            result.get(f"/v1/journeys/{c}", url=i).status_code == 200
            for c in expected
            for i in (0, 1)
        )
        return len(flags) == want and split and answers

    try:
        wait_for(served, 90, "both workers serving the demo's flags", 1.0)
        yield result
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.log_text()[-3000:]


def strip_moment(journey: dict[str, Any]) -> dict[str, Any]:
    # Which identifier linked each event is compared too: as `journeys check`. `as_of` is the
    # moment of the answer. `merges` is how the ledger came to join the customer, which depends
    # on the order touchpoints reached ingest: keyed by event id, they spread over partitions
    # and arrive in any order, so the live list can hold a merge the pure fold, reading the
    # file in order, never made. It is checked apart (`merges_hold`).
    assert merges_hold(journey), journey["merges"]
    return {k: v for k, v in journey.items() if k not in ("as_of", "merges")}


def merges_hold(journey: dict[str, Any]) -> bool:
    """Every merge a journey lists went through an identifier the journey holds."""
    held = {(i["kind"], i["value"]) for i in journey["identifiers"]}
    return all(
        tuple(merge["identifier"].split(" ", 1)) in held
        for merge in journey["merges"]
        if merge.get("identifier")
    )


def test_every_journey_by_id_equals_the_pure_fold_on_both_workers(stack: Stack) -> None:
    for customer_id, expected in stack.expected().items():
        for url in (0, 1):
            response = stack.get(f"/v1/journeys/{customer_id}", url=url)
            assert response.status_code == 200, response.text
            assert strip_moment(response.json()) == strip_moment(expected)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("phone", "+44 7700 900123"),
        ("phone", "07700900123"),  # written nationally; the tenant has no region: still found
        ("plate", "lm19-xkd"),
        ("email", " Tom.Becker@Example.org "),
        ("order_id", "NW-100482"),
    ],
)
def test_lookup_by_identifier_after_normalisation(stack: Stack, kind: str, value: str) -> None:
    response = stack.get("/v1/journeys", **{kind: value})
    assert response.status_code == 200, response.text
    found = response.json()
    expected = stack.expected()[found["customer_id"]]
    assert strip_moment(found) == strip_moment(expected)
    second = stack.get("/v1/journeys", url=1, **{kind: value})
    assert strip_moment(second.json()) == strip_moment(found)


def test_authentication_is_required_and_checked(stack: Stack) -> None:
    for path in ("/v1/flags", "/v1/journeys/cus_0000000000000000", "/v1/journeys?plate=X"):
        for token in (None, "not-a-valid-token-at-all"):
            response = stack.get(path, token=token)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
    assert stack.get("/health", token=None).status_code == 200


def test_another_tenants_customer_is_indistinguishable_from_a_missing_one(stack: Stack) -> None:
    northwind = next(c for c, j in stack.expected().items() if j["tenant"] == "northwind")
    theirs = stack.get(f"/v1/journeys/{northwind}", token=ACME)
    missing = stack.get("/v1/journeys/cus_0123456789abcdef", token=ACME)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    by_email = stack.get("/v1/journeys", token=ACME, email="tom.becker@example.org")
    assert by_email.status_code == 404
    flags = stack.get("/v1/flags", token=ACME, limit=500).json()["flags"]
    assert flags
    assert {f["tenant"] for f in flags} == {"acme-motors"}
    assert stack.get(f"/v1/journeys/{northwind}").status_code == 200  # the all-tenants token


def test_flags_paginate_newest_first_and_filter(stack: Stack) -> None:
    expected = {
        (j["customer_id"], f["flag_id"]): f["status"]
        for j in stack.expected().values()
        for f in j["flags"]
    }
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = stack.get("/v1/flags", url=len(seen) % 2, **params).json()
        seen.extend(page["flags"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {(f["customer_id"], f["flag_id"]): f["status"] for f in seen} == expected
    assert len(seen) == len(expected)
    opened = [f["opened_at"] for f in seen]
    assert opened == sorted(opened, reverse=True)
    open_only = stack.get("/v1/flags", status="open", limit=500).json()["flags"]
    assert {f["flag_id"] for f in open_only} == {
        f for (_, f), status in expected.items() if status == "open"
    }
    by_rule = stack.get("/v1/flags", rule="DATE_MISMATCH").json()["flags"]
    assert by_rule
    assert {f["rule"] for f in by_rule} == {"DATE_MISMATCH"}
    by_site = stack.get("/v1/flags", site="leeds", limit=500).json()["flags"]
    assert by_site
    assert all("leeds" in f["sites"] for f in by_site)
    assert stack.get("/v1/flags", status="closed").status_code == 400
    assert stack.get("/v1/flags", cursor="garbage").status_code == 400


def test_ingestion_writes_valid_events_and_names_the_problems(stack: Stack) -> None:
    good = {
        "event_id": "api-0001",
        "type": "message.received",
        "occurred_at": "2026-11-06T09:00:00+00:00",
        "tenant": "acme-motors",
        "source": {"system": "customer-inbox", "channel": "email"},
        "customer": {"email": "chloe.martin@example.com"},
        "payload": {"medium": "email", "text": "Any news? Card 4111 1111 1111 1111"},
    }
    bad = {**good, "event_id": "api-0002", "occurred_at": "yesterday"}
    foreign = {**good, "event_id": "api-0003", "tenant": "northwind"}
    response = httpx.post(
        stack.urls[1] + "/v1/events",
        json=[good, bad, foreign],
        headers={"Authorization": f"Bearer {ACME}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    accepted, invalid, refused = body["results"]
    assert accepted["status"] == "accepted"
    assert accepted["offset"] >= 0
    assert invalid["status"] == "rejected"
    assert [p["field"] for p in invalid["problems"]] == ["occurred_at"]
    assert refused["problems"][0]["field"] == "tenant"
    stack.lines.append(orjson.dumps(good))

    def arrived() -> bool:
        journey = stack.get("/v1/journeys", email="chloe.martin@example.com").json()
        return "api-0001" in [e["event_id"] for e in journey.get("events", [])]

    wait_for(arrived, 30, "the ingested event in its journey", 0.5)
    journey = stack.get("/v1/journeys", email="chloe.martin@example.com").json()
    assert "4111 1111 1111 1111" not in orjson.dumps(journey).decode()
    too_many = httpx.post(
        stack.urls[0] + "/v1/events",
        json=[good] * 501,
        headers={"Authorization": f"Bearer {ALL}"},
        timeout=10,
    )
    assert too_many.status_code == 413


def test_health_metrics_and_openapi(stack: Stack) -> None:
    metrics = stack.get("/metrics", token=None).text
    assert 'journeys_records_processed_total{stage="ingest"}' in metrics
    assert "journeys_flags{" in metrics
    # The demo's tenants are each held by one of the workers: their graph figures are there.
    every = "".join(httpx.get(url + "/metrics", timeout=30).text for url in stack.urls)
    assert 'journeys_identity_customers{tenant="acme-motors"}' in every
    assert 'journeys_identity_largest_customer_identifiers{tenant="northwind"}' in every
    document = stack.get("/v1/openapi.json", token=None).json()
    assert "/v1/journeys/{customer_id}" in document["paths"]


def test_cli_queries_ask_the_real_api(stack: Stack) -> None:
    from typer.testing import CliRunner

    from journeys.cli import app

    runner = CliRunner()
    base = ["journey", "plate:LM19 XKD", "--api", stack.urls[1], "--token", ALL]
    shown = runner.invoke(app, [*base, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    found = orjson.loads(shown.stdout)
    assert strip_moment(found) == strip_moment(stack.expected()[found["customer_id"]])
    text = runner.invoke(app, base)
    assert text.exit_code == 0, text.output
    assert "Priya Shah" in text.stdout
    listed = runner.invoke(
        app, ["flags", "--all", "--api", stack.urls[0], "--token", ACME, "--format", "json"]
    )
    assert listed.exit_code == 0, listed.output
    flags = orjson.loads(listed.stdout)["flags"]
    assert flags
    assert {f["tenant"] for f in flags} == {"acme-motors"}
    refused = runner.invoke(app, ["flags", "--api", stack.urls[0], "--token", "x" * 20])
    assert refused.exit_code == 2


def test_followers_skip_bad_records_and_keep_following(stack: Stack) -> None:
    """A record that is not JSON on the flag and members topics, then a good flag: it shows."""
    names = TopicNames(stack.kafka.topic_prefix)
    shown = stack.get("/v1/flags", limit=1).json()["flags"][0]
    flag = {k: v for k, v in shown.items() if k not in ("tenant", "customer_id")}
    flag["flag_id"] = "flg_" + "f" * 16
    change = {
        "change_id": "hardening-test-change",
        "change": "opened",
        "tenant": shown["tenant"],
        "customer_id": shown["customer_id"],
        "flag": flag,
    }
    key = customer_key(shown["tenant"], shown["customer_id"])
    asyncio.run(produce(stack.kafka, names.members, [(b"forged-worker", b"\x1b[2J not json")]))
    asyncio.run(
        produce(
            stack.kafka,
            names.flags,
            [(key, b"\x1b]0;not json\x07"), (key, orjson.dumps(change))],
        )
    )

    def shown_everywhere() -> bool:
        for url in (0, 1):
            flags = stack.get("/v1/flags", url=url, limit=500).json()["flags"]
            if flag["flag_id"] not in {f["flag_id"] for f in flags}:
                return False
        return True

    wait_for(shown_everywhere, 60, "the good flag after the bad record on both workers", 0.5)

    def members_read_past_it() -> bool:
        # The members follower reads its own topic at its own pace: the flag showing says
        # nothing about where it is.
        return all(
            stack.get("/health", url=url).json()["followers"]["members"]["skipped_records"] > 0
            for url in (0, 1)
        )

    wait_for(members_read_past_it, 60, "both members followers past the bad record", 0.5)
    for url in (0, 1):
        followers = stack.get("/health", url=url).json()["followers"]
        assert followers["flags"]["state"] == "running"
        assert followers["flags"]["skipped_records"] == 1
        assert followers["members"]["skipped_records"] == 1
        assert followers["flags"]["restarts"] == 0
        metrics = httpx.get(stack.urls[url] + "/metrics", timeout=10).text
        assert 'journeys_follower_skipped_records_total{follower="flags"} 1.0' in metrics
    # and forwarding still works: every journey answers on both workers
    for customer_id in stack.expected():
        assert stack.get(f"/v1/journeys/{customer_id}", url=1).status_code == 200


def test_a_forged_member_record_gets_no_request_and_no_token(stack: Stack) -> None:
    """An unsealed (or wrongly sealed) members record claiming every partition is ignored."""
    received: list[str] = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(f"{self.path} {dict(self.headers)}")
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"customer_id": "cus_0000000000000000"}')

        def log_message(self, *args: object) -> None:
            del args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", find_free_port()), Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        every = tuple(range(stack.kafka.partitions))
        evil = Member(
            "evil", f"http://127.0.0.1:{server.server_port}", every, every, ("acme-motors",), 4e9
        )
        records = [
            (b"evil", sealed_record(None, evil)),
            (b"evil", sealed_record("a-guessed-secret-0123456789abcdef0123", evil)),
        ]
        before = [
            stack.get("/health", url=i).json()["unauthenticated_member_records"] for i in (0, 1)
        ]
        asyncio.run(produce(stack.kafka, TopicNames(stack.kafka.topic_prefix).members, records))
        wait_for(
            lambda: all(
                stack.get("/health", url=i).json()["unauthenticated_member_records"]
                >= before[i] + 2
                for i in (0, 1)
            ),
            30,
            "both workers reading the forged records",
            0.3,
        )
        for customer_id in stack.expected():
            for url in (0, 1):
                assert stack.get(f"/v1/journeys/{customer_id}", url=url).status_code == 200
        assert received == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _found(stack: Stack, lookup: dict[str, str]) -> bool:
    return stack.get("/v1/journeys", ALL, 0, **lookup).status_code == 200


def test_the_live_journey_says_why_each_event_is_here_and_lists_its_merge(stack: Stack) -> None:
    base = {
        "type": "message.received",
        "tenant": "acme-motors",
        "source": {"system": "customer-inbox", "channel": "email"},
        "payload": {"medium": "email", "text": "Is my car ready?"},
    }
    events = [
        {
            **base,
            "event_id": "why-1",
            "occurred_at": "2026-11-06T09:00:00+00:00",
            "customer": {"email": "ines.silva@example.com"},
        },
        {
            **base,
            "event_id": "why-2",
            "occurred_at": "2026-11-06T09:05:00+00:00",
            "customer": {"phone": "+44 7700 900999"},
        },
        {
            **base,
            "event_id": "why-3",
            "occurred_at": "2026-11-06T09:10:00+00:00",
            "customer": {"email": "Ines.Silva@example.com", "phone": "+44 7700 900999"},
        },
    ]
    # One at a time, each stitched before the next is sent: touchpoints are keyed by event id,
    # so the events of one request may reach ingest in any order (why-3 first would link the
    # others to it, with no merge to list).
    lookups: list[dict[str, str]] = [
        {"email": "ines.silva@example.com"},
        {"phone": "+44 7700 900999"},
        {},
    ]
    for event, lookup in zip(events, lookups, strict=True):
        response = httpx.post(
            stack.urls[0] + "/v1/events",
            json=[event],
            headers={"Authorization": f"Bearer {ACME}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        stack.lines.append(orjson.dumps(event))
        if lookup:
            wait_for(partial(_found, stack, lookup), 30, f"{event['event_id']} stitched", 0.25)

    def merged() -> bool:
        journey = stack.get("/v1/journeys", email="ines.silva@example.com").json()
        return len(journey.get("events", [])) == 3 and bool(journey.get("merges"))

    wait_for(merged, 30, "the three events in one journey, its merge listed", 0.5)
    for url in (0, 1):
        journey = stack.get("/v1/journeys", email="ines.silva@example.com", url=url).json()
        assert strip_moment(journey) == strip_moment(stack.expected()[journey["customer_id"]])
    assert journey["linked_by"] == {"why-3": "email ines.silva@example.com"}
    (merge,) = journey["merges"]
    assert (merge["event_id"], merge["into"]) == ("why-3", journey["customer_id"])
