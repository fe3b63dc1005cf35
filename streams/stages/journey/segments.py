"""A journey stored as bounded segments: sealed segments, their index, and a tail.

Keys (spelled in `streams.store.keys`), per customer:

- ``j/`` the tail: the journey's latest events, a JSON array of each event's canonical bytes in
  journey order. Present exactly while the journey exists (never empty), so a scan of ``j/``
  still finds every journey. A journey stored before segments existed is all tail and reads
  as before: no migration is needed; its next write seals what is past the bounds.
- ``jh/`` the index: ``{"segments": [[number, count], ...], "next": number}``, the sealed
  segments in journey order; absent while there are none. About 12 bytes per segment.
- ``js/…/<number>`` one sealed segment: a JSON array like the tail.

Every segment and the tail hold at most `SegmentBounds.events` events and
`SegmentBounds.bytes` bytes (one event larger than that alone). An event arriving in journey
order rewrites the tail only; when the tail passes the bounds its leading events are sealed
into new segments. A late event rewrites the one sealed segment its moment falls in (cut in
two or more if it passed the bounds), plus the index. So no state record grows with the
journey except the index, which holds 12 bytes per `events` events (about 80,000 segments, 16
million events at the defaults, before it reaches 1 MiB).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson

from projections.journey import Events, Journey, event_order
from schemas.codec import decode_trusted_events, encode_event
from schemas.events import Event
from streams.store import keys
from streams.store.keys import CustomerRef
from streams.store.state import BatchState

SEGMENT_EVENTS = 200
"""The most events a sealed segment or the tail holds."""

SEGMENT_BYTES = 256 * 1024
"""The most bytes a sealed segment or the tail holds (unless one event alone is larger)."""

RECORD_FRAMING_BYTES = 512
"""Room left in the record limit for a state record's framing: the batch and record headers."""

Getter = Callable[[bytes], bytes | None]
"""Reads one state key (a `BatchState.get`, or a store's for one partition)."""


@dataclass(frozen=True, slots=True)
class SegmentBounds:
    """How large a segment may grow, in events and in bytes."""

    events: int = SEGMENT_EVENTS
    bytes: int = SEGMENT_BYTES

    @classmethod
    def within(cls, max_record_bytes: int | None) -> SegmentBounds:
        """The default bounds, made smaller if the broker's record limit needs it."""
        if max_record_bytes is None:
            return cls()
        room = max_record_bytes - RECORD_FRAMING_BYTES - 200  # 200: a key's length, generously
        return cls(bytes=max(1, min(SEGMENT_BYTES, room)))


@dataclass(slots=True)
class SegmentIndex:
    """The sealed segments of one journey, in journey order: (number, event count) each."""

    segments: list[tuple[int, int]] = field(default_factory=list)
    next: int = 0
    """The number the next sealed segment gets (numbers are never reused)."""

    @property
    def sealed(self) -> int:
        """How many events the sealed segments hold."""
        return sum(count for _, count in self.segments)

    def to_bytes(self) -> bytes:
        """The index as stored."""
        return orjson.dumps({"segments": self.segments, "next": self.next})

    @classmethod
    def from_bytes(cls, value: bytes | None) -> SegmentIndex:
        """An index read back (None: no sealed segments)."""
        if value is None:
            return cls()
        document = orjson.loads(value)
        return cls([(int(n), int(c)) for n, c in document["segments"]], int(document["next"]))


def encode_journey(journey: Journey) -> bytes:
    """A journey's events as one JSON array in journey order (a segment's format)."""
    return join_raws([encode_event(e) for e in journey.events])


def join_raws(raws: Sequence[bytes]) -> bytes:
    """Encoded events as one stored array."""
    return b"[" + b",".join(raws) + b"]"


def append_to_journey(stored: bytes | None, raws: list[bytes]) -> bytes:
    """The stored array with more encoded events at its end (`stored` None: a new array)."""
    if not raws and stored is not None:
        return stored
    body = b",".join(raws)
    if stored is None or stored == b"[]":
        return b"[" + body + b"]"
    return stored[:-1] + b"," + body + b"]"


