"""The worker's collector: off between collections, which come on a budget of new objects."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.collector import Collector


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_due_on_the_budget_or_the_interval() -> None:
    clock = Clock()
    collector = Collector(budget=100, interval_s=60.0, clock=clock)
    assert not collector.due(99, 59.0)
    assert collector.due(100, 0.0)
    assert collector.due(0, 60.0)


def test_a_cycle_stays_until_a_collection_is_due() -> None:
    clock = Clock()
    collector = Collector(budget=10**9, interval_s=60.0, clock=clock)
    gc.disable()
    node = Node()
    ref = weakref.ref(node)
    del node
    assert collector.tick() is None
    assert ref() is not None  # only a collection frees a cycle
    clock.now = 60.0
    freed = collector.tick()
    assert freed is not None
    assert freed >= 1
    assert ref() is None
    assert collector.collections == 1
    assert collector.last == 60.0  # the interval counts from this collection
    assert collector.tick() is None


def test_new_objects_past_the_budget_make_a_collection_due() -> None:
    collector = Collector(budget=1_000, interval_s=10**9, clock=Clock())
    gc.disable()
    gc.collect()  # the count starts from nothing
    node = Node()
    ref = weakref.ref(node)
    del node
    assert collector.tick() is None
    kept = [[n] for n in range(2_000)]  # tracked objects: counted while the collector is off
    assert collector.tick() is not None
    assert ref() is None
    assert len(kept) == 2_000


def test_what_survives_a_collection_is_walked_again_only_by_the_whole_one() -> None:
    clock = Clock()
    collector = Collector(budget=1_000, interval_s=60.0, clock=clock)
    gc.disable()
    gc.collect()
    node = Node()  # alive at the first collection: frozen with the other survivors
    ref = weakref.ref(node)
    kept = [[n] for n in range(2_000)]
    assert collector.tick() is not None
    assert gc.get_freeze_count() >= len(kept)
    del node
    more = [[n] for n in range(2_000)]
    assert collector.tick() is not None  # the new objects only: the frozen cycle stays
    assert ref() is not None
    clock.now = 60.0
    assert collector.tick() is not None  # the whole collection: everything again
    assert ref() is None
    assert collector.last == 60.0
    assert len(kept) + len(more) == 4_000


def test_run_keeps_the_automatic_collector_off_until_the_last_one_stops() -> None:
    async def main() -> None:
        first, second = asyncio.Event(), asyncio.Event()
        one = asyncio.create_task(Collector().run(first, check_s=0.01))
        two = asyncio.create_task(Collector().run(second, check_s=0.01))
        await asyncio.sleep(0.05)
        assert not gc.isenabled()
        first.set()
        await one
        assert not gc.isenabled()  # a second worker in this process still runs
        second.set()
        await two
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0  # nothing is left out of the process's collections

    asyncio.run(main())
