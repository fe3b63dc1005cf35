"""A customer's identifier keys in real RocksDB: bounded records, O(new keys) writes on growth,
whole rewrites on merge and rename, legacy single-list records adopted, erasure leaving none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from projections.identifiers import NormalisedId, normalise
from projections.identity import IdentityChange, customer_id_for, link
from streams.stages.identity.erasure import forget_customer
from streams.stages.identity.members import (
    CHUNK_BYTES,
    member_count,
    read_members,
    stored_members,
    write_members,
)
from streams.stages.ingest import StateIdentityView
from streams.store import keys
from streams.store.state import BatchState, LocalStore

EMAIL = normalise("email", "sam@example.com")
OTHER = normalise("email", "alex@example.com")
HEAD_BYTES = 128
"""A head holds three numbers, whatever the customer holds."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    opened = LocalStore(tmp_path / "identity")
    yield opened
    opened.close()


def session(n: int, width: int = 60) -> NormalisedId:
    """A session identifier; a customer's id follows its smallest key, so sessions numbered
    after the customer's first one rename nobody."""
    return normalise("anonymous_id", f"sess-{n:06d}-" + "x" * width)


def commit(
    store: LocalStore, ids: list[NormalisedId]
) -> tuple[IdentityChange, dict[bytes, bytes | None]]:
    """Link one event's identifiers in a batch of its own and persist it; the batch's changes."""
    state = BatchState(store, 0)
    view = StateIdentityView(state, "acme")
    change = link(view, "acme", ids)
    view.apply(change)
    changes = dict(state.changes)
    store.write(0, changes)
    return change, changes


def grow(store: LocalStore, first: NormalisedId, count: int, start: int = 0) -> str:
    """A customer holding `first` and `count` sessions, added 100 an event; its id."""
    customer = ""
    for at in range(start, start + count, 100):
        ids = [first, *(session(n) for n in range(at, min(at + 100, start + count)))]
        customer = commit(store, ids)[0].customer_id
    return customer


def members_records(store: LocalStore, customer: str) -> dict[bytes, bytes]:
    """A customer's head and chunk records as stored."""
    head = keys.members_key("acme", customer)
    found = dict(store.items(0, keys.Prefix.MEMBER_CHUNK.value + f"acme/{customer}/".encode()))
    value = store.get(0, head)
    if value is not None:
        found[head] = value
    return found


def members(store: LocalStore, customer: str) -> frozenset[str]:
    return read_members(BatchState(store, 0), "acme", customer)


def test_no_record_grows_with_the_customer(store: LocalStore) -> None:
    customer = grow(store, EMAIL, 3000)

    records = members_records(store, customer)
    head = records.pop(keys.members_key("acme", customer))
    assert len(head) <= HEAD_BYTES
    assert member_count(head) == 3001
    assert len(records) > 20  # 3,000 keys of about 80 bytes: many chunks
    assert all(len(value) <= CHUNK_BYTES for value in records.values())
    expected = {EMAIL.key, *(session(n).key for n in range(3000))}
    assert members(store, customer) == expected
    assert sorted(k for value in records.values() for k in orjson.loads(value)) == sorted(expected)


def test_adding_a_key_writes_its_identifier_the_last_chunk_and_the_head(store: LocalStore) -> None:
    customer = grow(store, EMAIL, 2000)

    change, changes = commit(store, [EMAIL, session(5000)])

    assert change.customer_id == customer
    assert not change.absorbed
    assert len(changes) <= 3
    assert changes[keys.identifier_key("acme", session(5000).key)] == customer.encode()
    assert keys.members_key("acme", customer) in changes
    assert not any(
        key.startswith(keys.Prefix.IDENTIFIER.value)
        and key != keys.identifier_key("acme", session(5000).key)
        for key in changes
    )
    assert members(store, customer) == {EMAIL.key, *(session(n).key for n in (*range(2000), 5000))}