def split_journey(value: bytes) -> list[bytes]:
    """A stored array's events, each as its own canonical bytes."""
    # orjson writes back what it read from `encode_event` byte for byte (tested).
    return [orjson.dumps(document) for document in orjson.loads(value)]


def decode_journey(ref: CustomerRef, value: bytes) -> Journey:
    """One stored array read back as a journey (a whole journey only if it has no segments)."""
    return Journey(ref[0], ref[1], tuple(decode_trusted_events(value)))


def chunk(raws: Sequence[bytes], bounds: SegmentBounds) -> list[list[bytes]]:
    """Events cut, in order, into runs within the bounds (each run at least one event)."""
    runs: list[list[bytes]] = [[]]
    size = 2
    for raw in raws:
        run = runs[-1]
        if run and (len(run) >= bounds.events or size + len(raw) + 1 > bounds.bytes):
            runs.append([])
            run, size = runs[-1], 2
        run.append(raw)
        size += len(raw) + 1
    return runs if runs[0] else []


def cut_evenly(raws: Sequence[bytes], bounds: SegmentBounds) -> list[list[bytes]]:
    """As `chunk`, in as many runs, but of even lengths where the byte bound allows: a sealed
    segment a late event pushed past the bounds is cut in halves, not into full and tiny."""
    runs = chunk(raws, bounds)
    if len(runs) < 2:
        return runs
    size, extra = divmod(len(raws), len(runs))
    even, start = [], 0
    for n in range(len(runs)):
        end = start + size + (1 if n < extra else 0)
        even.append(list(raws[start:end]))
        start = end
    if all(len(join_raws(run)) <= bounds.bytes for run in even):
        return even
    return runs


def stored_arrays(get: Getter, ref: CustomerRef) -> list[bytes] | None:
    """A journey's stored arrays in journey order: the sealed segments, then the tail."""
    tail = get(keys.journey_key(ref))
    if tail is None:
        return None
    index = SegmentIndex.from_bytes(get(keys.journey_index_key(ref)))
    arrays = []
    for number, _ in index.segments:
        value = get(keys.journey_segment_key(ref, number))
        if value is None:  # never written apart from its index: a damaged store
            raise LookupError(f"segment {number} of a journey is missing; rebuild the journeys")
        arrays.append(value)
    return [*arrays, tail]


def read_journey(get: Getter, ref: CustomerRef) -> Journey | None:
    """A customer's whole stored journey (its segments and tail), or None."""
    arrays = stored_arrays(get, ref)
    if arrays is None:
        return None
    events: list[Event] = []
    for value in arrays:
        events.extend(decode_trusted_events(value))
    return Journey(ref[0], ref[1], tuple(events))


def journeys_in(entries: Mapping[bytes, bytes]) -> dict[CustomerRef, Journey]:
    """Every whole journey among a partition's state entries (a store's, or a changelog's
    latest value per key)."""
    found: dict[CustomerRef, Journey] = {}
    for key in entries:
        ref = keys.journey_of(key)
        if ref is not None and (journey := read_journey(entries.get, ref)) is not None:
            found[ref] = journey
    return found


def read_raws(get: Getter, ref: CustomerRef) -> list[bytes]:
    """Every stored event's bytes of a journey, in journey order (none: no journey)."""
    return [raw for value in stored_arrays(get, ref) or [] for raw in split_journey(value)]


