"""Replay: one customer's journey, flags and knowledge as they stood at a past moment.

Pure: the caller reads the events (from the log, a file, a test) and passes them in, in any
order, duplicates included; nothing here reads a clock or does I/O.

What "as it stood at `as_of`" means here: only events whose `occurred_at` is at or before
`as_of` are considered, for identity as for flags. An identity link made by a later event
does not pull earlier events into the journey, and the flags are `detect(events, as_of)` of
that journey: exactly what `journeys check --as-of T` gives for the same events cut at T.
`occurred_at` (when it happened in the source system), not the time the ledger received the
event, is the clock: it is what the rules reason with, and what a source system knew at T
is what its own events up to T said. An event that arrived late is shown at the moment it
happened; a caller who wants only what had reached the ledger by T can cut the events it
passes by their log time.

A flag's `first_visible_at` is the earliest moment t <= `as_of` at which a replay as of t
would have shown a flag with that id (open or resolved): `detect` over the events up to t,
grouped by identity as it stood at t. For a flag that opens when time passes (an unanswered
enquiry) that is its deadline: it shows at any moment after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, NoReturn

from pydantic import ValidationError

from projections.flags import Flag
from projections.formatting import format_moment
from projections.identifiers import NormalisedId, identity_ids, normalise
from projections.identity import customer_id_for
from projections.journey import Journey, event_order, same_content
from projections.knowledge import Knowledge, knowledge, knowledge_to_dict
from projections.ledger import Ledger
from projections.rules import Detector, detect, next_deadline
from projections.rules.readers import field_name
from projections.settings import FoldSettings
from projections.view import JourneyView, flag_to_dict, view, view_to_dict
from schemas.codec import event_to_dict, problems_of
from schemas.errors import (
    AmbiguousCustomerError,
    CustomerNotFoundError,
    InvalidWindowError,
    UnknownIdentifierError,
)
from schemas.events import IDENTIFIER_KINDS, Customer, Event
from schemas.redaction import mask_text

CUSTOMER_ID = "customer_id"
"""The query kind of a customer id (`cus_…`)."""

_CUSTOMER_ID = re.compile(r"^cus_[0-9a-f]{16}$")
_JUST_AFTER = timedelta(microseconds=1)


# --- the query ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """What the reviewer asked for: an identifier kind and its value as given, or a customer id."""

    kind: str
    """One of `IDENTIFIER_KINDS`, or `customer_id`."""
    value: str

    def normalised(self, region: str | None) -> NormalisedId:
        """The identifier normalised as events of a tenant with this phone region are."""
        if self.kind == CUSTOMER_ID:
            raise ValueError("a customer id is not normalised")
        return normalise(self.kind, self.value, region)

    def __str__(self) -> str:
        return self.value if self.kind == CUSTOMER_ID else f"{self.kind}:{self.value}"


def parse_query(text: str) -> Query:
    """Parse `KIND:VALUE` (any identifier kind, common aliases such as `registration:`) or `cus_…`.

    The value is validated as an event's customer field would be. Raises
    `UnknownIdentifierError` naming what is wrong.
    """
    stripped = text.strip()
    if not stripped:
        raise UnknownIdentifierError("the identifier is empty")
    if _CUSTOMER_ID.match(stripped.lower()):
        return Query(CUSTOMER_ID, stripped.lower())
    kind_text, colon, value = stripped.partition(":")
    if not colon:
        if stripped.lower().startswith("cus_"):
            raise UnknownIdentifierError(
                f"{stripped!r} is not a customer id: cus_ followed by 16 hex digits"
            )
        raise UnknownIdentifierError(f"{_safe(stripped)!r} names no kind of identifier")
    kind = field_name(kind_text)
    value = value.strip()
    if kind in (CUSTOMER_ID, "customer", "cus"):
        return parse_query(value) if _CUSTOMER_ID.match(value.lower()) else _bad_id(value)
    if kind == "name":
        raise UnknownIdentifierError("a name is not an identifier: two people can share a name")
    if kind not in IDENTIFIER_KINDS:
        raise UnknownIdentifierError(f"unknown kind of identifier {kind_text.strip()!r}")
    masked, had_card = mask_text(value)
    if had_card:
        raise UnknownIdentifierError(
            f"{kind}: {masked!r} holds a card number, which the ledger never stores",
            hint="query by card_token, order_id or another identifier",
        )
    try:
        # The same validation as an event's customer field, so a query that passes can match.
        Customer.model_validate({kind: value})
    except ValidationError as exc:
        reasons = "; ".join(p.reason for p in problems_of(exc, {kind: value}))
        raise UnknownIdentifierError(f"{kind}: {_safe(value)!r} is not valid: {reasons}") from None
    return Query(kind, value)


def _bad_id(value: str) -> NoReturn:
    raise UnknownIdentifierError(
        f"{_safe(value)!r} is not a customer id: cus_ followed by 16 hex digits"
    )


def _safe(text: str) -> str:
    return mask_text(text)[0]


def parse_identifier(text: str, region: str | None = None) -> str:
    """The identity key a query names (`phone:+44:7700900123`), or the customer id it is.

    Raises `UnknownIdentifierError` naming what is wrong.
    """
    query = parse_query(text)
    return query.value if query.kind == CUSTOMER_ID else query.normalised(region).key


# --- the replay value --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """How the query was resolved to one journey as identity stood at `as_of`."""

    query: Query
    tenant: str
    customer_id: str
    """The journey replayed, under its id as of `as_of`."""
    matched_key: str | None
    """The identity key the journey was found by (None when found through its fragments)."""
    requested_id: str | None = None
    """The customer id asked for, when the query was one."""
    note: str | None = None
    """Why `customer_id` is not the id asked for (a merge, or an id formed later)."""

    @property
    def superseded(self) -> bool:
        """Whether the customer id asked for was not the journey's id at `as_of`."""
        return self.requested_id is not None and self.requested_id != self.customer_id


