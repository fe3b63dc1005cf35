"""What a journey looks like to its readers: identifiers with their systems, events, flags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from projections.flag_changes import flag_snapshot
from projections.flags import Flag, sort_flags
from projections.identifiers import customer_ids
from projections.identity import IDENTITY_CONFLICT
from projections.journey import Journey, Merge
from projections.rules import Detector, detect
from projections.settings import FoldSettings
from schemas.codec import event_to_dict
from schemas.events import HANDLING_TYPES, IDENTIFIER_KINDS, Event
from schemas.outputs import FlagSnapshot


@dataclass(frozen=True, slots=True)
class IdentifierSeen:
    """One normalised identifier of the customer and the systems that supplied it."""

    kind: str
    value: str
    systems: tuple[str, ...]
    not_matched: str | None = None
    """Why the identifier is not used for matching (junk, blocked), or None when it links."""


@dataclass(frozen=True, slots=True)
class JourneyView:
    """A journey as of a moment: its identifiers, timeline and flags."""

    tenant: str
    customer_id: str
    as_of: datetime
    identifiers: tuple[IdentifierSeen, ...]
    events: tuple[Event, ...]
    flags: tuple[Flag, ...]
    names: tuple[str, ...] = ()
    linked_by: Mapping[str, str] | None = None
    """Event id -> `kind value` of the identifier that joined it (absent: it came first);
    None where the reader did not ask (`projections.why.linked_by` works it out)."""
    merges: tuple[Merge, ...] | None = None


def identifiers_of(journey: Journey, settings: FoldSettings) -> tuple[IdentifierSeen, ...]:
    """Every identifier the journey holds, normalised, with the systems that supplied it.

    A phone written nationally is shown under its international spelling when the journey
    holds exactly one international number it stitches to.
    """
    region = settings.region_for(journey.tenant)
    policy = settings.identity_for(journey.tenant)
    found: dict[tuple[str, str], set[str]] = {}
    refused: dict[tuple[str, str], str] = {}
    nationals: dict[str, str] = {}
    internationals: dict[str, set[str]] = {}
    for event in journey.events:
        if event.type in HANDLING_TYPES:
            continue  # a person's action names the customer; no system supplied it
        for ident in customer_ids(event.customer, region):
            systems = found.get((ident.kind, ident.value))
            if systems is not None:
                # the same kind and value judge alike: only the system is new
                systems.add(event.source.system)
                continue
            found[(ident.kind, ident.value)] = {event.source.system}
            reason = ident.unusable or policy(ident)
            if reason is not None:
                refused[(ident.kind, ident.value)] = reason
                continue
            phone = ident.phone
            if phone is not None and phone.national_key is not None:
                if phone.country_code is None:
                    nationals[ident.value] = phone.nsn
                else:
                    internationals.setdefault(phone.nsn, set()).add(ident.value)
    for value, nsn in nationals.items():
        spellings = internationals.get(nsn, set())
        if len(spellings) == 1:
            systems = found.pop(("phone", value))
            found[("phone", next(iter(spellings)))] |= systems
    order = {kind: i for i, kind in enumerate(IDENTIFIER_KINDS)}
    return tuple(
        IdentifierSeen(kind, value, tuple(sorted(systems)), refused.get((kind, value)))
        for (kind, value), systems in sorted(found.items(), key=lambda i: (order[i[0][0]], i[0][1]))
    )


def view(
    journey: Journey,
    as_of: datetime,
    settings: FoldSettings,
    extra_rules: dict[str, Detector] | None = None,
    held: Iterable[Flag] = (),
    why: tuple[Mapping[str, str], Iterable[Merge] | None] | None = None,
) -> JourneyView:
    """Evaluate a journey's flags as of a moment and gather what readers need.

    Only events that had occurred by `as_of` count: later ones are neither shown nor evaluated.
    `held` are the journey's `IDENTITY_CONFLICT` flags (links a limit held back), shown when
    they had opened by `as_of`. `why` gives the identifier that linked each event and the
    journey's merges, as the ledger recorded them (None where the reader does not know them).
    """
    if journey.events and journey.events[-1].occurred_at > as_of:
        journey = replace(
            journey, events=tuple(e for e in journey.events if e.occurred_at <= as_of)
        )
    names = tuple(sorted({e.customer.name for e in journey.events if e.customer.name}))
    return JourneyView(
        tenant=journey.tenant,
        customer_id=journey.customer_id,
        as_of=as_of,
        identifiers=identifiers_of(journey, settings),
        events=tuple(journey.events),
        flags=sort_flags(
            (
                *detect(journey.events, as_of, settings.rules, extra_rules),
                *(flag for flag in held if flag.opened_at <= as_of),
            )
        ),
        names=names,
        linked_by=None
        if why is None
        else {e.event_id: why[0][e.event_id] for e in journey.events if e.event_id in why[0]},
        merges=None if why is None or why[1] is None else tuple(m for m in why[1] if m.at <= as_of),
    )


def flag_to_dict(flag: Flag) -> dict[str, Any]:
    """A flag as a JSON-ready dict (as the flag topic carries it)."""
    return flag_snapshot(flag).to_document()


def _identifier_to_dict(ident: IdentifierSeen) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kind": ident.kind,
        "value": ident.value,
        "systems": list(ident.systems),
    }
    if ident.not_matched is not None:
        document["not_used_for_matching"] = ident.not_matched
    return document


def view_to_dict(journey_view: JourneyView) -> dict[str, Any]:
    """A journey view as a JSON-ready dict (the shape `journeys check --format json` prints)."""
    document: dict[str, Any] = {
        "customer_id": journey_view.customer_id,
        "tenant": journey_view.tenant,
        "as_of": journey_view.as_of.isoformat(),
        "names": list(journey_view.names),
        "identifiers": [_identifier_to_dict(i) for i in journey_view.identifiers],
        "events": [event_to_dict(e) for e in journey_view.events],
        "flags": [flag_to_dict(f) for f in journey_view.flags],
    }
    if journey_view.linked_by is not None:
        document["linked_by"] = dict(journey_view.linked_by)
    if journey_view.merges is not None:
        document["merges"] = [merge_to_dict(m) for m in journey_view.merges]
    return document


def merge_to_dict(merge: Merge) -> dict[str, Any]:
    """A merge as a JSON-ready dict (`decision` only when one applied)."""
    document: dict[str, Any] = {
        "at": merge.at.isoformat(),
        "event_id": merge.event_id,
        "identifier": merge.identifier,
        "from_customer": merge.from_customer,
        "into": merge.into,
    }
    if merge.decision is not None:
        document["decision"] = merge.decision
    return document


MAX_HELD_SHOWN = 50
"""The most `IDENTITY_CONFLICT` flags one journey read shows: a value shared very widely (a
switchboard) can name one customer in many; past this the latest opened are shown."""

LEFT_OUT = "conflicts_left_out"
"""The journey document's count of `IDENTITY_CONFLICT` flags `with_held` left out (only when any)."""


