"""Restore a batch's changelog records whole or not at all.

A batch's state changes reach the changelog as several produce requests (one record batch
fills at the producer's batch size), and the broker has no transactions. A worker killed
between two of them leaves the first part of the batch on the changelog, with no record of
the input offset it belongs to (that record comes last). Restoring that part gives a store
ahead of its offset: the batch is then processed again on top of its own half-written effects
(a customer renamed twice, two customers merged into each other, their events passed back and
forth for ever). So every record of a batch's changelog but the last carries the `part`
header, valued with the batch's id (its input offset), and a restore applies a run of `part`
records only once the record that ends it arrives. At the log's end a run never ended (the
tail a crash cut) is left unread, and the batch read again writes its own. Inside the log a
run is applied as soon as a record of another batch follows it: compaction may have removed
its last record (a later batch wrote that key), or a crash cut it and the batch was read
again after it (whose records then supersede it). So the restore holds at most one batch in
memory. Records marked `whole` (a ring written first, the note of a batch in flight) apply at
once and leave any open run as it is. Records with no header (a changelog from before this
marking) end what came before them and apply, as they always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

PART = "part"
"""The header of a changelog record that more records of the same batch follow (its value:
the batch's id)."""

WHOLE = "whole"
"""The header of a changelog record that stands alone, applied at once whatever batch is open."""

Header = tuple[str, bytes]
_WHOLE_HEADERS: tuple[Header, ...] = ((WHOLE, b""),)


def whole_records(
    changes: Mapping[bytes, bytes | None],
) -> list[tuple[bytes, bytes | None, tuple[Header, ...]]]:
    """Changes that stand alone (each applies at once on a restore) as changelog records."""
    return [(key, value, _WHOLE_HEADERS) for key, value in changes.items()]


def unit_records(
    changes: Mapping[bytes, bytes | None], unit: bytes
) -> list[tuple[bytes, bytes | None, tuple[Header, ...]]]:
    """A batch's changes as changelog records: all but the last marked `part` of `unit`."""
    last = len(changes) - 1
    marked: tuple[Header, ...] = ((PART, unit),)
    return [
        (key, value, marked if n < last else ()) for n, (key, value) in enumerate(changes.items())
    ]


def _unit_of(headers: Sequence[tuple[str, bytes]] | None) -> bytes | None:
    for name, value in headers or ():
        if name == PART:
            return value
    return None


def _stands_alone(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    return any(name == WHOLE for name, _ in headers or ())


class Units:
    """One partition's changelog read in order, handed out in whole batches."""

    def __init__(self) -> None:
        self._open: dict[bytes, bytes | None] = {}
        self._unit: bytes | None = None
        self._since: dict[bytes, bytes | None] = {}
        """Records standing alone that came after the open run began (they win over it)."""
        self.whole_until: int | None = None
        """The changelog offset after the last record applied (where a restore that stopped
        short of an unfinished batch resumes)."""

    def add(
        self, records: Iterable[tuple[int, bytes, bytes | None, Sequence[tuple[str, bytes]]]]
    ) -> dict[bytes, bytes | None]:
        """Take (offset, key, value, headers) records; the changes of every batch they finish."""
        whole: dict[bytes, bytes | None] = {}
        for offset, key, value, headers in records:
            if _stands_alone(headers):
                whole[key] = value
                if self._open:
                    self._since[key] = value
                else:
                    self.whole_until = offset + 1
                continue
            unit = _unit_of(headers)
            if self._open and unit != self._unit:
                self._flush(whole)  # another batch follows: this run is over
                self.whole_until = offset
            self._unit = unit
            self._open[key] = value
            if unit is None:
                self._flush(whole)
                self.whole_until = offset + 1
        return whole

    def _flush(self, into: dict[bytes, bytes | None]) -> None:
        into.update(self._open)
        into.update(self._since)  # later in the log than the run
        self._open.clear()
        self._since.clear()

    @property
    def unfinished(self) -> int:
        """Keys of a batch begun and not ended (the tail a crash cut, when the log ends)."""
        return len(self._open)
