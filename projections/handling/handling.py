"""A flag's handling, folded from the `flag.*` events people wrote, and applied to the flags.

Pure: the rules find the flags from what the source systems said; this step then lays over
them what people did about each one. A flag resolved by hand stays resolved until an event of
the flag dated after that resolution arrives: the contradiction is back, and the flag reopens
with that reason. Notes and actions kept per flag are bounded (the latest ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from projections.flags import Flag
from projections.formatting import format_moment
from schemas.events import HANDLING_TYPES, Event, FlagAction
from schemas.people import FlagSnoozed
from schemas.types import parse_timestamp

HandlingState = Literal["unacknowledged", "acknowledged", "assigned", "snoozed", "resolved"]
"""Where a flag stands with people: nobody has seen it, up to resolved by hand."""

ACTIONS: dict[str, str] = {
    "flag.acknowledged": "acknowledge",
    "flag.assigned": "assign",
    "flag.noted": "note",
    "flag.resolved": "resolve",
    "flag.reopened": "reopen",
    "flag.snoozed": "snooze",
}
"""Each handling event type and the action the API calls it by."""

EVENT_TYPE_OF: dict[str, str] = {action: type_ for type_, action in ACTIONS.items()}
"""Each action and the event type that records it."""

MAX_NOTES = 20
"""The notes a flag keeps (the latest): a long-running flag must not grow without bound."""

MAX_ACTIONS = 50
"""The actions a flag's handling lists (the latest); the counts stay exact."""


@dataclass(frozen=True, slots=True)
class Note:
    """A note on a flag: when, by whom, what."""

    at: datetime
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a person did to a flag, with the event that records it."""

    action: str
    at: datetime
    by: str
    event_id: str
    note: str | None = None
    assignee: str | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Handling:
    """What people did about one flag, as of a moment."""

    state: HandlingState = "unacknowledged"
    assignee: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    """When a person resolved it by hand (None once reopened)."""
    resolved_by: str | None = None
    snoozed_until: datetime | None = None
    reopened_because: str | None = None
    """Why a flag resolved by hand is open again: a person, or a new contradicting event."""
    notes: tuple[Note, ...] = ()
    actions: tuple[Action, ...] = ()
    action_count: int = 0


@dataclass(slots=True)
class _Fold:
    """One flag's handling while its actions are read in journey order."""

    assignee: str | None = None
    acknowledged: tuple[datetime, str] | None = None
    resolved: tuple[datetime, str, str] | None = None
    snoozed_until: datetime | None = None
    reopened_because: str | None = None
    notes: list[Note] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    count: int = 0

    def take(self, event: FlagAction) -> None:
        payload = event.payload
        at, by, note = event.occurred_at, payload.by, payload.note
        action = Action(ACTIONS[event.type], at, by, event.event_id, note)
        if self.acknowledged is None and event.type != "flag.noted":
            self.acknowledged = (at, by)  # any decision about a flag means someone saw it
        if event.type == "flag.assigned":
            self.assignee = event.payload.assignee
            action = replace(action, assignee=event.payload.assignee)
        elif event.type == "flag.resolved":
            self.resolved = (at, by, event.payload.note)
            self.reopened_because = None
        elif event.type == "flag.reopened":
            if self.resolved is not None:
                self.reopened_because = f"reopened by {by}" + (f": {note}" if note else "")
            self.resolved = None
        elif event.type == "flag.snoozed":
            self.snoozed_until = event.payload.until
            action = replace(action, until=event.payload.until)
        if note:
            self.notes.append(Note(at, by, note))
            del self.notes[:-MAX_NOTES]
        self.actions.append(action)
        del self.actions[:-MAX_ACTIONS]
        self.count += 1


def handling_events(events: Iterable[Event], as_of: datetime) -> dict[str, list[FlagAction]]:
    """The handling events of a journey up to `as_of`, by flag id, in journey order."""
    found: dict[str, list[FlagAction]] = {}
    for event in events:
        if event.type in HANDLING_TYPES and event.occurred_at <= as_of:
            action: FlagAction = event  # type: ignore[assignment]
            found.setdefault(action.payload.flag_id, []).append(action)
    return found


