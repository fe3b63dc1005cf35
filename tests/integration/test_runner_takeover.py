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
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]

from streams.config import KafkaSettings
from streams.kafka.records import InRecord, OutRecord
from streams.stages.runner import Stage, StageRunner
from streams.stages.units import unit_records
from streams.store.keys import CHANGELOG_KEY, INFLIGHT_KEY
from streams.store.state import BatchState, LocalStore
from tests.integration.runner_support import (
    PARTITIONS,
    every_record_once,
    fresh_kafka,
    prepare,
    run_until_all_seen,
)


@pytest.fixture
def kafka(bootstrap_servers: str) -> KafkaSettings:
    # several getmany per partition, so a skipped batch shows
    return fresh_kafka(bootstrap_servers, max_batch_records=5)


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


def test_the_partitions_of_a_take_over_restore_at_once(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    # One after another, each restore's last poll (held for the broker's whole fetch wait) kept
    # the records of every partition after it waiting: 2.5 s at each start with four partitions.
    names = asyncio.run(prepare(kafka))
    flight = {"now": 0, "most": 0}

    def rig(runner: StageRunner) -> None:
        restore = runner.restore

        async def counted(partition: int) -> None:
            flight["now"] += 1
            flight["most"] = max(flight["most"], flight["now"])
            try:
                await restore(partition)
            finally:
                flight["now"] -= 1

        runner.restore = counted  # type: ignore[method-assign]

    seen = asyncio.run(run_until_all_seen(kafka, names, tmp_path / "store", rig))
    every_record_once(seen)
    assert flight["most"] == PARTITIONS


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


def _nothing(_state: BatchState, _records: list[InRecord]) -> list[OutRecord]:
    return []


def test_a_restore_leaves_a_batch_a_crash_cut_short_unapplied(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """The changelog of a batch goes out as several produce requests; a worker killed between
    two leaves its first part on the log. Restored, that part would put the store ahead of its
    offset (the batch then read again over its own half-written effects), so it waits for the
    batch's last record."""
    names = asyncio.run(prepare(kafka))
    first = {b"k/a": b"1", b"__offset__": b"3"}
    cut = {b"k/b": b"2", b"k/c": b"3", b"__offset__": b"6"}

    async def write(
        records: list[tuple[bytes, bytes | None, tuple[tuple[str, bytes], ...]]],
    ) -> None:
        producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
        await producer.start()
        try:
            for key, value, headers in records:
                await producer.send_and_wait(
                    names.identity_changelog, value, key=key, partition=0, headers=list(headers)
                )
        finally:
            await producer.stop()

    async def restored() -> tuple[dict[bytes, bytes | None], int | None]:
        store = LocalStore(tmp_path / "store")
        stage = Stage("probe", names.touchpoints, names.identity_changelog, store, _nothing)
        runner = StageRunner(stage, kafka, None)  # type: ignore[arg-type]
        try:
            await runner.restore(0)
            found = {key: store.get(0, key) for key in [*first, *cut]}
            return found, store.position(0, CHANGELOG_KEY)
        finally:
            await runner.consumer.stop()  # made with the runner, never started
            store.close()

    asyncio.run(write([*unit_records(first, b"3"), *unit_records(cut, b"6")[:-1]]))
    found, position = asyncio.run(restored())
    assert found == {b"k/a": b"1", b"__offset__": b"3", b"k/b": None, b"k/c": None}
    assert position == 2  # after the whole batch: the cut one is read again next time
    asyncio.run(write(unit_records(cut, b"6")[-1:]))  # the rest of it (a batch read again ends so)
    found, position = asyncio.run(restored())
    assert found == {b"k/a": b"1", b"__offset__": b"6", b"k/b": b"2", b"k/c": b"3"}
    assert position == 5


def test_a_partition_taken_over_reads_the_batch_in_flight_with_the_end_its_owner_gave_it(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """The owner notes where a batch ends on the changelog before the batch's outputs go out:
    a worker taking the partition over after a crash (or a freeze) past that point restores
    the note and reads the batch again with the same end, so its outputs repeat with the same
    ids instead of standing beside them."""
    names = asyncio.run(prepare(kafka))
    store = LocalStore(tmp_path / "owner")
    stage = Stage("probe", names.touchpoints, names.identity_changelog, store, _nothing)
    stage.same_cut = True

    async def note_then_restore_elsewhere() -> int | None:
        owner = StageRunner(stage, kafka, None)  # type: ignore[arg-type]
        producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
        await producer.start()
        owner.sender.producer = producer
        try:
            await owner._note_inflight({0: 7})  # then the owner dies: no changelog, no store
        finally:
            await producer.stop()
            await owner.consumer.stop()
        fresh = LocalStore(tmp_path / "taker")
        taker = StageRunner(
            Stage("probe", names.touchpoints, names.identity_changelog, fresh, _nothing),
            kafka,
            None,  # type: ignore[arg-type]
        )
        try:
            await taker.restore(0)
            return fresh.position(0, INFLIGHT_KEY)
        finally:
            await taker.consumer.stop()
            fresh.close()

    assert asyncio.run(note_then_restore_elsewhere()) == 7
    assert store.position(0, INFLIGHT_KEY) == 7  # and the owner's own store, for a restart
    store.close()