def test_keys_added_one_by_one_past_chunk_ends_cost_three_writes_each(store: LocalStore) -> None:
    customer = grow(store, EMAIL, 500)
    chunks_before = len(members_records(store, customer))

    for n in range(1000, 1120):
        _, changes = commit(store, [EMAIL, session(n)])
        assert len(changes) == 3  # the key's owner, one chunk, the head

    assert len(members_records(store, customer)) > chunks_before  # new chunks were begun
    assert members(store, customer) == {
        EMAIL.key,
        *(session(n).key for n in (*range(500), *range(1000, 1120))),
    }


def test_an_event_adding_nothing_writes_no_member_record(store: LocalStore) -> None:
    customer = grow(store, EMAIL, 300)

    change, changes = commit(store, [EMAIL, session(7)])

    assert change.customer_id == customer
    assert changes == {}


def test_a_merge_rewrites_the_survivor_and_deletes_every_record_of_the_absorbed(
    store: LocalStore,
) -> None:
    first = grow(store, EMAIL, 600)
    second = grow(store, OTHER, 600, start=600)
    assert members_records(store, second)

    change, _ = commit(store, [EMAIL, OTHER])

    survivor = change.customer_id
    (absorbed,) = change.absorbed
    assert {survivor, absorbed} == {first, second}
    assert members_records(store, absorbed) == {}
    assert members(store, survivor) == {
        EMAIL.key,
        OTHER.key,
        *(session(n).key for n in range(1200)),
    }
    for key in (EMAIL.key, OTHER.key, session(0).key, session(1199).key):
        assert store.get(0, keys.identifier_key("acme", key)) == survivor.encode()
    assert all(len(v) <= CHUNK_BYTES for v in members_records(store, survivor).values())


def test_a_key_sorting_first_renames_the_customer_and_moves_its_records(store: LocalStore) -> None:
    before = grow(store, EMAIL, 500)
    first = normalise("anonymous_id", "aaa-first")

    change, _ = commit(store, [EMAIL, first])

    assert change.absorbed == (before,)
    assert change.customer_id != before
    assert members_records(store, before) == {}
    assert members(store, change.customer_id) == {
        EMAIL.key,
        first.key,
        *(session(n).key for n in range(500)),
    }


def test_a_smaller_rewrite_drops_the_chunks_it_no_longer_needs(store: LocalStore) -> None:
    customer = grow(store, EMAIL, 1000)
    state = BatchState(store, 0)

    write_members(state, "acme", customer, [EMAIL.key])
    store.write(0, state.changes)

    assert members(store, customer) == {EMAIL.key}
    assert len(members_records(store, customer)) == 2  # the head and one chunk


def test_a_legacy_single_list_record_reads_and_is_rewritten_as_chunks_on_its_next_change(
    store: LocalStore,
) -> None:
    legacy = [EMAIL.key, *(session(n).key for n in range(400))]
    customer = customer_id_for("acme", frozenset(legacy))
    written = {keys.members_key("acme", customer): orjson.dumps(sorted(legacy))}
    written.update({keys.identifier_key("acme", k): customer.encode() for k in legacy})
    store.write(0, written)  # as versions before chunks stored it
    assert members(store, customer) == frozenset(legacy)
    assert [c for c, _ in stored_members(store, 0, "acme")] == [customer]

    change, _ = commit(store, [EMAIL, session(900)])

    assert change.customer_id == customer
    records = members_records(store, customer)
    head = records.pop(keys.members_key("acme", customer))
    assert not head.startswith(b"[")
    assert member_count(head) == 402
    assert len(records) > 1
    assert all(len(v) <= CHUNK_BYTES for v in records.values())
    assert members(store, customer) == {*legacy, session(900).key}


def test_erasure_deletes_the_head_and_every_chunk(store: LocalStore) -> None:
    customer = grow(store, EMAIL, 1500)
    other = grow(store, OTHER, 10, start=5000)
    state = BatchState(store, 0)

    forget_customer(state, "acme", customer, sealer=None, suppression=None)
    store.write(0, state.changes)

    assert members_records(store, customer) == {}
    assert store.get(0, keys.identifier_key("acme", session(1499).key)) is None
    assert members(store, other) == {OTHER.key, *(session(n).key for n in range(5000, 5010))}
    assert [c for c, _ in stored_members(store, 0, "acme")] == [other]
