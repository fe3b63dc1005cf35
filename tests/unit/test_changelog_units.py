"""A batch's changelog records restore whole or not at all (`streams.stages.units`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.stages.units import PART, WHOLE, Units, unit_records, whole_records

Read = tuple[int, bytes, bytes | None, tuple[tuple[str, bytes], ...]]


def _as_read(batches: list[dict[bytes, bytes | None]]) -> list[Read]:
    records = [
        record
        for number, changes in enumerate(batches)
        for record in unit_records(changes, str(number).encode())
    ]
    return [(offset, key, value, headers) for offset, (key, value, headers) in enumerate(records)]


def test_every_record_of_a_batch_but_the_last_says_more_follow() -> None:
    records = unit_records({b"a": b"1", b"b": None, b"__offset__": b"7"}, b"7")
    assert [headers for _, _, headers in records] == [((PART, b"7"),), ((PART, b"7"),), ()]
    assert [key for key, _, _ in records] == [b"a", b"b", b"__offset__"]
    assert unit_records({b"__offset__": b"1"}, b"1") == [(b"__offset__", b"1", ())]


def test_a_batch_cut_by_a_crash_at_the_end_of_the_log_is_not_applied() -> None:
    read = _as_read([{b"a": b"1", b"__offset__": b"3"}, {b"b": b"2", b"__offset__": b"6"}])
    units = Units()
    whole = units.add(read[:-1])  # the second batch's last record never reached the log
    assert whole == {b"a": b"1", b"__offset__": b"3"}
    assert units.whole_until == 2
    assert units.unfinished == 1
    # the rest comes (read again later): the batch applies whole
    assert units.add(read[-1:]) == {b"b": b"2", b"__offset__": b"6"}
    assert (units.whole_until, units.unfinished) == (4, 0)


def test_a_run_another_batch_follows_applies_before_it() -> None:
    """Inside the log, a run whose last record compaction removed (or a crash cut, then read
    again after it) is over when another batch's records come."""
    cut = unit_records({b"a": b"1", b"b": b"2", b"__offset__": b"3"}, b"3")[:-1]
    after = unit_records({b"b": b"9", b"__offset__": b"5"}, b"5")
    read = [(n, k, v, h) for n, (k, v, h) in enumerate([*cut, *after])]
    units = Units()
    assert units.add(read) == {b"a": b"1", b"b": b"9", b"__offset__": b"5"}
    assert (units.whole_until, units.unfinished) == (4, 0)
    units = Units()
    assert units.add(read[:3]) == {b"a": b"1", b"b": b"2"}  # the next batch is still open
    assert (units.whole_until, units.unfinished) == (2, 1)


def test_records_standing_alone_apply_at_once_and_leave_an_open_batch_open() -> None:
    cut = unit_records({b"a": b"1", b"note": b"old", b"__offset__": b"3"}, b"3")[:-1]
    alone = whole_records({b"note": b"new"})
    assert alone == [(b"note", b"new", ((WHOLE, b""),))]
    read = [(n, k, v, h) for n, (k, v, h) in enumerate([*cut, *alone])]
    units = Units()
    assert units.add(read) == {b"note": b"new"}  # the cut batch stays unapplied
    assert (units.whole_until, units.unfinished) == (None, 2)
    # another batch follows: the run applies, and the later record standing alone still wins
    after = unit_records({b"b": b"2", b"__offset__": b"5"}, b"5")
    more = [(n + len(read), k, v, h) for n, (k, v, h) in enumerate(after)]
    assert units.add(more) == {
        b"a": b"1",
        b"note": b"new",
        b"b": b"2",
        b"__offset__": b"5",
    }
    assert (units.whole_until, units.unfinished) == (5, 0)


def test_records_without_the_header_apply_one_by_one_as_before() -> None:
    units = Units()
    old: list[Read] = [(0, b"a", b"1", ()), (1, b"b", None, ()), (2, b"c", b"3", ())]
    assert units.add(old[:2]) == {b"a": b"1", b"b": None}
    assert units.whole_until == 2


_changes = st.dictionaries(
    st.sampled_from([b"a", b"b", b"c", b"d"]), st.one_of(st.none(), st.binary(max_size=3))
).map(lambda changes: {**changes, b"__offset__": b"n"})


@given(batches=st.lists(_changes, min_size=1, max_size=6), cut=st.integers(min_value=0))
def test_what_applies_is_always_the_whole_batches_before_the_cut(
    batches: list[dict[bytes, bytes | None]], cut: int
) -> None:
    read = _as_read(batches)
    cut %= len(read) + 1
    units = Units()
    applied = units.add(read[:cut])
    ends = [-1]
    for changes in batches:
        ends.append(ends[-1] + len(changes))
    whole = max(n for n, end in enumerate(ends) if end < cut)
    expected: dict[bytes, bytes | None] = {}
    for changes in batches[:whole]:
        expected.update(changes)
    assert applied == expected
    assert units.whole_until == (ends[whole] + 1 if whole else None)
