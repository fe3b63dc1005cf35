"""Catching a stage's local store up with its compacted changelog, a partition at a time.

Tansu reports ends and high waters its own way (on S3 far too low; a partition's end as its last
batch's first offset + 1), so the end is confirmed by the fetch responses, not trusted from a
listing. A batch's records apply whole (`streams.stages.units`): one a crash cut short is never
half applied.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from streams.config import KafkaSettings
from streams.stages.units import Units
from streams.store.keys import CHANGELOG_KEY

if TYPE_CHECKING:
    from streams.stages.runner import Stage

log = logging.getLogger(__name__)

_RESTORE_CHUNK = 5_000
_RESTORE_PATIENCE_S = 10.0


async def restore_changelog(stage: Stage, settings: KafkaSettings, partition: int) -> None:
    """Catch `stage`'s local store up with the partition's changelog, from where it left off."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    tp = TopicPartition(stage.changelog_topic, partition)
    reader = AIOKafkaConsumer(**settings.client_options(), enable_auto_commit=False, group_id=None)
    await reader.start()
    try:
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]
        position = stage.store.position(partition, CHANGELOG_KEY) or 0
        # No shortcut when the reported end is behind the local copy: Tansu on S3 reports
        # ends far too low. The high water of the fetch responses is right there, and an
        # empty poll short of it is no proof of the end (a Tansu-on-S3 fetch answers with
        # nothing when listing the records takes longer than its wait).
        reader.seek(tp, position)
        restored = 0
        units = Units()  # a batch's records apply whole (`streams.stages.units`)
        empty_since: float | None = None
        while True:
            # Tansu reports a partition's end as its last batch's first offset + 1: past
            # that point, read on until a poll comes back empty.
            wait_ms = 200 if position >= end else 1_000
            batch = await reader.getmany(tp, timeout_ms=wait_ms, max_records=_RESTORE_CHUNK)
            messages = batch.get(tp, [])
            if not messages:
                highwater = reader.highwater(tp)
                if highwater is not None and position >= max(end, highwater):
                    break
                if position < end:
                    continue
                now = loop.time()
                if empty_since is None:
                    empty_since = now
                elif now - empty_since >= _RESTORE_PATIENCE_S:
                    log.warning(
                        "%s: changelog partition %d: no records past %d although its high "
                        "water is %s: restored up to there",
                        stage.name,
                        partition,
                        position,
                        highwater,
                    )
                    break
                continue
            empty_since = None
            changes = units.add(
                (m.offset, m.key, m.value, m.headers) for m in messages if m.key != CHANGELOG_KEY
            )
            position = messages[-1].offset + 1
            if units.whole_until is not None:  # the store resumes after a whole batch
                stage.store.write(partition, changes, units.whole_until)
            restored += len(messages)
        if units.unfinished:  # a batch a crash cut short: read again, never half applied
            log.warning("%s: changelog %d: a cut batch left unapplied", stage.name, partition)
        stage.stats.restored += restored
        stage.stats.restore_seconds += loop.time() - started
        log.info(
            "%s: restored partition %d (%d records in %.2fs)",
            stage.name,
            partition,
            restored,
            loop.time() - started,
        )
    finally:
        await reader.stop()