class SegmentWriter:
    """Writes journeys as segments into one batch's state."""

    def __init__(self, state: BatchState, bounds: SegmentBounds) -> None:
        self.state = state
        self.bounds = bounds

    def delete(self, ref: CustomerRef) -> None:
        """Delete a journey: its tail, index and every sealed segment."""
        index = SegmentIndex.from_bytes(self.state.get(keys.journey_index_key(ref)))
        for number, _ in index.segments:
            self.state.delete(keys.journey_segment_key(ref, number))
        self.state.delete(keys.journey_index_key(ref))
        self.state.delete(keys.journey_key(ref))

    def write_all(self, ref: CustomerRef, raws: Sequence[bytes]) -> None:
        """Store a journey afresh from its events' bytes in journey order (none: delete it)."""
        self.delete(ref)
        if raws:
            self._store_tail(ref, SegmentIndex(), list(raws), None)

    def update(
        self, ref: CustomerRef, before: Journey, after: Journey, added: Mapping[str, bytes | None]
    ) -> None:
        """Store `after`, which is `before` (as stored) with the events of `added` folded in.

        Rewrites only the sealed segments a late event fell in, and the tail.
        """
        index = SegmentIndex.from_bytes(self.state.get(keys.journey_index_key(ref)))
        events, start, cumulative = after.events, 0, 0
        segments: list[tuple[int, int]] = []
        changed = False
        sealed = index.segments
        if Events.of(events).extends(Events.of(before.events)):
            # only appended since it was stored: no sealed segment can change (each one's last
            # event comes before the new ones), and none is looked at
            segments, sealed = list(index.segments), []
            start = cumulative = sum(count for _, count in segments)
        for number, count in sealed:
            cumulative += count
            last = event_order(before.events[cumulative - 1])
            end = bisect.bisect_right(events, last, lo=start, key=event_order)
            if end - start == count:
                segments.append((number, count))
            else:  # late events fell among this segment's: write it again
                changed = True
                key = keys.journey_segment_key(ref, number)
                old = self.state.get(key)
                raws = self._raws(events[start:end], added, old)
                self.state.delete(key)
                for run in cut_evenly(raws, self.bounds):
                    self.state.put(keys.journey_segment_key(ref, index.next), join_raws(run))
                    segments.append((index.next, len(run)))
                    index.next += 1
            start = end
        index.segments = segments
        tail_events = events[start:]
        held = len(before.events) - cumulative  # the events the stored tail holds
        stored_tail = self.state.get(keys.journey_key(ref)) if held else None
        new = tail_events[held:]
        appended = [added.get(e.event_id) for e in new]
        # As many of the tail's last events as it gained were all gained in this batch: the
        # usual case, events appended after the stored tail, whose bytes are appended as such.
        only_appended = all(e.event_id in added for e in new) and None not in appended
        if only_appended and (not held or stored_tail is not None):
            if new:
                tail = append_to_journey(stored_tail, cast(list[bytes], appended))
                self._store_tail(ref, index, None, tail, changed, len(tail_events))
            elif changed:
                self._store_index(ref, index)
            return
        raws = self._raws(tail_events, added, self.state.get(keys.journey_key(ref)))
        self._store_tail(ref, index, raws, None, changed)

    def _raws(
        self, events: Sequence[Event], added: Mapping[str, bytes | None], stored: bytes | None
    ) -> list[bytes]:
        """Each event's bytes: as arrived in this batch, as stored, or encoded afresh."""
        held: dict[str, bytes] = {}
        for document in orjson.loads(stored) if stored is not None else ():
            held[document["event_id"]] = orjson.dumps(document)
        return [added.get(e.event_id) or held.get(e.event_id) or encode_event(e) for e in events]

    def _store_tail(
        self,
        ref: CustomerRef,
        index: SegmentIndex,
        raws: list[bytes] | None,
        value: bytes | None,
        changed: bool = True,
        count: int = 0,
    ) -> None:
        """Write the tail (given as `raws`, or as its stored `value` of `count` events), sealing
        its leading events into segments once it passes the bounds."""
        if value is not None and count <= self.bounds.events and len(value) <= self.bounds.bytes:
            self.state.put(keys.journey_key(ref), value)
        else:
            runs = chunk(raws if raws is not None else split_journey(value or b"[]"), self.bounds)
            for run in runs[:-1]:
                self.state.put(keys.journey_segment_key(ref, index.next), join_raws(run))
                index.segments.append((index.next, len(run)))
                index.next += 1
                changed = True
            self.state.put(keys.journey_key(ref), join_raws(runs[-1]))
        if changed:
            self._store_index(ref, index)

    def _store_index(self, ref: CustomerRef, index: SegmentIndex) -> None:
        if index.segments:
            self.state.put(keys.journey_index_key(ref), index.to_bytes())
        else:
            self.state.delete(keys.journey_index_key(ref))
