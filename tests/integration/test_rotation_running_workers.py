"""`journeys keys rotate` asks the broker whether workers are running (DescribeGroups on the
workers' consumer groups, answered here by the real broker) and refuses while a stage's group
has a member, naming the group and the way out; `--force` rotates anyway, and once the member
has left the rotation runs.

On Tansu a group's first member (generation 0) is never seen to leave: see the scenario and
README "Rotation limits"."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

from journeys.cli.privacy.keys import rotate_command, running_workers
from journeys.settings import Settings
from streams.config import KafkaSettings
from streams.stages.runner import stage_consumer
from tests.integration.test_worker import create_topics

OLD_KEY, NEW_KEY = bytes(range(32)), bytes(range(7, 39))


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:8]}", partitions=2
    )


def _settings(kafka: KafkaSettings) -> Settings:
    return Settings.model_validate(
        {
            "kafka": {
                "bootstrap_servers": kafka.bootstrap_servers,
                "topic_prefix": kafka.topic_prefix,
                "partitions": kafka.partitions,
            },
            "privacy": {
                "master_key": base64.b64encode(OLD_KEY).decode(),
                "new_master_key": base64.b64encode(NEW_KEY).decode(),
                "identity_key": base64.b64encode(OLD_KEY).decode(),  # hashes kept
            },
        }
    )


def test_rotation_is_refused_while_a_worker_stage_is_in_its_group(
    kafka: KafkaSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = asyncio.run(create_topics(kafka))
    settings = _settings(kafka)
    ingest_group = names.stage_group("ingest")

    async def joined() -> AIOKafkaConsumer:
        consumer = stage_consumer("ingest", None, kafka)  # what a worker's ingest joins with
        consumer.subscribe([names.validated])
        await consumer.start()
        for _ in range(300):  # until the group has given it its partitions
            await consumer.getmany(timeout_ms=100)
            if consumer.assignment():
                break
        return consumer

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {"before": await running_workers(kafka)}
        # Tansu numbers a group's first generation 0, and aiokafka sends no LeaveGroup at
        # generation 0 (nor does Tansu expire the member): a worker of an earlier run that
        # the next one replaces, as on a broker that has seen the ledger's workers before.
        await (await joined()).stop()
        consumer = await joined()
        try:
            seen["running"] = await running_workers(kafka)
            seen["refused"] = await asyncio.to_thread(rotate_command, settings, tmp_path, False)
            seen["forced"] = await asyncio.to_thread(
                rotate_command, settings, tmp_path, False, True
            )
        finally:
            await consumer.stop()  # leaves the group (or the broker expires it with its session)
        seen["after"] = await running_workers(kafka)
        return seen

    seen = asyncio.run(scenario())
    assert seen["before"] == {}  # groups the broker never saw have no members
    assert seen["running"] == {ingest_group: 1}
    assert seen["refused"] == 2
    assert seen["forced"] == 0
    assert seen["after"] == {}
    assert rotate_command(settings, tmp_path) == 0
    out = capsys.readouterr()
    assert f"workers are running: consumer groups {ingest_group} (1 members)" in out.err
    assert "--force" in out.err
    assert base64.b64encode(OLD_KEY).decode() not in out.err + out.out
    assert base64.b64encode(NEW_KEY).decode() not in out.err + out.out
