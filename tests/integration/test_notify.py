"""Notifications on a real broker: signed webhooks, retries, dead letters, one delivery per
change across notifiers, and e-mail through a real SMTP server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import httpx
import orjson
import pytest

from journeys.demo import demo_lines
from journeys.devbroker import find_free_port
from schemas.outputs import FlagChange, FlagSnapshot
from streams.config import KafkaSettings
from streams.kafka.records import customer_key
from streams.notify.config import (
    EmailTarget,
    Filter,
    NotifySettings,
    RetryPolicy,
    WebhookTarget,
)
from tests.factories import flag_change
from tests.integration.ledger_log import (
    WorkerProcess,
    converge,
    create,
    kafka_for_test,
    produce,
    pure_fold,
    read_topic,
    read_topic_sync,
    sdk_keyed,
    wait_for,
    write_config,
)
from tests.integration.notify_support import (
    SECRET,
    WebhookReceiver,
    eventually,
    receivers,
    running,
    smtp_server,
)

FAST = RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2, timeout_s=1.0)


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    settings = kafka_for_test(bootstrap_servers, partitions=4)
    create(settings)
    return settings


def opened(customer: str, severity: str = "high", **fields: object) -> FlagChange:
    flag: dict[str, object] = {
        "rule": "DUPLICATE_ORDER",
        "sites": ["leeds"],
        "message": "Two orders for one car",
        **fields,
    }
    return flag_change(
        "opened", "acme-motors", customer, f"flag-{customer}", severity=severity, **flag
    )


async def send(kafka: KafkaSettings, *items: FlagChange | bytes) -> None:
    records = [
        (customer_key(i.tenant, i.customer_id), i.to_bytes())
        if isinstance(i, FlagChange)
        else (b"acme-motors/odd", i)
        for i in items
    ]
    await produce(kafka, kafka.names().flags, records)


def webhooks(*targets: tuple[str, Filter]) -> NotifySettings:
    return NotifySettings(
        webhooks=tuple(WebhookTarget(url, SECRET, wanted) for url, wanted in targets), retry=FAST
    )


def test_a_matching_change_arrives_once_signed_with_its_change_id(kafka: KafkaSettings) -> None:
    high, low = opened("c1"), opened("c2", severity="low")
    resolved = flag_change("resolved", "acme-motors", "c3", "f3", status="resolved")
    unknown_kind = orjson.dumps({**high.to_document(), "change": "handled", "change_id": "h1"})

    async def scenario() -> None:
        with receivers(WebhookReceiver()) as (receiver,):
            settings = webhooks((receiver.url, Filter(min_severity="medium")))
            async with running(kafka, settings) as (notifier, log):
                await send(kafka, high, low, resolved, high, b"not json", unknown_kind)
                await eventually(lambda: len(receiver.delivered()) >= 1, 30, "a delivery")
                await asyncio.sleep(1.0)  # anything else would arrive meanwhile
                got = receiver.delivered()
                assert [r.webhook_id for r in got] == [high.change_id]
                assert got[0].verified
                body = orjson.loads(got[0].body)
                assert body["type"] == "flag.opened"
                assert body["change_id"] == high.change_id
                assert body["flag"] == high.flag.to_document()
                [entry] = log.entries(None, 10)
                assert entry["status"] == "delivered"
                assert entry["receiver"] == receiver.url
                assert entry["id"] == high.change_id
                assert log.delivered["webhook"] == 1
                assert notifier.health.skipped == 1  # the record that is not JSON

    asyncio.run(scenario())


def test_a_receiver_failing_twice_gets_it_on_the_third_try_with_the_same_id(
    kafka: KafkaSettings,
) -> None:
    change = opened("c1")

    async def scenario() -> None:
        flaky = WebhookReceiver(answer=lambda n: 500 if n < 2 else 200)
        with receivers(flaky) as (receiver,):
            async with running(kafka, webhooks((receiver.url, Filter()))) as (_, log):
                await send(kafka, change)
                await eventually(lambda: len(receiver.delivered()) == 1, 30, "the third try")
                assert [r.status for r in receiver.requests] == [500, 500, 200]
                assert {r.webhook_id for r in receiver.requests} == {change.change_id}
                assert all(r.verified for r in receiver.requests)
                [entry] = log.entries(None, 10)
                assert (entry["status"], entry["attempts"]) == ("delivered", 3)
                assert entry["last_error"] == "HTTP 500"
                assert (log.retried["webhook"], log.delivered["webhook"]) == (2, 1)

    asyncio.run(scenario())


def test_receivers_that_keep_failing_are_dead_lettered_and_block_nobody(
    kafka: KafkaSettings,
) -> None:
    change = opened("c1")

    async def scenario() -> None:
        down = WebhookReceiver(answer=lambda _n: 500)
        slow = WebhookReceiver(delay_s=2.0)  # longer than the 1 s timeout
        healthy = WebhookReceiver()
        with receivers(down, slow, healthy):
            settings = webhooks(*((r.url, Filter()) for r in (down, slow, healthy)))
            group = f"{kafka.topic_prefix}.notifier-test"
            started = time.monotonic()
            async with running(kafka, settings, group_id=group) as (_, log):
                await send(kafka, change)
                await eventually(lambda: len(healthy.delivered()) == 1, 30, "the healthy one")
                assert time.monotonic() - started < 20
                await eventually(lambda: log.dead_lettered["webhook"] == 2, 30, "dead letters")
                assert len(down.requests) == 3
            letters = await read_topic(kafka, kafka.names().notification_dead_letters)
            documents = {orjson.loads(r.value or b"")["receiver"]["label"]: r for r in letters}
            assert set(documents) == {down.url, slow.url}
            bad = orjson.loads(documents[down.url].value or b"")
            assert bad["reason"] == "HTTP 500"
            assert bad["attempts"] == 3
            assert bad["change"] == change.to_document()
            assert documents[down.url].key == change.change_id.encode()
            assert documents[down.url].headers["reason"] == b"HTTP 500"
            timed_out = orjson.loads(documents[slow.url].value or b"")
            assert timed_out["reason"].startswith("no answer within")
            # Everything settled was committed: the group's next member sends nothing again.
            before = len(healthy.requests)
            async with running(kafka, settings, group_id=group):
                await asyncio.sleep(4)
            assert len(healthy.requests) == before

    asyncio.run(scenario())


def test_two_notifiers_in_one_group_deliver_each_change_once(kafka: KafkaSettings) -> None:
    changes = [opened(f"customer-{n}") for n in range(24)]

    async def scenario() -> None:
        with receivers(WebhookReceiver()) as (receiver,):
            settings = webhooks((receiver.url, Filter()))
            async with running(kafka, settings) as (one, _), running(kafka, settings) as (two, _):
                await eventually(
                    lambda: (
                        bool(one.assigned and two.assigned)
                        and (one.assigned | two.assigned) == {0, 1, 2, 3}
                    ),
                    60,
                    "both notifiers sharing the partitions",
                )
                await send(kafka, *changes)
                await eventually(
                    lambda: len(receiver.delivered()) >= len(changes), 60, "every delivery"
                )
                await asyncio.sleep(1.5)
            counts = Counter(r.webhook_id for r in receiver.delivered())
            assert counts == {c.change_id: 1 for c in changes}

    asyncio.run(scenario())


def test_email_goes_to_each_sites_recipients_through_a_real_smtp_server(
    kafka: KafkaSettings,
) -> None:
    change = opened("c1", sites=["leeds", "york"], message="Two orders\x1b[2J for one car")

    async def scenario() -> None:
        with smtp_server() as (port, mailbox):
            email = EmailTarget(
                host="127.0.0.1",
                port=port,
                starttls=False,
                sender="ledger@example.com",
                recipients=MappingProxyType(
                    {"leeds": ("leeds@example.com",), "*": ("ops@example.com",)}
                ),
            )
            settings = NotifySettings(email=email, retry=FAST)
            async with running(kafka, settings) as (_, log):
                await send(kafka, change)
                await eventually(lambda: len(mailbox.messages) == 2, 30, "two e-mails")
                assert log.delivered["email"] == 2
            by_site = {m["Subject"]: (to, m) for to, m in mailbox.messages}
            leeds = "[HIGH] DUPLICATE_ORDER at leeds: flag opened (acme-motors)"
            york = "[HIGH] DUPLICATE_ORDER at york: flag opened (acme-motors)"
            assert set(by_site) == {leeds, york}
            assert by_site[leeds][0] == ["leeds@example.com", "ops@example.com"]
            assert by_site[york][0] == ["ops@example.com"]
            text = by_site[leeds][1].get_content()
            assert "Two orders\\x1b[2J for one car" in text
            assert "\x1b" not in text

    asyncio.run(scenario())


def test_a_worker_notifies_every_high_flag_of_the_demo_and_shows_its_deliveries(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    token = "notify-test-token-0123456789"
    lines = demo_lines()
    with receivers(WebhookReceiver()) as (receiver,):
        config = write_config(tmp_path / "journeys.toml", kafka)
        with config.open("a") as handle:
            handle.write(
                f'[api]\ntokens = [{{token = "{token}", tenants = ["*"], role = "admin"}}]\n'
                'advertised_url = "http://ledger.example"\n'
                "[notify]\nfirst_retry_s = 0.1\n"
                f'[[notify.webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
                'min_severity = "high"\n'
            )
        port = find_free_port()
        worker = WorkerProcess(config, tmp_path / "w", tmp_path / "w.log", api_port=port).start()
        try:
            asyncio.run(produce(kafka, kafka.names().touchpoints, sdk_keyed(lines)))
            converge(kafka, lambda: pure_fold(lines, datetime.now(UTC)), 90)
            wanted = set()
            for record in read_topic_sync(kafka, kafka.names().flags):
                change = FlagChange.from_bytes(record.value or b"")
                flag = change.flag
                notified = change.change in ("opened", "reopened")
                if notified and isinstance(flag, FlagSnapshot) and flag.severity == "high":
                    wanted.add(change.change_id)
            assert wanted, "the demo opens high flags"

            def all_arrived() -> bool:
                return {r.webhook_id for r in receiver.delivered()} >= wanted

            wait_for(all_arrived, 60, "a notification for every high flag", 0.5)
            time.sleep(1.0)
            got = receiver.delivered()
            assert sorted(r.webhook_id for r in got) == sorted(wanted)
            assert all(r.verified for r in got)
            assert all(
                orjson.loads(r.body)["journey_url"].startswith("http://ledger.example/ui/journey")
                for r in got
            )
            api = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{api}/v1/notifications/deliveries", timeout=10).status_code == 401
            answer = httpx.get(f"{api}/v1/notifications/deliveries", headers=auth, timeout=10)
            deliveries = answer.json()["deliveries"]
            assert {d["id"] for d in deliveries} == wanted
            assert {d["status"] for d in deliveries} == {"delivered"}
            metrics = httpx.get(f"{api}/metrics", timeout=10).text
            assert f'journeys_notifications_delivered_total{{kind="webhook"}} {len(wanted)}.0' in (
                metrics
            )
        finally:
            assert worker.stop() == 0, worker.log_text()[-3000:]
