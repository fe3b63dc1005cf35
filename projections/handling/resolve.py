"""A person's merge or split named by customer ids, turned into the identifier it is about.

Pure: decisions stay events naming an identifier (customer ids change as customers merge and
split, an identifier does not, and replay applies decisions by identifier), so a decision
asked for by customer id is resolved once, when it is made, from the journeys as the ledger
shows them then (the API's journey documents, `projections.view.view_to_dict`):

- a merge of two customers goes through the identifier whose link was held between them: one
  an open `IDENTITY_CONFLICT` flag names with both customers, or one both journeys hold (they
  are two customers, so it does not link them: a limit held it, or a person blocked or split
  it). Junk never links, so it is never a candidate. Several candidates: the person names one
  (`via`): confirming a value lets it merge past the limits for every customer of the tenant.
- a split of a customer goes along the identifier of the merges its journey lists; several
  (distinct identifiers): the person names one (`via`), which must be an identifier the
  customer holds.

Each refusal says what to do next; costs are O(identifiers + flags + merges) of the journeys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from projections.identifiers import held_spellings, normalise
from projections.identity import IDENTITY_CONFLICT, blocked_key
from projections.replay import CUSTOMER_ID, parse_query
from schemas.errors import JourneyLedgerError
from schemas.events import IDENTIFIER_KINDS

_CONFLICT = re.compile(r"^([a-z_]+) (.+?) \([^()]*\) would have joined (.+?): ")
"""An `IDENTITY_CONFLICT` message (`projections.identity.conflict_flag`): kind, value, customers."""

_CUSTOMER = re.compile(r"cus_[0-9a-f]{16}")

MAX_LISTED = 10
"""The candidates an error lists at most (the rest are counted)."""


class ResolutionError(JourneyLedgerError, LookupError):
    """A decision named by customer ids cannot be resolved to one identifier; `candidates`
    lists the `KIND:VALUE`s the person may name instead (empty: none was found)."""

    hint = 'name the identifier: KIND:VALUE (or --via / "via" with one of those listed)'

    def __init__(
        self, message: str, candidates: Sequence[str] = (), *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.candidates = tuple(candidates)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A decision resolved: the identifier (`KIND:VALUE`) and the customer ids it concerns."""

    identifier: str
    customers: tuple[str, ...]


def _keys(kind: str, value: str, region: str | None) -> frozenset[str]:
    """The keys a value is held under (a phone's national spelling too)."""
    return frozenset(held_spellings(f"{kind} {value}", region))


def _linkable(kind: str, value: str, region: str | None) -> bool:
    return kind in IDENTIFIER_KINDS and normalise(kind, value, region).unusable is None


def _identifiers(journey: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(i.get("kind")), str(i.get("value")))
        for i in journey.get("identifiers", ())
        if isinstance(i, Mapping)
    ]


def _order(pairs: Iterable[tuple[str, str]]) -> list[str]:
    rank = {kind: i for i, kind in enumerate(IDENTIFIER_KINDS)}
    return [f"{k}:{v}" for k, v in sorted(set(pairs), key=lambda p: (rank.get(p[0], 99), p[1]))]


def conflict_identifier(flag: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]] | None:
    """The (kind, value, customers) an `IDENTITY_CONFLICT` flag's message names, or None."""
    if flag.get("rule") != IDENTITY_CONFLICT:
        return None
    found = _CONFLICT.match(str(flag.get("message", "")))
    if found is None:
        return None
    return found[1], found[2], tuple(_CUSTOMER.findall(found[3]))


def held_between(
    first: Mapping[str, Any], second: Mapping[str, Any], region: str | None
) -> list[str]:
    """The identifiers (`KIND:VALUE`) whose link is held between two customers' journeys: named
    by an open `IDENTITY_CONFLICT` flag of either with both customers, or held by both (and
    not junk); in the tenant-independent kind order."""
    ids = {str(first.get("customer_id")), str(second.get("customer_id"))}
    found: set[tuple[str, str]] = set()
    for journey in (first, second):
        for flag in journey.get("flags", ()):
            named = conflict_identifier(flag) if isinstance(flag, Mapping) else None
            if named is not None and flag.get("status") == "open" and ids <= set(named[2]):
                found.add((named[0], named[1]))
    theirs: dict[str, tuple[str, str]] = {}
    for kind, value in _identifiers(second):
        if _linkable(kind, value, region):
            theirs.update(dict.fromkeys(_keys(kind, value, region), (kind, value)))
    for kind, value in _identifiers(first):
        if _linkable(kind, value, region) and _keys(kind, value, region) & theirs.keys():
            found.add((kind, value))
    # one value named twice (a flag's spelling and a journey's) counts once
    seen: set[str] = set()
    unique = []
    for kind, value in sorted(found):
        keys = _keys(kind, value, region)
        if not keys & seen:
            seen |= keys
            unique.append((kind, value))
    return _order(unique)


