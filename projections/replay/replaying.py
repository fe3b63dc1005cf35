"""The replay itself: one customer's journey, flags and knowledge as they stood at `as_of`.

See the `projections.replay` package docstring for what "as it stood" means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from projections.flags import Flag
from projections.identifiers import NormalisedId, customer_ids
from projections.journey import event_order, same_content
from projections.knowledge import Knowledge, knowledge
from projections.ledger import Ledger
from projections.replay.query import CUSTOMER_ID, Query, parse_query
from projections.replay.resolution import Resolution, resolve
from projections.replay.visibility import first_visible
from projections.rules import Detector
from projections.settings import FoldSettings
from projections.view import JourneyView, view
from schemas.errors import InvalidWindowError
from schemas.events import Event


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


def events_to_fold(query: Query, events: list[Event], settings: FoldSettings) -> list[Event]:
    """The events of the tenants where the query can find a journey; all for a customer id.

    Tenants never share customers, so another tenant's events cannot change the journey found:
    only tenants with an event carrying the identifier (a phone by its national number, in any
    spelling, junk and blocked ones too) are folded. A customer id is looked for in every tenant.
    """
    if query.kind == CUSTOMER_ID:
        return events
    carries: dict[str, bool] = {}
    for event in events:
        tenant = event.tenant
        if not carries.get(tenant):
            region = settings.region_for(tenant)
            carries[tenant] = _carries(query.normalised(region), event, region)
    return [event for event in events if carries[event.tenant]]


def _carries(wanted: NormalisedId, event: Event, region: str | None) -> bool:
    for ident in customer_ids(event.customer, region):
        if ident.key == wanted.key:
            return True
        phone = ident.phone
        if phone is not None and wanted.phone is not None and phone.nsn == wanted.phone.nsn:
            return True
    return False


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
    settings = settings.with_decisions(upto)
    ledger = Ledger(settings)
    ledger.add_all(events_to_fold(parsed, upto, settings))
    resolution = resolve(parsed, ledger, unique, as_of, settings)
    journey = ledger.journeys[(resolution.tenant, resolution.customer_id)]
    held = ledger.conflicts_of(journey.tenant, journey.customer_id)
    journey_view = view(journey, as_of, settings, extra_rules, held=held, why=ledger.why(journey))
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