@dataclass(frozen=True, slots=True)
class FlagReplay:
    """A flag as it stood at `as_of`, and when and to whom it first became visible."""

    flag: Flag
    first_visible_at: datetime
    first_visible_systems: tuple[str, ...]
    """The systems whose events made up the flag when it first showed."""


@dataclass(frozen=True, slots=True)
class ReplayStats:
    """What the replay read: events given, duplicates and conflicts ignored, events cut."""

    events_read: int
    duplicates: int
    conflicts: int
    after_as_of: int


@dataclass(frozen=True, slots=True)
class Replay:
    """One customer's journey replayed as of a moment, with its window, flags and knowledge."""

    resolution: Resolution
    as_of: datetime
    window_from: datetime | None
    window_to: datetime
    view: JourneyView
    """The whole journey up to `as_of`, with its flags: what `journeys check` shows."""
    timeline: tuple[Event, ...]
    """The journey's events inside [window_from, window_to], for display."""
    flags: tuple[FlagReplay, ...]
    knowledge: Knowledge
    stats: ReplayStats

    @property
    def open_flags(self) -> int:
        """How many flags were open at `as_of`."""
        return sum(1 for f in self.flags if f.flag.status == "open")


# --- replaying ---------------------------------------------------------------------------------


def _check_moments(as_of: datetime, from_: datetime | None, to: datetime | None) -> datetime:
    for name, moment in (("as_of", as_of), ("from", from_), ("to", to)):
        if moment is not None and moment.utcoffset() is None:
            raise InvalidWindowError(f"{name}: {moment.isoformat()} has no UTC offset")
    end = as_of if to is None else to
    if end > as_of:
        raise InvalidWindowError(
            f"to ({end.isoformat()}) is after as_of ({as_of.isoformat()}); "
            "nothing after as_of is replayed"
        )
    if from_ is not None and from_ > end:
        raise InvalidWindowError(f"from ({from_.isoformat()}) is after to ({end.isoformat()})")
    return end


