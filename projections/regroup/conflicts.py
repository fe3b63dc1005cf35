"""The live `IDENTITY_CONFLICT`: opened on every customer a held link would have joined,
resolved by the person's decision about the identifier.

Offline the fold applies decisions from the start, so a held link a person later decided on
never shows a conflict; live, the flag opened when the link was held and resolves (with the
decision as its resolution) when the decision arrives. Ingest keeps each conflict flag it
opened (`to_document`) as a record of its own per identifier, customer and flag, so a later
event holding the same link opens nothing again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from projections.flags import Flag, Severity
from projections.identifiers import HASHED_MARK, GraphHasher, normalise
from projections.identity import IDENTITY_CONFLICT, IdentityChange, blocked_key, conflict_flag
from schemas.events import Event


def held(
    change: IdentityChange, event: Event, region: str | None, hasher: GraphHasher | None = None
) -> list[tuple[str, str, Flag]]:
    """(decided key of the identifier, customer, flag) for each customer a held link names."""
    found: list[tuple[str, str, Flag]] = []
    for conflict in change.conflicts:
        key = value_key(conflict.kind, conflict.value, region, hasher)
        flag = conflict_flag(conflict, event)
        found.extend((key, customer, flag) for customer in conflict.customers)
    return found


def value_key(kind: str, value: str, region: str | None, hasher: GraphHasher | None) -> str:
    """The decided key of a value a conflict names: normalised from the clear value, or, in a
    hashed graph, read off the hash the conflict names (`NormalisedId.named`)."""
    if hasher is None:
        return blocked_key(normalise(kind, value, region))
    return f"{kind}:{value[value.index(HASHED_MARK) :]}"


def to_document(customer: str, flag: Flag) -> dict[str, Any]:
    """What ingest keeps of a conflict flag it opened, to resolve it later."""
    return {
        "customer": customer,
        "flag_id": flag.flag_id,
        "message": flag.message,
        "event_ids": list(flag.event_ids),
        "opened_at": flag.opened_at.isoformat(),
        "systems": list(flag.systems),
        "sites": list(flag.sites),
    }


def from_document(document: dict[str, Any]) -> tuple[str, Flag]:
    """The customer and the conflict flag `to_document` kept."""
    return str(document["customer"]), Flag(
        flag_id=document["flag_id"],
        rule=IDENTITY_CONFLICT,
        severity=Severity.MEDIUM,
        message=document["message"],
        event_ids=tuple(document["event_ids"]),
        opened_at=datetime.fromisoformat(document["opened_at"]),
        systems=tuple(document["systems"]),
        sites=tuple(document["sites"]),
    )


def resolution(decision: Event) -> str:
    """The resolution a person's decision gives the conflicts on its identifier."""
    who = getattr(decision.payload, "decided_by", "?")
    why = getattr(decision.payload, "reason", "")
    verb = decision.type.removeprefix("identity.").replace("_", " ")
    return f"{verb} by {who} on {decision.occurred_at.date().isoformat()}: {why}"


def resolved(flags: Iterable[Flag], decision: Event) -> list[Flag]:
    """The conflict flags as the decision resolves them."""
    text = resolution(decision)
    return [
        replace(flag, resolved_at=max(decision.occurred_at, flag.opened_at), resolution=text)
        for flag in flags
    ]
