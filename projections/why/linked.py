"""The identifier that linked each event of a journey, from the journey's events alone."""

from __future__ import annotations

from collections.abc import Iterable

from projections.identifiers import NormalisedId, identity_ids
from projections.identity import IdentityPolicy
from projections.journey import Journey


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
    for event in journey.events:
        ids = sorted(
            _usable(identity_ids(event, region, policy)),
            key=lambda i: (policy.rank(i.kind), i.key),
        )
        shared = next((i for i in ids if any(k in seen for k in link_keys(i))), None)
        if shared is not None:
            links[event.event_id] = f"{shared.kind} {shared.value}"
        seen.update(k for i in ids for k in link_keys(i))
    return links
