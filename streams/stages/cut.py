"""Read a batch again exactly as it was cut, after a crash that let its outputs out.

A batch's outputs are produced before its state is stored. A worker killed in between has sent
flag changes for a batch whose state it never wrote; on restart the batch is read again from
the stored offset. The journey stage evaluates its rules once per batch, so the flag changes
it emits (and their ids, which consumers drop repeats by) depend on where the batch ends: the
replay must end where the first attempt did. The runner notes that end offset in the local
store before sending outputs; on restart this reassembles the same batch, across fetches if
need be, before anything else is processed.
"""

from __future__ import annotations

from typing import Protocol, TypeVar


class HasOffset(Protocol):
    """A consumed record: all this needs is its offset."""

    @property
    def offset(self) -> int:
        """The record's offset in its partition."""


M = TypeVar("M", bound=HasOffset)


class SameCut:
    """Per partition: the end of a batch that must be read again whole, and what has come."""

    def __init__(self) -> None:
        self._until: dict[int, int] = {}
        self._pending: dict[int, list[HasOffset]] = {}

    def expect(self, partition: int, until: int) -> None:
        """The next batch of `partition` must end just before offset `until`."""
        self._until[partition] = until
        self._pending[partition] = []

    def forget(self, partition: int) -> None:
        """Drop what is known of a partition (revoked, or its batch failed)."""
        self._until.pop(partition, None)
        self._pending.pop(partition, None)

    def next_offset(self, partition: int, stored: int | None) -> int | None:
        """The offset the next fetched record should have: after what is held, else stored."""
        pending = self._pending.get(partition)
        return pending[-1].offset + 1 if pending else stored

    def take(self, partition: int, messages: list[M]) -> tuple[list[M], int | None]:
        """The batch to process now (empty while the cut batch is incomplete), and an offset
        to seek back to when records past the cut were fetched (they are read again next)."""
        until = self._until.get(partition)
        if until is None:
            return messages, None
        pending: list[M] = self._pending.setdefault(partition, [])  # type: ignore[assignment]
        pending.extend(m for m in messages if m.offset < until)
        past = bool(messages) and messages[-1].offset >= until
        seek = until if past else None
        # Complete once the record before the cut is here, or anything after it (an offset
        # with no record, such as a transaction marker, never arrives).
        if not pending:
            if past:
                self.forget(partition)  # no record before the cut exists: nothing to gather
            return [], seek
        if pending[-1].offset < until - 1 and not past:
            return [], seek
        self.forget(partition)
        return pending, seek


class Gaps:
    """Per partition: a batch that starts past the expected offset, until the broker confirms it.

    A batch can start past the offset the stored state expects because this worker's consumer
    moved on without those records being stored (a batch dropped by the fence, a fetch from
    before a seek), or because the broker really has no records there (a produce cut short by
    a broker crash reserves offsets on Tansu with S3 storage, retention deleted them, a
    transaction marker). Only the last is to be skipped, and a hole that is still being filled
    (Tansu reserves a produce's offsets before it writes the records) looks the same for a
    moment. So the runner reads again from the expected offset until the same gap has been
    seen for `confirm_s` seconds, twice at least, with no batch in between that started where
    expected; a batch that does start there clears what was seen.
    """

    def __init__(self, confirm_s: float) -> None:
        self.confirm_s = confirm_s
        self._seen: dict[int, tuple[int, float, int]] = {}

    def accept(self, partition: int, expected: int, first: int, now: float) -> bool:
        """Whether a batch of `partition` starting at `first` may be processed now; False: read
        again from `expected` first."""
        if first <= expected:
            self._seen.pop(partition, None)
            return True
        seen = self._seen.get(partition)
        if seen is None or seen[0] != expected:
            self._seen[partition] = (expected, now, 1)
            return False
        _, since, count = seen
        if count >= 2 and now - since >= self.confirm_s:
            del self._seen[partition]
            return True
        self._seen[partition] = (expected, since, count + 1)
        return False

    def forget(self, partition: int) -> None:
        """Drop what was seen of a partition (revoked, or positioned again)."""
        self._seen.pop(partition, None)
