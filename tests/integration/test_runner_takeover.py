"""The stage runner reads every record of every partition it is given, whatever fails around a
rebalance: a restore the broker breaks off, a batch the fence drops again and again.

Both were ways for a stage to skip records after a broker crash and restart: aiokafka logs and
swallows an exception raised by the rebalance listener, which left the partitions it had not
restored yet assigned but never processed (their records fetched and dropped, for good); and a
batch dropped twice at the same stored offset made the gap after it look like a hole the broker
confirmed, so the records of the dropped batch were skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]

from streams.config import KafkaSettings
from streams.stages.runner import StageRunner
from tests.integration.runner_support import (
    PARTITIONS,
    every_record_once,
    prepare,
    run_until_all_seen,
)


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        partitions=PARTITIONS,
        max_batch_records=5,  # several getmany per partition, so a skipped batch shows
    )


def test_a_restore_that_fails_during_the_rebalance_does_not_lose_the_partition(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    names = asyncio.run(prepare(kafka))
    failures = {"left": 1}

    def rig(runner: StageRunner) -> None:
        restore = runner.restore

        async def flaky(partition: int) -> None:
            if partition == 1 and failures["left"]:
                failures["left"] -= 1
                raise KafkaConnectionError("the broker went away during the restore")
            await restore(partition)

        runner.restore = flaky  # type: ignore[method-assign]

    seen = asyncio.run(run_until_all_seen(kafka, names, tmp_path / "store", rig))
    every_record_once(seen)
    assert failures["left"] == 0


def test_a_batch_the_fence_drops_is_read_again_not_skipped(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    names = asyncio.run(prepare(kafka))
    # Refusals of partition 0's batches by its stored offset: its first batch once (nothing
    # stored yet), and the batch after offset 5 twice in a row.
    refusals: dict[int | None, int] = {None: 1, 5: 2}

    def rig(runner: StageRunner) -> None:
        still_owner: Callable[[dict[int, int]], Awaitable[bool]] = runner._still_owner

        async def refusing(offsets: dict[int, int]) -> bool:
            stored = runner.stage.store.position(0, b"__offset__")
            if 0 in offsets and refusals.get(stored):
                refusals[stored] -= 1
                return False  # as when the group refuses a commit of an older generation
            return await still_owner(offsets)

        runner._still_owner = refusing  # type: ignore[method-assign]

    seen = asyncio.run(run_until_all_seen(kafka, names, tmp_path / "store", rig))
    every_record_once(seen)
    assert refusals == {None: 0, 5: 0}  # each refusal happened
