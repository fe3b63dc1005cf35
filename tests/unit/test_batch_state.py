"""A batch's state on real RocksDB: a block's writes undone when it raises, and only its own;
writes that leave a key as the store holds it are not persisted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from streams.store.state import BatchState, LocalStore


class Boom(Exception):
    """Raised inside a block to undo it."""


def raising(state: BatchState, block: Callable[[], None]) -> None:
    """Run `block` inside `all_or_nothing`, then raise."""
    with state.all_or_nothing():
        block()
        raise Boom


def undone(state: BatchState, block: Callable[[], None]) -> None:
    """Run `block` in a block that raises, and see the exception go on."""
    with pytest.raises(Boom):
        raising(state, block)


def batch(tmp_path: Path) -> BatchState:
    store = LocalStore(tmp_path / "state")
    state = BatchState(store, 1)
    state.put(b"h/acme/cus_1/a", b"stored")
    store.write(1, state.changes)
    state = BatchState(store, 1)
    state.put(b"h/acme/cus_1/b", b"before the block")
    return state


def test_a_block_that_raises_leaves_the_batch_as_it_was_before_it(tmp_path: Path) -> None:
    state = batch(tmp_path)
    before = dict(state.changes)

    def block() -> None:
        state.put(b"h/acme/cus_1/b", b"overwritten")
        state.delete(b"h/acme/cus_1/a")
        state.put(b"h/acme/cus_2/new", b"written")

    undone(state, block)
    assert state.changes == before
    assert state.get(b"h/acme/cus_1/a") == b"stored"
    # a key only the block wrote is gone from the batch's index too
    assert not state.any_under(b"h/acme/cus_2/")
    assert state.items(b"h/acme/cus_2/") == []
    assert state.items(b"h/acme/cus_1/") == [
        (b"h/acme/cus_1/a", b"stored"),
        (b"h/acme/cus_1/b", b"before the block"),
    ]


def test_a_block_that_ends_keeps_its_writes(tmp_path: Path) -> None:
    state = batch(tmp_path)
    with state.all_or_nothing():
        state.put(b"h/acme/cus_2/new", b"written")
    assert state.get(b"h/acme/cus_2/new") == b"written"
    assert state.any_under(b"h/acme/cus_2/")


def test_an_outer_block_undoes_what_an_inner_one_kept(tmp_path: Path) -> None:
    state = batch(tmp_path)
    before = dict(state.changes)

    def inner() -> None:
        state.put(b"h/acme/cus_4/y", b"undone at once")

    def outer() -> None:
        state.put(b"h/acme/cus_1/b", b"outer")
        with state.all_or_nothing():
            state.put(b"h/acme/cus_1/b", b"inner")
            state.put(b"h/acme/cus_3/x", b"inner only")
        undone(state, inner)
        assert state.get(b"h/acme/cus_4/y") is None
        assert state.get(b"h/acme/cus_1/b") == b"inner"

    undone(state, outer)
    assert state.changes == before


def producing_undone(state: BatchState, out: list[str], block: Callable[[list[str]], None]) -> None:
    """Run `block` (given the list for its outputs) in a block sending to `out` that raises."""

    def run() -> None:
        with state.all_or_nothing(out) as produced:
            block(produced)
            raise Boom

    with pytest.raises(Boom):
        run()


def test_a_block_that_raises_sends_none_of_its_outputs(tmp_path: Path) -> None:
    state = batch(tmp_path)
    out = ["sent before the block"]
    before = dict(state.changes)

    def block(produced: list[str]) -> None:
        state.put(b"h/acme/cus_2/new", b"written")
        produced.append("flag opened for a state undone")

    producing_undone(state, out, block)
    assert out == ["sent before the block"]
    assert state.changes == before


def test_a_block_that_ends_sends_its_outputs_in_order(tmp_path: Path) -> None:
    state = batch(tmp_path)
    out = ["sent before the block"]
    with state.all_or_nothing(out) as produced:
        produced.extend(["first", "second"])
        assert out == ["sent before the block"]  # held until the block ends
    assert out == ["sent before the block", "first", "second"]


def test_an_outer_block_that_raises_drops_what_an_inner_one_produced(tmp_path: Path) -> None:
    state = batch(tmp_path)
    out: list[str] = []
    seen: list[str] = []

    def outer(produced: list[str]) -> None:
        produced.append("outer")
        with state.all_or_nothing(produced) as inner:
            inner.append("inner")
        producing_undone(state, produced, lambda inner: inner.append("inner undone"))
        seen.extend(produced)

    producing_undone(state, out, outer)
    # an inner block that ended passed its own on; one that raised did not
    assert seen == ["outer", "inner"]
    assert out == []


def test_writes_giving_a_key_the_value_it_was_read_with_are_dropped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    state = BatchState(store, 1)
    state.put(b"d/acme/cus_1", b"2026-11-22")
    state.put(b"d/acme/cus_2", b"2026-11-23")
    store.write(1, state.changes)
    state = BatchState(store, 1)
    assert state.get(b"d/acme/cus_1") == b"2026-11-22"
    assert state.get(b"d/acme/cus_2") == b"2026-11-23"
    assert state.get(b"d/acme/cus_3") is None
    state.put(b"d/acme/cus_1", b"2026-11-22")  # written back as read
    state.put(b"d/acme/cus_2", b"2026-12-01")  # changed
    state.delete(b"d/acme/cus_3")  # never there
    state.put(b"d/acme/cus_4", b"2026-11-30")  # not read: kept
    state.put(b"d/acme/cus_5", b"x")
    state.delete(b"d/acme/cus_5")  # not read: kept, as the store may hold it
    assert state.drop_unchanged() == 2
    assert state.changes == {
        b"d/acme/cus_2": b"2026-12-01",
        b"d/acme/cus_4": b"2026-11-30",
        b"d/acme/cus_5": None,
    }
    assert [key for key, _ in state.items(b"d/acme/")] == [
        b"d/acme/cus_1",
        b"d/acme/cus_2",
        b"d/acme/cus_4",
    ]
    assert state.get(b"d/acme/cus_1") == b"2026-11-22"
    store.write(1, state.changes)
    assert store.get(1, b"d/acme/cus_1") == b"2026-11-22"
    assert store.get(1, b"d/acme/cus_2") == b"2026-12-01"


def test_a_key_changed_and_changed_back_in_the_batch_is_dropped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    state = BatchState(store, 1)
    state.put(b"m/acme/cus_1", b"[1]")
    store.write(1, state.changes)
    state = BatchState(store, 1)
    assert state.get(b"m/acme/cus_1") == b"[1]"
    state.put(b"m/acme/cus_1", b"[1,2]")
    state.delete(b"m/acme/cus_1")
    assert state.get(b"m/acme/cus_1") is None
    state.put(b"m/acme/cus_1", b"[1]")
    assert state.drop_unchanged() == 1
    assert state.changes == {}
    assert state.any_under(b"m/acme/")  # as the store holds it
    assert state.items(b"m/acme/") == [(b"m/acme/cus_1", b"[1]")]