def unique_events(events: Iterable[Event]) -> tuple[list[Event], int, int]:
    """Events once each, the first of an id kept (as the ledger does); duplicates, conflicts."""
    kept: dict[tuple[str, str], Event] = {}
    duplicates = conflicts = 0
    for event in events:
        key = (event.tenant, event.event_id)
        first = kept.get(key)
        if first is None:
            kept[key] = event
        elif same_content(first, event):
            duplicates += 1
        else:
            conflicts += 1
    return list(kept.values()), duplicates, conflicts


def replay(
    events: Iterable[Event],
    query: str | Query,
    as_of: datetime,
    settings: FoldSettings,
    *,
    from_: datetime | None = None,
    to: datetime | None = None,
    tenant: str | None = None,
    extra_rules: dict[str, Detector] | None = None,
) -> Replay:
    """Replay the journey a query names as it stood at `as_of` (see the module docstring).

    `events` are every tenant's decoded events as read from the log, in any order, with
    duplicates. `from_`/`to` only narrow the timeline shown; flags and knowledge are of the
    whole journey up to `as_of`. Raises `UnknownIdentifierError`, `CustomerNotFoundError`,
    `AmbiguousCustomerError` or `InvalidWindowError`, each saying what to do next.
    """
    parsed = parse_query(query) if isinstance(query, str) else query
    end = _check_moments(as_of, from_, to)
    unique, duplicates, conflicts = unique_events(events)
    if tenant is not None:
        unique = [e for e in unique if e.tenant == tenant]
    unique.sort(key=event_order)
    upto = [e for e in unique if e.occurred_at <= as_of]
    ledger = Ledger(settings)
    ledger.add_all(upto)
    resolution = _resolve(parsed, ledger, unique, as_of, settings)
    journey = ledger.journeys[(resolution.tenant, resolution.customer_id)]
    journey_view = view(journey, as_of, settings, extra_rules)
    timeline = tuple(
        e
        for e in journey.events
        if (from_ is None or e.occurred_at >= from_) and e.occurred_at <= end
    )
    visible = first_visible(journey.events, journey_view.flags, as_of, settings, extra_rules)
    flags = tuple(
        FlagReplay(flag, *visible.get(flag.flag_id, (as_of, flag.systems)))
        for flag in journey_view.flags
    )
    return Replay(
        resolution=resolution,
        as_of=as_of,
        window_from=from_,
        window_to=end,
        view=journey_view,
        timeline=timeline,
        flags=flags,
        knowledge=knowledge(journey, as_of, settings),
        stats=ReplayStats(
            events_read=len(unique) + duplicates + conflicts,
            duplicates=duplicates,
            conflicts=conflicts,
            after_as_of=len(unique) - len(upto),
        ),
    )


# --- resolving the query -----------------------------------------------------------------------


def _resolve(
    query: Query, ledger: Ledger, events: Sequence[Event], as_of: datetime, settings: FoldSettings
) -> Resolution:
    if query.kind == CUSTOMER_ID:
        return _resolve_customer(query, ledger, events, as_of, settings)
    found: list[Resolution] = []
    for tenant in sorted(ledger.identities):
        ident = query.normalised(settings.region_for(tenant))
        journey = ledger.find(tenant, query.kind, query.value)
        if journey is not None:
            found.append(Resolution(query, tenant, journey.customer_id, ident.key))
    if len(found) > 1:
        tenants = ", ".join(r.tenant for r in found)
        raise AmbiguousCustomerError(
            f"{query} belongs to customers of several tenants ({tenants})",
            tuple(r.customer_id for r in found),
            hint="name the tenant to replay",
        )
    if found:
        return found[0]
    raise CustomerNotFoundError(
        f"no event up to {as_of.isoformat()} carries {query}" + _later_hint(query, events, settings)
    )


def _matches(query: NormalisedId, event: Event, settings: FoldSettings) -> bool:
    region = settings.region_for(event.tenant)
    for ident in identity_ids(event, region):
        if ident.key == query.key:
            return True
        a, b = ident.phone, query.phone
        # A national spelling matches an international one with the same digits.
        if (
            a is not None
            and b is not None
            and a.national_key
            and a.nsn == b.nsn
            and (a.country_code is None or b.country_code is None)
        ):
            return True
    return False


