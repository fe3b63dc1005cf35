"""The cache of rings read from other workers: bounded, least recently used out first, each
ring for its TTL only, dropped at once by an erasure, never showing a key."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.privacy_settings import PrivacySection
from journeys.server.privacy.rings import DataKeys
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.ring import KeyRing
from streams.crypto.ring_cache import RING_CACHE_SIZE, RING_CACHE_TTL_S, RingCache
from streams.crypto.sealing import Sealer
from streams.store import keys
from streams.store.state import BatchState, LocalStore

MASTER = LocalKeyProvider(bytes(range(32)))


_RINGS: dict[int, KeyRing] = {}


def _ring(seed: int) -> KeyRing:
    """One ring per seed (wrapping draws a random nonce, so each is made once)."""
    if seed not in _RINGS:
        _RINGS[seed] = KeyRing.new(MASTER, random.Random(seed).randbytes)[0]
    return _RINGS[seed]


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_ring_is_kept_for_its_ttl_and_no_longer() -> None:
    clock = Clock()
    cache = RingCache(size=10, ttl_s=5.0, clock=clock)
    ring = _ring(1)
    assert cache.get("acme", "cus_1") is None
    cache.put("acme", "cus_1", ring, cache.epoch)
    clock.now += 4.9
    assert cache.get("acme", "cus_1") == ring
    assert cache.get("other", "cus_1") is None  # tenants never share a ring
    clock.now += 0.1
    assert cache.get("acme", "cus_1") is None
    assert len(cache) == 0  # an expired ring is let go when met


def test_the_least_recently_used_ring_goes_first_past_the_size() -> None:
    cache = RingCache(size=2, ttl_s=60.0, clock=Clock())
    for n in (1, 2):
        cache.put("acme", f"cus_{n}", _ring(n), cache.epoch)
    assert cache.get("acme", "cus_1") is not None  # cus_2 is now the least recently used
    cache.put("acme", "cus_3", _ring(3), cache.epoch)
    assert len(cache) == 2
    assert cache.get("acme", "cus_2") is None
    assert cache.get("acme", "cus_1") == _ring(1)
    assert cache.get("acme", "cus_3") == _ring(3)


def test_a_drop_wins_over_an_answer_asked_for_before_it() -> None:
    cache = RingCache(size=10, ttl_s=60.0, clock=Clock())
    cache.put("acme", "cus_1", _ring(1), cache.epoch)
    asked_at = cache.epoch  # a ring call starts
    cache.drop("acme", "cus_1")  # the customer is erased meanwhile
    assert cache.get("acme", "cus_1") is None
    cache.put("acme", "cus_1", _ring(1), asked_at)  # the answer predates the erasure
    assert cache.get("acme", "cus_1") is None
    cache.put("acme", "cus_1", _ring(1), cache.epoch)  # asked after it: kept
    assert cache.get("acme", "cus_1") == _ring(1)


def test_a_size_or_ttl_of_zero_keeps_nothing() -> None:
    for cache in (RingCache(size=0, ttl_s=60.0), RingCache(size=10, ttl_s=0.0)):
        cache.put("acme", "cus_1", _ring(1), cache.epoch)
        assert cache.get("acme", "cus_1") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=80))
def test_the_cache_never_holds_more_than_its_size(steps: list[tuple[int, bool]]) -> None:
    cache = RingCache(size=8, ttl_s=60.0, clock=Clock())
    for n, drop in steps:
        if drop:
            cache.drop("acme", f"cus_{n}")
            assert cache.get("acme", f"cus_{n}") is None
        else:
            cache.put("acme", f"cus_{n}", _ring(n), cache.epoch)
            assert cache.get("acme", f"cus_{n}") == _ring(n)  # the newest is always there
        assert len(cache) <= 8


def test_no_key_shows_in_the_reprs() -> None:
    cache = RingCache()
    ring = _ring(1)
    cache.put("acme", "cus_1", ring, cache.epoch)
    data_keys = DataKeys(ring.unwrap(MASTER), cached=True)
    for text in (repr(cache), repr(data_keys), repr(Sealer(MASTER, peer_rings=cache))):
        assert "wk:v1:" not in text
        assert ring.current not in text
        for key in ring.unwrap(MASTER).values():
            assert key.hex() not in text
            assert repr(key) not in text


def test_data_keys_note_an_id_they_lack_and_are_stale_only_when_kept() -> None:
    ring = _ring(1)
    for cached in (True, False):
        data_keys = DataKeys(ring.unwrap(MASTER), cached=cached)
        assert data_keys.get(ring.current) is not None
        assert ring.current in data_keys
        assert not data_keys.stale
        assert data_keys.get("dk_0000000000000000") is None
        assert data_keys.stale == cached
    assert "dk_0000000000000000" not in DataKeys({}, cached=True)


def test_erasing_at_this_worker_drops_its_kept_ring(tmp_path: Path) -> None:
    cache = RingCache()
    sealer = Sealer(MASTER, peer_rings=cache)
    store = LocalStore(tmp_path / "identity")
    try:
        state = BatchState(store, 0)
        ring = sealer.ring_for(state, "acme", "cus_1")
        cache.put("acme", "cus_1", ring, cache.epoch)  # kept while another worker held it
        cache.put("acme", "cus_2", _ring(2), cache.epoch)
        assert sealer.destroy(state, "acme", "cus_1") == ring.key_ids
        assert state.get(keys.ring_key("acme", "cus_1")) is None
        assert cache.get("acme", "cus_1") is None
        assert cache.get("acme", "cus_2") == _ring(2)  # nobody else's
    finally:
        store.close()


def test_the_settings_size_the_cache_with_sensible_defaults() -> None:
    default = PrivacySection().ring_cache()
    assert (default.size, default.ttl_s) == (RING_CACHE_SIZE, RING_CACHE_TTL_S)
    assert 0 < RING_CACHE_TTL_S <= 60  # short: the bound on an erasure this worker missed
    chosen = PrivacySection(ring_cache_size=5, ring_cache_seconds=2.5).ring_cache()
    assert (chosen.size, chosen.ttl_s) == (5, 2.5)
