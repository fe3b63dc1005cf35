"""What the journey stage keeps in memory between batches: hot journeys and due deadlines."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime

from projections.evaluation import Evaluation
from projections.journey import Journey
from projections.rules import Detector
from projections.settings import RuleSettings
from streams.store import keys
from streams.store.keys import CustomerRef


class JourneyCache:
    """Decoded journeys kept between batches, least recently used dropped first.

    Beside each journey, the ids of its events (`ids`), so that a new event is told from a
    repeat without a look through the whole journey, and the incremental evaluation of its
    rules (`evaluation`), so that a batch costs the rules a step per new event. Both are
    rebuilt from the journey on a miss (once per load, not per event); nothing of them is
    stored.
    """

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[int, CustomerRef], Journey] = OrderedDict()
        self._ids: dict[tuple[int, CustomerRef], set[str]] = {}
        self._evaluations: dict[tuple[int, CustomerRef], Evaluation] = {}

    def evaluation(
        self,
        partition: int,
        ref: CustomerRef,
        rules: RuleSettings,
        extra: Mapping[str, Detector] | None,
    ) -> Evaluation:
        """The incremental evaluation of a customer's rules kept with its journey (a new one
        the first time, which walks the whole journey once), for these rules. The caller
        `keep`s it once read, or `forget`s the customer."""
        evaluation = self._evaluations.get((partition, ref))
        if evaluation is None or evaluation.rules != rules or evaluation.extra != dict(extra or {}):
            return Evaluation(rules, extra)
        return evaluation

    def keep(self, partition: int, journey: Journey, evaluation: Evaluation) -> None:
        """Keep an evaluation beside its journey, which is kept hot with it.

        A customer's first batch keeps both: its next batch then steps only its new events
        (an evaluation kept only for journeys already hot was made afresh at a customer's
        second batch too, walking the whole journey again).
        """
        key = (partition, (journey.tenant, journey.customer_id))
        if key not in self._items:  # nor its ids: they go with it
            self.put(partition, journey)
        self._evaluations[key] = evaluation

    def ids(self, partition: int, journey: Journey) -> set[str]:
        """A set holding at least the ids of the journey's events, kept with the journey.

        The caller adds the ids of the events it folds in. It may hold more than the journey
        (events of a batch that was then dropped): an id in it only means "look in the journey
        first" (`journey.apply`), an id not in it is certainly new (`journey.add_new`).
        """
        ids = self._ids.get((partition, (journey.tenant, journey.customer_id)))
        return ids if ids is not None else {event.event_id for event in journey.events}

    def get(self, partition: int, ref: CustomerRef) -> Journey | None:
        """A cached journey, if hot."""
        journey = self._items.get((partition, ref))
        if journey is not None:
            self._items.move_to_end((partition, ref))
        return journey

    def put(self, partition: int, journey: Journey, ids: set[str] | None = None) -> None:
        """Keep a journey hot, with the set of its ids if the caller kept one (see `ids`)."""
        key = (partition, (journey.tenant, journey.customer_id))
        self._items[key] = journey
        self._items.move_to_end(key)
        if ids is None:
            self._ids.pop(key, None)
        else:
            self._ids[key] = ids
        while len(self._items) > self.capacity:
            dropped = self._items.popitem(last=False)[0]
            self._ids.pop(dropped, None)
            self._evaluations.pop(dropped, None)

    def forget(self, partition: int, ref: CustomerRef | None = None) -> None:
        """Drop one journey, or a whole partition's (after a failure or a revoke)."""
        if ref is not None:
            self._items.pop((partition, ref), None)
            self._ids.pop((partition, ref), None)
            self._evaluations.pop((partition, ref), None)
            return
        for key in [k for k in self._items if k[0] == partition]:
            del self._items[key]
            self._ids.pop(key, None)
            self._evaluations.pop(key, None)


class DeadlineIndex:
    """When each customer's next time-based rule falls due, per partition, kept in memory.

    Loaded from the deadline keys when a partition is assigned and kept current by every
    evaluation, so the timer looks only at customers that are due instead of scanning state.
    """

    def __init__(self) -> None:
        self._due: dict[int, dict[CustomerRef, datetime]] = {}

    def load(self, partition: int, entries: Iterable[tuple[bytes, bytes]]) -> None:
        """Read a partition's deadlines from its stored deadline entries."""
        due = self._due.setdefault(partition, {})
        due.clear()
        for key, value in entries:
            ref = keys.customer_of(keys.Prefix.DEADLINE, key)
            if ref is not None:
                due[ref] = datetime.fromisoformat(value.decode())

    def get(self, partition: int, ref: CustomerRef) -> datetime | None:
        """A customer's next deadline as last recorded."""
        return self._due.get(partition, {}).get(ref)

    def set(self, partition: int, ref: CustomerRef, deadline: datetime | None) -> None:
        """Record a customer's next deadline, or that it has none."""
        due = self._due.setdefault(partition, {})
        if deadline is None:
            due.pop(ref, None)
        else:
            due[ref] = deadline

    def due(self, partition: int, now: datetime) -> list[CustomerRef]:
        """Customers of a partition whose deadline has passed by `now`."""
        return sorted(ref for ref, at in self._due.get(partition, {}).items() if at < now)

    def forget(self, partition: int) -> None:
        """Drop a partition (it moved to another worker)."""
        self._due.pop(partition, None)
