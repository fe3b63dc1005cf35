"""A customer's identifier keys in the state, bounded: a small head record and chunk records.

The head (`keys.members_key`) holds the number of chunks, the number of keys and a digest of
the set (``{"n": chunks, "c": count, "d": digest}``); each chunk (`keys.member_chunk_key`)
holds at most `CHUNK_BYTES` of keys (a JSON array), so no record grows with the customer
however many identifiers it collects. Adding keys to a customer appends them to its last chunk
(a new one when it is full) and rewrites the head: O(new keys) records. A merge, rename or
split rewrites the customer's chunks whole (rare). The digest, a sum of the keys' hashes kept
as keys are added, makes the head name its set, so a batch's parsed sets are found by the head
alone. A head written before chunks existed is the whole set (a JSON array): it reads as it is
and is rewritten as chunks on the customer's next change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, MutableMapping

import orjson

from streams.store import keys
from streams.store.state import BatchState, LocalStore

CHUNK_BYTES = 4000
"""The most bytes of keys a chunk record holds (a key longer than that has a chunk of its own);
under `BatchState`'s read cache bound, so a batch reads each chunk once."""

_DIGEST_MOD = 1 << 64

Parsed = MutableMapping[bytes, frozenset[str]]
"""Key sets already read in a batch, by their head's bytes (a legacy head: the set's bytes)."""


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _digest(members: Iterable[str]) -> int:
    return sum(map(_hash, members)) % _DIGEST_MOD


def _is_legacy(head: bytes) -> bool:
    return head.startswith(b"[")


def _head(head: bytes) -> tuple[int, int, int]:
    """(chunks, count, digest) of a chunked head."""
    found = orjson.loads(head)
    return int(found["n"]), int(found["c"]), int(found["d"])


def _encode_head(chunks: int, count: int, digest: int) -> bytes:
    return orjson.dumps({"n": chunks, "c": count, "d": digest})


def member_count(head: bytes) -> int:
    """How many keys the customer whose head (or legacy list) this is holds."""
    return len(orjson.loads(head)) if _is_legacy(head) else _head(head)[1]


def read_members(
    state: BatchState, tenant: str, customer: str, parsed: Parsed | None = None
) -> frozenset[str]:
    """The identifier keys a customer holds (none when it has no record)."""
    head = state.get(keys.members_key(tenant, customer))
    if head is None:
        return frozenset()
    found = None if parsed is None else parsed.get(head)
    if found is not None:
        return found
    if _is_legacy(head):
        found = frozenset(orjson.loads(head))
    else:
        chunks = _head(head)[0]
        found = frozenset(
            key
            for n in range(chunks)
            for key in orjson.loads(state.get(keys.member_chunk_key(tenant, customer, n)) or b"[]")
        )
    if parsed is not None:
        parsed[head] = found
    return found


def _chunked(members: Iterable[str], last: list[str] | None = None) -> list[list[str]]:
    """The keys cut into chunks of at most `CHUNK_BYTES`, filling `last` (a chunk) first."""
    chunks: list[list[str]] = [last if last is not None else []]
    size = len(orjson.dumps(chunks[0]))
    for key in members:
        grown = len(orjson.dumps(key)) + 1
        if chunks[-1] and size + grown > CHUNK_BYTES:
            chunks.append([])
            size = 2
        chunks[-1].append(key)
        size += grown
    return chunks if chunks[-1] else chunks[:-1]


def _chunk_count(state: BatchState, tenant: str, customer: str) -> int:
    head = state.get(keys.members_key(tenant, customer))
    return 0 if head is None or _is_legacy(head) else _head(head)[0]


def write_members(state: BatchState, tenant: str, customer: str, members: Collection[str]) -> bytes:
    """Write a customer's whole key set (a merge, rename, split or a legacy record's first
    change), dropping chunks it no longer needs; returns the head written."""
    before = _chunk_count(state, tenant, customer)
    chunks = _chunked(sorted(members))
    for n, chunk in enumerate(chunks):
        state.put(keys.member_chunk_key(tenant, customer, n), orjson.dumps(chunk))
    for n in range(len(chunks), before):
        state.delete(keys.member_chunk_key(tenant, customer, n))
    head = _encode_head(len(chunks), len(members), _digest(members))
    state.put(keys.members_key(tenant, customer), head)
    return head


def add_members(
    state: BatchState, tenant: str, customer: str, held: Collection[str], added: Collection[str]
) -> bytes:
    """Add keys the customer (holding `held`) does not hold yet: they go in its last chunk
    (new ones past it when full) and the head is rewritten; returns the head written."""
    head = state.get(keys.members_key(tenant, customer))
    if head is None or _is_legacy(head):
        return write_members(state, tenant, customer, [*held, *added])
    chunks, count, digest = _head(head)
    last_key = keys.member_chunk_key(tenant, customer, chunks - 1) if chunks else None
    last: list[str] | None = None
    if last_key is not None:
        last = orjson.loads(state.get(last_key) or b"[]")
    start = chunks - 1 if last is not None else chunks
    full = None if last is None else len(last)
    grown = _chunked(sorted(added), last)
    for n, chunk in enumerate(grown, start):
        if n == start and len(chunk) == full:
            continue  # the last chunk was full: the keys went to new ones
        state.put(keys.member_chunk_key(tenant, customer, n), orjson.dumps(chunk))
    head = _encode_head(
        start + len(grown), count + len(added), (digest + _digest(added)) % _DIGEST_MOD
    )
    state.put(keys.members_key(tenant, customer), head)
    return head


def delete_members(state: BatchState, tenant: str, customer: str) -> None:
    """Delete a customer's head and every chunk of it."""
    for n in range(_chunk_count(state, tenant, customer)):
        state.delete(keys.member_chunk_key(tenant, customer, n))
    state.delete(keys.members_key(tenant, customer))


def stored_members(
    store: LocalStore, partition: int, tenant: str
) -> Iterator[tuple[str, frozenset[str]]]:
    """Every customer of a tenant in one partition's store with its keys, by customer id."""
    state, prefix = BatchState(store, partition), keys.members_prefix(tenant)
    for key, _ in store.items(partition, prefix):
        customer = key[len(prefix) :].decode()
        yield customer, read_members(state, tenant, customer)
