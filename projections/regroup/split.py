"""A journey dealt out to the customers a split left: each event to the component of its keys.

The components come from ingest (`components`), so the journey stage files each event under
the customer ingest will send that customer's later events to. An event none of whose keys
is in a component (every one refused) stands alone under the id of its event key, as the
offline fold gives it (`identity_ids` falls back to `event:<event id>`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from projections.identifiers import customer_ids
from projections.identity import PRIORITY, customer_id_for
from projections.journey import Journey
from projections.regroup.components import decided_form
from schemas.events import Event


def assign(
    tenant: str,
    event: Event,
    parts: Mapping[str, frozenset[str]],
    region: str | None,
    priority: tuple[str, ...] = PRIORITY,
) -> str:
    """The customer an event belongs to after a split: that of its highest-priority key a
    customer holds (a limit may have left its keys with several)."""
    return assign_keys(tenant, event.event_id, by_priority(event, region, priority), parts)


def assign_keys(
    tenant: str, event_id: str, ordered: Iterable[str], parts: Mapping[str, frozenset[str]]
) -> str:
    """`assign` of an event given its keys, highest priority first (a sealed event's keys are
    known to the journey stage only through the split's link tags)."""
    for key in ordered:
        for customer, keys in parts.items():
            if key in keys:
                return customer
    return customer_id_for(tenant, [f"event:{event_id}"])


def by_priority(event: Event, region: str | None, priority: tuple[str, ...]) -> list[str]:
    """An event's keys that can link, highest priority first (then by key)."""
    own = [i for i in customer_ids(event.customer, region) if i.unusable is None]
    rank = {kind: n for n, kind in enumerate(priority)}
    return [i.key for i in sorted(own, key=lambda i: (rank.get(i.kind, len(rank)), i.key))]


def assign_late(
    tenant: str,
    event: Event,
    customer: str,
    parts: Mapping[str, frozenset[str]],
    dropped: frozenset[str],
    region: str | None,
    rejoined: Mapping[str, str] | None = None,
    priority: tuple[str, ...] = PRIORITY,
) -> str:
    """The customer an event forwarded to `customer` after its split belongs to.

    A merge from before the split may still be forwarding events to it: such an event goes
    where the split put its keys (alone, if it held only keys the split dropped). An event whose
    keys the split did not know came by a merge made since, and stays. `rejoined`: values the
    split dropped that an unblock let link again (value -> the customer holding it now).
    """
    ordered = by_priority(event, region, priority)
    return assign_late_keys(tenant, event.event_id, ordered, customer, parts, dropped, rejoined)


def assign_late_keys(
    tenant: str,
    event_id: str,
    ordered: list[str],
    customer: str,
    parts: Mapping[str, frozenset[str]],
    dropped: frozenset[str],
    rejoined: Mapping[str, str] | None = None,
    form: Callable[[str], str] = decided_form,
) -> str:
    """`assign_late` of an event given its keys, highest priority first (`form`: the form
    `rejoined` names a key by: its decided form, or a link tag itself)."""
    own = set(ordered)
    for key in ordered:
        for part, keys in sorted(parts.items()):
            if key in keys:
                return part
    rejoined = rejoined or {}
    forms = {form(key) for key in own}
    if forms and forms <= rejoined.keys():
        return rejoined[min(forms)]
    if own and own <= dropped:
        return customer_id_for(tenant, [f"event:{event_id}"])
    return customer


def split(
    journey: Journey,
    parts: Mapping[str, frozenset[str]],
    region: str | None,
    priority: tuple[str, ...] = PRIORITY,
) -> tuple[Journey, ...]:
    """The journeys a split makes of one journey, by customer id (journey order kept)."""
    dealt: dict[str, list[Event]] = {}
    for event in journey.events:
        target = assign(journey.tenant, event, parts, region, priority)
        dealt.setdefault(target, []).append(event)
    return tuple(
        Journey(journey.tenant, customer, tuple(events))
        for customer, events in sorted(dealt.items())
    )


def split_reason(decision: str, customer: str, into: Iterable[str]) -> str:
    """Why a flag of a split customer is withdrawn: the decision and the customers it left."""
    others = sorted(set(into) - {customer})
    left = ", ".join(others) if others else "no other customer"
    return f"{decision}; {customer} was split (its events now also with {left})"
