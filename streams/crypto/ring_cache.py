"""Key rings read from another worker, kept a short while so that serving does not ask each time.

A worker serving journeys of a tenant whose ingest partition another worker holds asks that
worker for each customer's ring (`journeys.server.privacy.rings`). Rings change rarely (a merge
adds keys, erasure deletes the ring), so the asking worker keeps the rings it was given: at
most `size` of them, least recently used first out, each for `ttl_s` seconds.

Erasure wins. A cached ring outlives its erasure by at most `ttl_s`; the worker that erases (its
ingest), that is told to (its API) or that applies the erasure to the journey (its journey
stage) drops the ring at once (`drop`), and a ring asked for before a drop and answered after it
is not kept (`epoch`). Only rings are kept, never "no ring": a customer sealed for the first
time since is asked again at once. The cache holds wrapped keys only (the master key unwraps
them), and its repr names none.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from streams.crypto.ring import KeyRing

RING_CACHE_SIZE = 10_000
"""Rings kept at most (a ring of one key is about 150 bytes)."""

RING_CACHE_TTL_S = 10.0
"""Seconds a ring read from another worker is used before it is asked for again: how long a
worker that did not take part in an erasure may still open the erased customer's fields."""


class RingCache:
    """Customers' rings read from other workers, by tenant and customer id (bounded, LRU, TTL)."""

    def __init__(
        self,
        size: int = RING_CACHE_SIZE,
        ttl_s: float = RING_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        self._rings: OrderedDict[tuple[str, str], tuple[float, KeyRing]] = OrderedDict()
        self._epoch = 0
        self._lock = threading.Lock()  # the stages and the API may run on different threads

    def __repr__(self) -> str:
        return f"RingCache({len(self._rings)} of {self.size}, ttl {self.ttl_s:g} s)"

    def __len__(self) -> int:
        return len(self._rings)

    @property
    def epoch(self) -> int:
        """Moves on at every drop: read it before asking for rings, give it to `put` after."""
        return self._epoch

    def get(self, tenant: str, customer_id: str) -> KeyRing | None:
        """The customer's ring if one was kept less than `ttl_s` ago, else None."""
        key = (tenant, customer_id)
        with self._lock:
            found = self._rings.get(key)
            if found is None:
                return None
            kept_at, ring = found
            if self.clock() - kept_at >= self.ttl_s:
                del self._rings[key]
                return None
            self._rings.move_to_end(key)
            return ring

    def put(self, tenant: str, customer_id: str, ring: KeyRing, epoch: int) -> None:
        """Keep a ring asked for when the cache's epoch was `epoch` (not kept if a ring was
        dropped since: the answer may predate an erasure)."""
        key = (tenant, customer_id)
        with self._lock:
            if epoch != self._epoch or self.size <= 0 or self.ttl_s <= 0:
                return
            self._rings[key] = (self.clock(), ring)
            self._rings.move_to_end(key)
            while len(self._rings) > self.size:
                self._rings.popitem(last=False)

    def drop(self, tenant: str, customer_id: str) -> None:
        """Forget a customer's ring now (erased, or found to lack a key its events name)."""
        with self._lock:
            self._epoch += 1
            self._rings.pop((tenant, customer_id), None)