def _later_hint(query: Query, events: Sequence[Event], settings: FoldSettings) -> str:
    for event in events:  # in journey order: the first match is the earliest
        if _matches(query.normalised(settings.region_for(event.tenant)), event, settings):
            return f"; it first appears at {event.occurred_at.isoformat()}"
    return "; no event in the log carries it"


def _key_of_id(ledger: Ledger, customer_id: str) -> tuple[str, str] | None:
    """The (tenant, key) a customer id was derived from: its smallest key when it was formed."""
    for tenant, graph in sorted(ledger.identities.items()):
        for key in sorted(graph.index):
            if customer_id_for(tenant, [key]) == customer_id:
                return tenant, key
    return None


def _merge_note(requested: str, journey: Journey, key: str, settings: FoldSettings) -> str:
    """When and by which event the requested id's key joined a smaller key (in time order)."""
    graph = Ledger(settings)
    for event in journey.events:
        graph.add(event)
        owner = graph.identities[journey.tenant].customer_of(key)
        if owner is not None and owner != requested:
            return (
                f"{requested} was merged into {journey.customer_id}: on "
                f"{format_moment(event.occurred_at)} event {event.event_id} "
                f"({event.source.system}) linked it to the customer's other identifiers"
            )
    return f"{requested} is part of {journey.customer_id} as of this moment"


def _resolve_customer(
    query: Query, ledger: Ledger, events: Sequence[Event], as_of: datetime, settings: FoldSettings
) -> Resolution:
    requested = query.value
    held = _key_of_id(ledger, requested)
    if held is not None:
        tenant, key = held
        owner = ledger.identities[tenant].customer_of(key)
        assert owner is not None
        journey = ledger.journeys[(tenant, owner)]
        note = None if owner == requested else _merge_note(requested, journey, key, settings)
        return Resolution(query, tenant, owner, key, requested, note)
    # The id was formed from an identifier that appears only after as_of: find the customer in
    # the whole log, then the journeys its identifiers were split between at as_of.
    everything = Ledger(settings)
    everything.add_all(events)
    later = _key_of_id(everything, requested)
    if later is None:
        raise CustomerNotFoundError(f"no customer {requested} in the events read")
    tenant, key = later
    owner = everything.identities[tenant].customer_of(key)
    assert owner is not None
    keys = everything.identities[tenant].members(owner)
    graph = ledger.identities.get(tenant)
    parts = sorted({o for k in keys if graph and (o := graph.customer_of(k)) is not None})
    if not parts:
        first = min(e.occurred_at for e in everything.journeys[(tenant, owner)].events)
        raise CustomerNotFoundError(
            f"{requested} has no events up to {as_of.isoformat()}; "
            f"its first event is at {first.isoformat()}"
        )
    if len(parts) > 1:
        raise AmbiguousCustomerError(
            f"{requested} did not exist yet at {as_of.isoformat()}: its events were then split "
            f"between {len(parts)} customers: {', '.join(parts)}",
            tuple(parts),
            hint="replay one of the customer ids listed, or query an identifier",
        )
    note = (
        f"{requested} was formed after this moment; as of it the customer's events were "
        f"under {parts[0]}"
    )
    return Resolution(query, tenant, parts[0], None, requested, note)


# --- first visibility --------------------------------------------------------------------------


