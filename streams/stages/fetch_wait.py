"""How long a stage's fetches may wait: short while records come, longer while they do not.

A stage fetches with a short wait (`KafkaSettings.fetch_max_wait_ms`, 50 ms) so that a flag
follows its event quickly. Tansu with S3 storage spends a fetch's wait listing the partition's
record objects and returns nothing when the listing has not finished in time; on a busy machine
or a long partition every fetch then comes back empty and the stage stops reading although the
broker holds its records (measured: 300 batches in a partition, a loaded machine, 50 ms: no
record in 5 s; 500 ms: all of them). So while an owned partition stays behind the high water
the broker reports and polls bring it nothing, the wait doubles (up to `max_ms`); it stays there
while the stage catches up, and is the base again once no partition is behind. On Kafka a fetch
returns as soon as records are there, so a longer wait costs nothing while the stage is behind.
"""

from __future__ import annotations

from collections.abc import Container, Iterable


class FetchWait:
    """The fetch wait to ask for next, from whether each poll found a partition stalled."""

    def __init__(self, base_ms: int, max_ms: int = 2_000, patience: int = 2) -> None:
        self.base_ms = base_ms
        self.max_ms = max(max_ms, base_ms)
        self.patience = patience
        """Stalled polls in a row before the wait doubles."""
        self.wait_ms = base_ms
        self._stalled = 0

    def observe(self, *, behind: bool, stalled: bool) -> int:
        """Note one poll: was an owned partition behind its high water (`behind`), and did one
        of those get nothing (`stalled`)? Caught up, the wait is the base again; behind and
        fed, it stays (on Tansu with S3 a longer wait is what lets a fetch list the records)."""
        if not behind:
            self._stalled = 0
            self.wait_ms = self.base_ms
        elif stalled:
            self._stalled += 1
            if self._stalled >= self.patience:
                self._stalled = 0
                self.wait_ms = min(self.max_ms, max(self.wait_ms * 2, 1))
        else:
            self._stalled = 0
        return self.wait_ms


def poll_outcome(
    partitions: Iterable[tuple[int, int | None, int]],
    got: Container[int],
    returned: int,
    cap: int,
) -> tuple[bool, bool]:
    """(behind, stalled) of one poll, from each owned partition's (partition, high water,
    stored offset), the partitions the poll brought records and how many it brought.

    A poll that brought `cap` records (the consumer's `max_poll_records`) was cut short by the
    consumer, not by the broker: a partition it left out has records waiting in the consumer's
    buffer, so that is no stall (counted as one, every backlog larger than a poll doubled the
    wait up to its maximum, and Tansu on memory then holds each fetch that finds nothing new for
    the whole wait: the flags of the next events waited with it).
    """
    behind = stalled = False
    for partition, highwater, stored in partitions:
        if highwater is not None and highwater > stored:
            behind = True
            stalled = stalled or partition not in got
    return behind, stalled and returned < cap
