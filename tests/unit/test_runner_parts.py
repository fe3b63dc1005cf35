"""Pure parts of the stage runner: when a gap is skipped, how long fetches wait."""

from __future__ import annotations

from streams.stages.cut import Gaps
from streams.stages.fetch_wait import FetchWait, poll_outcome


def test_a_gap_is_read_again_until_the_broker_keeps_confirming_it() -> None:
    gaps = Gaps(confirm_s=3.0)
    assert gaps.accept(0, expected=5, first=5, now=0.0)  # in sequence
    assert gaps.accept(0, expected=5, first=3, now=0.0)  # earlier records: dropped by the caller
    assert not gaps.accept(0, expected=5, first=9, now=0.0)  # read again from 5
    assert not gaps.accept(0, expected=5, first=9, now=1.0)  # seen twice, but not for long
    assert not gaps.accept(1, expected=5, first=9, now=1.0)  # partitions are apart
    assert gaps.accept(0, expected=5, first=9, now=3.5)  # the broker has no 5..8: skip them


def test_a_batch_that_starts_where_expected_clears_the_gap_seen_before() -> None:
    # A batch dropped by the fence leaves the position past the stored offset: the gap that
    # follows is this worker's doing, however often it happens, and is never skipped.
    gaps = Gaps(confirm_s=3.0)
    assert not gaps.accept(0, expected=5, first=9, now=0.0)
    assert gaps.accept(0, expected=5, first=5, now=1.0)  # read again: it was there
    assert not gaps.accept(0, expected=5, first=9, now=4.0)  # the same gap again: a new one
    assert not gaps.accept(0, expected=5, first=9, now=5.0)
    gaps.forget(0)
    assert not gaps.accept(0, expected=5, first=9, now=9.0)


def test_fetches_wait_longer_while_a_partition_behind_gets_nothing() -> None:
    wait = FetchWait(50, max_ms=400, patience=2)
    stalled = [wait.observe(behind=True, stalled=True) for _ in range(8)]
    assert stalled == [50, 100, 100, 200, 200, 400, 400, 400]
    assert wait.observe(behind=True, stalled=False) == 400  # fed but behind: keeps waiting
    assert wait.observe(behind=False, stalled=False) == 50  # caught up: the configured wait
    assert wait.observe(behind=True, stalled=True) == 50  # one empty poll is no stall yet


def test_a_poll_cut_by_the_consumer_s_own_limit_is_no_stall() -> None:
    partitions = [(0, 5_000, 1_000), (1, 3_000, 1_000), (2, 700, 700), (3, None, 0)]
    # the broker brought partition 0 only while 1 is behind too: a stall (S3 listing late)
    assert poll_outcome(partitions, {0}, returned=300, cap=2_000) == (True, True)
    # the consumer handed out its 2,000 records from partition 0: 1's wait in its buffer
    assert poll_outcome(partitions, {0}, returned=2_000, cap=2_000) == (True, False)
    assert poll_outcome(partitions, {0, 1}, returned=600, cap=2_000) == (True, False)
    assert poll_outcome([(2, 700, 700), (3, None, 0)], set(), returned=0, cap=2_000) == (
        False,
        False,
    )