def first_visible(
    events: Sequence[Event],
    flags: Iterable[Flag],
    as_of: datetime,
    settings: FoldSettings,
    extra_rules: dict[str, Detector] | None = None,
) -> dict[str, tuple[datetime, tuple[str, ...]]]:
    """For each flag id, the earliest moment a replay would have shown it, and its systems then.

    Walks the journey's events in time order, stitching them as the ledger would have at each
    moment (an event outside the journey can never have linked two of its events), and
    evaluates only the parts that changed at each distinct event time, plus each part's next
    deadline (`next_deadline`) before the following event. Stops once every flag is found.
    A flag not found before `as_of` (a time-based extra rule) is given `as_of`.
    """
    flags = list(flags)
    wanted = {flag.flag_id for flag in flags}
    found: dict[str, tuple[datetime, tuple[str, ...]]] = {}
    # A flag id hashes its rule: only the rules of the flags sought need to run.
    names = {flag.rule for flag in flags}
    rules = replace(settings.rules, enabled=settings.rules.enabled & names)
    extra = {name: rule for name, rule in (extra_rules or {}).items() if name in names}
    ledger = Ledger(settings)
    deadlines: dict[tuple[str, str], datetime] = {}

    def evaluate(part: Journey, moment: datetime, shown_at: datetime) -> None:
        for flag in detect(part.events, moment, rules, extra):
            if flag.flag_id in wanted and flag.flag_id not in found:
                found[flag.flag_id] = (shown_at, flag.systems)

    def flush(before: datetime) -> None:
        # A part's deadline passes with no event of its own: the time-based rule opens then.
        for key, deadline in sorted(deadlines.items(), key=lambda item: item[1]):
            if deadline < before and (part := ledger.journeys.get(key)) is not None:
                del deadlines[key]
                evaluate(part, deadline + _JUST_AFTER, deadline)

    ordered = sorted((e for e in events if e.occurred_at <= as_of), key=event_order)
    for moment, group in groupby(ordered, key=lambda e: e.occurred_at):
        if wanted <= found.keys():
            break
        flush(moment)
        changed: set[tuple[str, str]] = set()
        for event in group:
            change = ledger.add(event)
            if change is None:
                continue
            for old in change.absorbed:
                changed.discard((event.tenant, old))
                deadlines.pop((event.tenant, old), None)
            changed.add((event.tenant, change.customer_id))
        for key in sorted(changed):
            part = ledger.journeys[key]
            evaluate(part, moment, moment)
            deadline = next_deadline(part.events, moment, rules)
            if deadline is not None and deadline >= moment:
                deadlines[key] = deadline
            else:
                deadlines.pop(key, None)
    if not wanted <= found.keys():
        flush(as_of)
    return found


# --- JSON ------------------------------------------------------------------------------------------


def replay_to_dict(result: Replay) -> dict[str, Any]:
    """A replay as a JSON-ready dict (the shape is documented in `journeys.report`)."""
    resolution = result.resolution
    flagged: dict[str, list[str]] = {}
    for flag in result.view.flags:
        for event_id in flag.event_ids:
            flagged.setdefault(event_id, []).append(flag.flag_id)
    journey = view_to_dict(result.view)
    return {
        "query": {
            "text": str(resolution.query),
            "kind": resolution.query.kind,
            "matched_key": resolution.matched_key,
        },
        "resolution": {
            "tenant": resolution.tenant,
            "customer_id": resolution.customer_id,
            "requested_id": resolution.requested_id,
            "superseded": resolution.superseded,
            "note": resolution.note,
        },
        "as_of": result.as_of.isoformat(),
        "window": {
            "from": result.window_from.isoformat() if result.window_from else None,
            "to": result.window_to.isoformat(),
        },
        "summary": {
            "events": len(result.view.events),
            "events_in_window": len(result.timeline),
            "flags": len(result.flags),
            "open_flags": result.open_flags,
            "systems": list(result.knowledge.system_names),
            "events_read": result.stats.events_read,
            "duplicates": result.stats.duplicates,
            "conflicts": result.stats.conflicts,
            "after_as_of": result.stats.after_as_of,
        },
        "names": journey["names"],
        "identifiers": journey["identifiers"],
        "timeline": [
            {
                "event_id": e.event_id,
                "occurred_at": e.occurred_at.isoformat(),
                "system": e.source.system,
                "type": e.type,
                "flag_ids": sorted(flagged.get(e.event_id, [])),
                "event": event_to_dict(e),
            }
            for e in result.timeline
        ],
        "flags": [
            {
                **flag_to_dict(f.flag),
                "first_visible_at": f.first_visible_at.isoformat(),
                "first_visible_systems": list(f.first_visible_systems),
            }
            for f in result.flags
        ],
        "knowledge": knowledge_to_dict(result.knowledge),
    }