def apply_handling(
    flags: Sequence[Flag], events: Sequence[Event], as_of: datetime
) -> tuple[Flag, ...]:
    """The flags with people's handling laid over them (a flag nobody acted on is unchanged)."""
    if not flags:
        return ()  # no walk over the journey for nothing to lay it over
    by_flag = handling_events(events, as_of)
    if not by_flag:
        return tuple(flags)
    wanted = {event_id for flag in flags if flag.flag_id in by_flag for event_id in flag.event_ids}
    moments = {e.event_id: e for e in events if e.event_id in wanted}
    return lay_over(flags, by_flag, moments, as_of)


def lay_over(
    flags: Sequence[Flag],
    by_flag: Mapping[str, list[FlagAction]],
    events: Mapping[str, Event],
    as_of: datetime,
) -> tuple[Flag, ...]:
    """`apply_handling` given the handling events up to `as_of` by flag id, and the journey's
    events by id (at least those of the flags acted on): no walk over the journey."""
    return tuple(
        _handled(flag, by_flag[flag.flag_id], events, as_of) if flag.flag_id in by_flag else flag
        for flag in flags
    )


def _handled(
    flag: Flag, actions: list[FlagAction], events: Mapping[str, Event], as_of: datetime
) -> Flag:
    fold = _Fold()
    for action in actions:
        fold.take(action)
    resolved, reopened_because = fold.resolved, fold.reopened_because
    if resolved is not None:
        newer = [
            e
            for event_id in flag.event_ids
            if (e := events.get(event_id)) is not None and e.occurred_at > resolved[0]
        ]
        if newer:  # the contradiction came back after a person dealt with it
            first = min(newer, key=lambda e: e.occurred_at)
            reopened_because = (
                f"reopened: {first.type} from {first.source.system} at "
                f"{format_moment(first.occurred_at)}, after {resolved[1]} resolved it by hand"
            )
            resolved = None
    handling = Handling(
        state=_state(fold, resolved, as_of),
        assignee=fold.assignee,
        acknowledged_at=fold.acknowledged[0] if fold.acknowledged else None,
        acknowledged_by=fold.acknowledged[1] if fold.acknowledged else None,
        resolved_at=resolved[0] if resolved else None,
        resolved_by=resolved[1] if resolved else None,
        snoozed_until=fold.snoozed_until,
        reopened_because=reopened_because,
        notes=tuple(fold.notes),
        actions=tuple(fold.actions),
        action_count=fold.count,
    )
    if resolved is not None and flag.resolved_at is None:
        at, by, reason = resolved
        return replace(
            flag, resolved_at=at, resolution=f"resolved by {by}: {reason}", handling=handling
        )
    return replace(flag, handling=handling)


def _state(
    fold: _Fold, resolved: tuple[datetime, str, str] | None, as_of: datetime
) -> HandlingState:
    if resolved is not None:
        return "resolved"
    if fold.snoozed_until is not None and fold.snoozed_until > as_of:
        return "snoozed"
    if fold.assignee is not None:
        return "assigned"
    return "unacknowledged" if fold.acknowledged is None else "acknowledged"


def snooze_deadline(events: Iterable[Event], as_of: datetime) -> datetime | None:
    """When the next snooze of a journey ends after `as_of` (its flag's state changes then)."""
    ends = [
        event.payload.until
        for event in events
        if isinstance(event, FlagSnoozed) and event.occurred_at <= as_of
    ]
    return min((end for end in ends if end > as_of), default=None)


def handling_from_document(data: Mapping[str, Any]) -> Handling:
    """A flag's handling read back from its JSON form (as the flag topic and the API give it)."""

    def moment(value: Any) -> datetime | None:
        return parse_timestamp(value) if value else None

    return Handling(
        state=data.get("state", "unacknowledged"),
        assignee=data.get("assignee"),
        acknowledged_at=moment(data.get("acknowledged_at")),
        acknowledged_by=data.get("acknowledged_by"),
        resolved_at=moment(data.get("resolved_at")),
        resolved_by=data.get("resolved_by"),
        snoozed_until=moment(data.get("snoozed_until")),
        reopened_because=data.get("reopened_because"),
        notes=tuple(
            Note(parse_timestamp(n["at"]), n["by"], n["text"]) for n in data.get("notes", ())
        ),
        actions=tuple(
            Action(
                a["action"],
                parse_timestamp(a["at"]),
                a["by"],
                a["event_id"],
                a.get("note"),
                a.get("assignee"),
                moment(a.get("until")),
            )
            for a in data.get("actions", ())
        ),
        action_count=data.get("action_count", 0),
    )
