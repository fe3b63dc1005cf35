"""The cyclic garbage collector in a worker: on a budget of new objects, not every 50,000.

A worker holds hot journeys, their evaluations and each batch's reads for minutes, and makes
almost no cyclic garbage: refcounting frees what it drops. CPython's generational collector
walks every object that survives 50,000 allocations, and again in its middle generation, to
find nearly nothing. Measured in the one-worker bench phase (60,000 events): the collections
took 3.9-4.2 s of a 27-30 s run and freed 530 objects; with the collector off the run used 15%
less CPU per event at the same peak RSS, and full collections every 8 s freed 792, 0 and 0
objects.

So the automatic collector is off while a worker runs, and `Collector` collects once the
tracked objects grew by `budget` since the last collection (CPython counts them even while it
does not collect: `gc.get_count()`). The budget bounds the cyclic garbage a worker can hold,
whatever makes it.

Each collection then freezes what survived it (`gc.freeze`): the next one walks only the
objects made since, not the caches again. A collection walking everything held cost what the
process holds: 0.7 and 1.7 s pauses in a 27 s one-worker bench run while the caches filled.
Frozen objects are still freed by refcounting; only a cycle among them waits, for the whole
collection that unfreezes everything at least every `interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

BUDGET = 1_000_000
"""Tracked objects the process may gain between two collections."""

INTERVAL_S = 600.0
"""The longest time between two collections."""

CHECK_S = 1.0
"""How often the budget is looked at."""

_holders = 0
"""Collectors running in this process: the automatic collector is back once none is."""


class Collector:
    """Collect the objects made since the last collection when they number `budget`, and
    everything at least every `interval_s`; freeze what survives."""

    def __init__(
        self,
        budget: int = BUDGET,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self.interval_s = interval_s
        self.clock = clock
        self.last = clock()
        """When the last whole collection ran (or the collector was made)."""
        self.collections = 0

    def due(self, grown: int, now: float) -> bool:
        """Whether a collection is due, `grown` tracked objects after the last one."""
        return grown >= self.budget or self.whole_due(now)

    def whole_due(self, now: float) -> bool:
        """Whether the collection due walks everything, the frozen objects too."""
        return now - self.last >= self.interval_s

    def tick(self) -> int | None:
        """Collect if due, then freeze what survived: the objects freed, or None."""
        now = self.clock()
        if not self.due(gc.get_count()[0], now):
            return None
        whole = self.whole_due(now)
        began = time.perf_counter()
        if whole:
            gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        took = time.perf_counter() - began
        if whole:
            self.last = self.clock()
        self.collections += 1
        log.debug("collected %d objects in %.3f s (whole: %s)", freed, took, whole)
        return freed

    async def run(self, stop: asyncio.Event, check_s: float = CHECK_S) -> None:
        """Keep the automatic collector off and tick every `check_s` until `stop` is set."""
        global _holders
        _holders += 1
        gc.disable()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_s)
                if not stop.is_set():  # no pause on the way out: the process collects as usual
                    self.tick()
        finally:
            _holders -= 1
            if _holders == 0:
                gc.unfreeze()  # the process collects everything as usual again
                gc.enable()
