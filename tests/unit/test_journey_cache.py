"""The journey stage's cache keeps each customer's rules evaluated from its first batch on."""

from __future__ import annotations

from pathlib import Path

import orjson

from journeys.demo import demo_lines
from projections.evaluation import Evaluation
from projections.journey import Journey
from projections.settings import FoldSettings
from streams.stages.journey.memory import JourneyCache
from tests.unit.test_stages import PARTITIONS, Pipeline


def test_an_evaluation_kept_for_a_journey_not_yet_hot_keeps_the_journey_too() -> None:
    cache, rules = JourneyCache(), FoldSettings().rules
    journey = Journey("t1", "cus_1")
    evaluation = Evaluation(rules)
    cache.keep(0, journey, evaluation)
    assert cache.get(0, ("t1", "cus_1")) is journey
    assert cache.evaluation(0, ("t1", "cus_1"), rules, None) is evaluation


def test_the_cache_evicts_an_evaluation_with_its_journey() -> None:
    cache, rules = JourneyCache(capacity=1), FoldSettings().rules
    first = Evaluation(rules)
    cache.keep(0, Journey("t1", "cus_1"), first)
    cache.keep(0, Journey("t1", "cus_2"), Evaluation(rules))
    assert cache.get(0, ("t1", "cus_1")) is None
    assert cache.evaluation(0, ("t1", "cus_1"), rules, None) is not first


def test_every_hot_journey_has_its_evaluation_synced_after_its_first_batch(tmp_path: Path) -> None:
    """A customer judged once has its walks kept: its next batch steps only its new events
    (kept only for journeys already hot, a customer's second batch walked it all again)."""
    pipeline = Pipeline(tmp_path, batch_size=3)
    for line in demo_lines():
        pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
    pipeline.drain()
    rules = pipeline.settings.rules
    hot = [
        (partition, (journey.tenant, journey.customer_id), journey)
        for partition in range(PARTITIONS)
        for journey in pipeline.stored_journeys(partition)
    ]
    assert hot
    for partition, ref, journey in hot:
        cached = pipeline.cache.get(partition, ref)
        assert cached is not None
        evaluation = pipeline.cache.evaluation(partition, ref, rules, None)
        assert list(evaluation.events) == list(cached.events) == list(journey.events)
