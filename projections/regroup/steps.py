"""Where an event late to a customer belongs: it follows the customer's numbered steps since.

Ingest numbers each settle or split of a tenant's graph; a merge record carries the number of
the latest. Live, the journey stage may read an event moved to a customer by settle `n` (or
passed on to it by a merge after settle `n`) only after that customer was settled again or
merged on: ingest runs ahead. The customer keeps its latest steps (`Step`, a bounded list), and
the event takes the first one after its word, as it would have had it arrived in time: a split
deals it to the part holding its highest-priority key (it stays through a split that keeps it
here, and goes on to the next step), a merge passes it on. Pure: the journey stage stores the
steps and sends what this says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from projections.identity import PRIORITY, customer_id_for
from projections.regroup.split import by_priority
from schemas.events import Event

MAX_STEPS = 16
"""The most steps a customer keeps (the latest): an event older than all of them follows the
oldest kept, so a customer's record stays bounded however often it is settled."""


@dataclass(frozen=True, slots=True)
class Step:
    """A numbered change of one customer: a split (its parts, the keys it dropped) or a merge
    into another customer (`into`)."""

    number: int
    parts: Mapping[str, frozenset[str]] = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()
    into: str | None = None

    def to_document(self) -> dict[str, object]:
        """The step as JSON-ready data."""
        if self.into is not None:
            return {"n": self.number, "into": self.into}
        parts = {part: sorted(held) for part, held in self.parts.items()}
        return {"n": self.number, "parts": parts, "dropped": sorted(self.dropped)}

    @classmethod
    def from_document(cls, document: Mapping[str, object]) -> Step:
        """A step read back from `to_document`'s data."""
        number = document["n"]
        assert isinstance(number, int)
        into = document.get("into")
        if isinstance(into, str):
            return cls(number, into=into)
        parts = document.get("parts", {})
        dropped = document.get("dropped", [])
        assert isinstance(parts, dict)
        assert isinstance(dropped, list)
        return cls(
            number,
            {str(part): frozenset(map(str, held)) for part, held in parts.items()},
            frozenset(map(str, dropped)),
        )


def stepped(steps: Iterable[Step], step: Step) -> list[Step]:
    """A customer's steps with one more (the latest `MAX_STEPS`)."""
    return [*steps, step][-MAX_STEPS:]


def follow(
    tenant: str,
    event: Event,
    customer: str,
    steps: Sequence[Step],
    number: int,
    region: str | None,
    priority: tuple[str, ...] = PRIORITY,
    own: list[str] | None = None,
) -> tuple[str, int] | None:
    """Where an event that came to `customer` by ingest's word `number` goes: the customer and
    the number of the step that sends it there, or None when it stays.

    A split numbered after the word deals it as a split deals a journey (`assign`: the part
    holding its highest-priority key; alone when the split dropped every key it has); a merge
    after that settle (its number at least the word's) passes it on. `own`: the event's keys,
    highest priority first, when the caller knows them (a sealed event's, from link tags).
    """
    own = by_priority(event, region, priority) if own is None else own  # given: sealed
    word = number
    for step in steps:
        if step.into is not None:
            if step.number >= word:
                return step.into, step.number
            continue
        if step.number <= word:
            continue
        word = step.number
        target = next(
            (part for key in own for part, held in sorted(step.parts.items()) if key in held),
            None,
        )
        if target is None and own and set(own) <= step.dropped:
            target = customer_id_for(tenant, [f"event:{event.event_id}"])
        if target is not None and target != customer:
            return target, step.number
    return None
