"""Bound how often one record is passed on from customer to customer.

An event a merged customer passes on, or a split deals out, reaches the next customer through
the events topic and may be passed on again from there (a chain of merges, a split after a
merge), as may a merged customer's merges. Pointers that disagree (two customers each stored
as merged into the other, as a half-restored changelog once left) would pass it back and forth
for ever, each pass a record on the topic: work without end that starves every other
customer on those partitions. So each record passed on counts its passes in a header, and one
passed on `MAX_HOPS` times goes to dead letters with the reason instead of on.
"""

from __future__ import annotations

from streams.kafka.records import InRecord, OutRecord

HEADER_HOPS = "hops"
"""How many times a record was passed on from one customer to another."""

MAX_HOPS = 64
"""Passes allowed: a chain of merges and splits takes a few (each customer keeps at most 16
steps); a record still going after this many is going round."""


class Hops:
    """The passes of the record being handled; counts them on what it passes on."""

    __slots__ = ("_count", "_start")

    def __init__(self, record: InRecord, out: list[OutRecord]) -> None:
        raw = record.header(HEADER_HOPS)
        if raw is None or not raw.isdigit():
            self._count = 0
        else:  # more digits than any count reached is past the bound (and int()'s digit limit)
            self._count = int(raw) if len(raw) <= 4 else MAX_HOPS
        self._start = len(out)

    @property
    def exceeded(self) -> bool:
        """Whether the record has been passed on `MAX_HOPS` times already."""
        return self._count >= MAX_HOPS

    def reason(self) -> str:
        """Why an exceeded record goes to dead letters."""
        return (
            f"passed on between customers {self._count} times (headers.{HEADER_HOPS}): "
            "their merge or split pointers go round; kept aside instead of passed on again"
        )

    def count(self, out: list[OutRecord]) -> None:
        """Mark what handling the record added to `out` as passed on once more."""
        passes = (HEADER_HOPS, str(self._count + 1).encode())
        for n in range(self._start, len(out)):
            record = out[n]
            headers = tuple(h for h in record.headers if h[0] != HEADER_HOPS)
            out[n] = record._replace(headers=(*headers, passes))