def with_held(
    document: dict[str, Any], held: Iterable[FlagSnapshot], limit: int = MAX_HELD_SHOWN
) -> dict[str, Any]:
    """A journey document (`view_to_dict`) with its customer's open `IDENTITY_CONFLICT` flags
    as the flag topic carries them (live, ingest opens them: the journey the journey stage
    keeps never holds them), shown as the pure fold's `view` shows them: open by the journey's
    `as_of`, among its flags in the order `sort_flags` gives. Other flags in `held` are left to
    the journey's own rules. Past `limit` conflicts, the latest opened are kept and
    `conflicts_left_out` says how many were not."""
    as_of = datetime.fromisoformat(document["as_of"])
    present = {flag["flag_id"] for flag in document["flags"]}
    found: list[tuple[tuple[datetime, str, str], FlagSnapshot]] = []
    for flag in held:
        opened = _opened(flag.opened_at)
        if flag.rule != IDENTITY_CONFLICT or flag.status != "open" or flag.flag_id in present:
            continue
        if opened is None or opened > as_of:
            continue  # not yet open at the moment shown (or not a moment: never shown)
        present.add(flag.flag_id)
        found.append(((opened, flag.rule, flag.flag_id), flag))
    if not found:
        return document
    found.sort(key=lambda item: item[0])
    shown = [(order, flag.to_document()) for order, flag in (found[-limit:] if limit > 0 else [])]
    own = [(_order(flag), flag) for flag in document["flags"]]
    flags = [flag for _, flag in sorted([*own, *shown], key=lambda item: item[0])]
    result = {**document, "flags": flags}
    if len(found) > len(shown):
        result[LEFT_OUT] = len(found) - len(shown)
    return result


def _opened(text: str) -> datetime | None:
    """An aware moment from a flag's `opened_at`, or None when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def _order(flag: dict[str, Any]) -> tuple[datetime, str, str]:
    """A shown flag's place among its journey's flags (`sort_flags`' order)."""
    return (datetime.fromisoformat(flag["opened_at"]), flag["rule"], flag["flag_id"])
