"""The identifier that linked each event of a journey, from the journey's events alone."""

from __future__ import annotations

from collections.abc import Iterable

from projections.identifiers import NormalisedId, identity_ids
from projections.identity import IdentityPolicy
from projections.journey import Journey
from schemas.events import DECISION_TYPES, Event


def link_keys(ident: NormalisedId) -> tuple[str, ...]:
    """The keys an identifier matches earlier events on (a phone in any spelling of its number)."""
    phone = ident.phone
    if phone is not None and phone.national_key is not None:
        # stitching joins a national spelling with the international one: so does the answer
        return (phone.national_key,)
    return (ident.key,)


def _usable(ids: Iterable[NormalisedId]) -> list[NormalisedId]:
    # an event with nothing usable stands alone under its own `event:` key: it shares nothing
    return [i for i in ids if i.kind != "event"]


def linked_by(
    journey: Journey, policy: IdentityPolicy, region: str | None = None
) -> dict[str, str]:
    """Event id -> `kind value` of the highest-priority identifier it shares with an earlier event.

    Earlier means earlier in journey order (`occurred_at`, then event id), so the answer does
    not depend on the order events arrived in. An event sharing nothing with an earlier one
    (the journey's first, or one a later event joined to it) is absent: it started this
    customer's thread. Junk and blocked identifiers never count. O(identifiers) per journey.
    """
    seen: set[str] = set()
    links: dict[str, str] = {}
    # A customer's events mostly carry the same identifiers: each set is ranked once.
    ranked: dict[tuple[str | None, ...], _Ranked] = {}
    for event in journey.events:
        if event.type in DECISION_TYPES:
            ids, keys = _ranked(event, policy, region)
        else:
            values = event.customer.identifier_values()
            found = ranked.get(values)
            if found is None:
                found = ranked[values] = _ranked(event, policy, region)
            ids, keys = found
        if not seen.isdisjoint(keys):
            shared = next(i for i, own in ids if not seen.isdisjoint(own))
            links[event.event_id] = f"{shared.kind} {shared.value}"
        seen.update(keys)
    return links


_Ranked = tuple[tuple[tuple[NormalisedId, tuple[str, ...]], ...], frozenset[str]]


def _ranked(event: Event, policy: IdentityPolicy, region: str | None) -> _Ranked:
    """An event's usable identifiers by priority, each with its link keys, and all those keys."""
    ids = sorted(
        _usable(identity_ids(event, region, policy)),
        key=lambda i: (policy.rank(i.kind), i.key),
    )
    ranked = tuple((ident, link_keys(ident)) for ident in ids)
    return ranked, frozenset(key for _, own in ranked for key in own)