def _named(via: str, candidates: Sequence[str], region: str | None) -> str | None:
    """The candidate `via` names (same normalised value), or None."""
    query = parse_query(via)
    if query.kind == CUSTOMER_ID:
        return None
    wanted = _keys(query.kind, query.value, region)
    for candidate in candidates:
        kind, _, value = candidate.partition(":")
        if _keys(kind, value, region) & wanted:
            return candidate
    return None


def _listed(candidates: Sequence[str]) -> str:
    shown = ", ".join(candidates[:MAX_LISTED])
    more = len(candidates) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def resolve_merge(
    first: Mapping[str, Any],
    second: Mapping[str, Any],
    region: str | None,
    via: str | None = None,
) -> Resolved:
    """The identifier a confirmed merge of two customers is about (`ResolutionError` when
    there is none, or several and `via` names none of them)."""
    customers = (str(first.get("customer_id")), str(second.get("customer_id")))
    if customers[0] == customers[1]:
        raise ResolutionError(
            f"{customers[0]} is already one customer (both ids lead to it)",
            hint="nothing to merge; to keep a value from joining people, block or split it",
        )
    candidates = held_between(first, second, region)
    if not candidates:
        raise ResolutionError(
            f"no identifier is held between {customers[0]} and {customers[1]}: no open "
            "IDENTITY_CONFLICT names both and they hold no linking identifier in common",
            hint="name the identifier that joins them as KIND:VALUE "
            "(journeys identity merge KIND:VALUE)",
        )
    if via is not None:
        chosen = _named(via, candidates, region)
        if chosen is None:
            raise ResolutionError(
                f"{via} is not held between {customers[0]} and {customers[1]}; "
                f"held: {_listed(candidates)}",
                candidates,
            )
        return Resolved(chosen, customers)
    if len(candidates) > 1:
        raise ResolutionError(
            f"{len(candidates)} identifiers are held between {customers[0]} and "
            f"{customers[1]}: {_listed(candidates)}",
            candidates,
            hint='confirm one at a time: name it with --via KIND:VALUE (API: "via")',
        )
    return Resolved(candidates[0], customers)


def _spellings(kind: str, value: str, region: str | None) -> frozenset[str]:
    """Every form a value is named by: its keys, and the decided form a merge back lists
    (`phone 1134960000`: a phone by its national number)."""
    return _keys(kind, value, region) | {
        blocked_key(normalise(kind, value, region)),
        f"{kind}:{value}",
    }


def merges_of(
    journey: Mapping[str, Any], region: str | None
) -> list[tuple[Mapping[str, Any], tuple[str, str]]]:
    """The journey's listed merges, oldest first, each with the identifier of the journey it
    went through (one that no longer links, split or blocked since, undid it: left out)."""
    linking: dict[str, tuple[str, str]] = {}
    for ident in journey.get("identifiers", ()):
        if not isinstance(ident, Mapping) or ident.get("not_used_for_matching"):
            continue
        kind, value = str(ident.get("kind")), str(ident.get("value"))
        if _linkable(kind, value, region):
            linking.update(dict.fromkeys(_spellings(kind, value, region), (kind, value)))
    kept = []
    for merge in journey.get("merges", ()) or ():
        kind, _, value = str(merge.get("identifier", "")).partition(" ")
        if kind not in IDENTIFIER_KINDS:
            continue
        found = next(
            (linking[k] for k in sorted(_spellings(kind, value, region)) if k in linking), None
        )
        if found is not None:
            kept.append((merge, found))
    return sorted(kept, key=lambda m: (str(m[0].get("at")), str(m[0].get("event_id"))))


def resolve_split(
    journey: Mapping[str, Any], region: str | None, via: str | None = None
) -> Resolved:
    """The identifier a split of a customer goes along (`ResolutionError` when its journey
    lists no merge, or merges through several identifiers and `via` names none)."""
    customer = str(journey.get("customer_id"))
    merges = merges_of(journey, region)
    through = _order(found for _, found in merges)
    if via is not None:
        held = _order(
            (kind, value) for kind, value in _identifiers(journey) if _linkable(kind, value, region)
        )
        chosen = _named(via, held, region)
        if chosen is None:
            raise ResolutionError(
                f"{customer} holds no linking identifier {via}"
                + (f"; its merges went through {_listed(through)}" if through else ""),
                through,
            )
        return Resolved(chosen, (customer,))
    if not through:
        raise ResolutionError(
            f"{customer} lists no merge to split along (merges from before merges were "
            "recorded are not listed)",
            hint="name the identifier to split along as KIND:VALUE "
            "(journeys identity split KIND:VALUE, or --via)",
        )
    if len(through) > 1:
        listed = "; ".join(
            f"{m.get('at')} through {m.get('identifier')} from {m.get('from_customer')}"
            for m, _ in merges[:MAX_LISTED]
        )
        raise ResolutionError(
            f"{customer} was merged through {len(through)} identifiers: {listed}",
            through,
            hint='split along one: name it with --via KIND:VALUE (API: "via")',
        )
    return Resolved(through[0], (customer,))
