"""REFERRAL_LOOP: the customer is sent back and forth between parties."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import FlagDraft, Severity
from projections.formatting import format_duration, format_moment
from projections.rules.rule import Rule, Untimed, event_types
from schemas.events import CallLogged, Event, ReferralMade

if TYPE_CHECKING:
    from projections.settings import RuleSettings


@dataclass(frozen=True, slots=True)
class Handoff:
    """One referral or transfer: from which party to which, and the event that says so."""

    source: str
    target: str
    event: Event


def _party(name: str) -> str:
    return " ".join(name.casefold().split())


def handoff(event: Event) -> Handoff | None:
    """The referral or call transfer an event records, if any."""
    if isinstance(event, ReferralMade):
        target = event.payload.to
    elif isinstance(event, CallLogged) and event.payload.transferred_to:
        target = event.payload.transferred_to
    else:
        return None
    if _party(target) == _party(event.source.system):
        return None
    return Handoff(event.source.system, target, event)


def handoffs(events: Sequence[Event]) -> list[Handoff]:
    """Every referral and call transfer in the timeline, in order."""
    return [move for event in events if (move := handoff(event)) is not None]


def _describe(chain: list[Handoff]) -> str:
    steps = ", ".join(
        f"{h.source} → {h.target} ({format_moment(h.event.occurred_at)})" for h in chain
    )
    span = chain[-1].event.occurred_at - chain[0].event.occurred_at
    return f"customer sent back and forth {len(chain)} times in {format_duration(span)}: {steps}"


class _Walk(Untimed):
    """A party refers the customer back to one that referred them on, or too many handoffs."""

    stale = False

    def __init__(self, rules: RuleSettings, ahead: Sequence[Event] = ()) -> None:
        del ahead  # looks only back
        self.rules = rules
        self.moves: list[Handoff] = []
        """Every handoff, in journey order (a loop's flag names those since its start)."""
        self.latest: dict[tuple[str, str], Handoff] = {}
        """The latest handoff between two parties, from the first to the second."""
        self.current: tuple[FlagDraft, list[Handoff]] | None = None
        self.found: list[FlagDraft] = []

    def step(self, event: Event) -> None:
        move = handoff(event)
        if move is None:
            return
        earlier, current, window = self.moves, self.current, self.rules.referral_window
        at = move.event.occurred_at
        if current is not None and at - current[1][-1].event.occurred_at <= window:
            current[1].append(move)
            current[0].involve(move.event)
            current[0].message = _describe(current[1])
            self._remember(move)
            return
        back = self.latest.get((_party(move.target), _party(move.source)))
        # handoffs are in journey order: those within the window, or since `back`, are a tail
        recent = [*earlier[bisect.bisect_left(earlier, at - window, key=_moment) :], move]
        self._remember(move)
        if back is not None:
            chain = earlier[bisect.bisect_left(earlier, back.event.occurred_at, key=_moment) :]
        elif len(recent) >= self.rules.referral_count:
            chain = recent
        else:
            return
        draft = RULE.draft(move.event.event_id, _describe(chain), at, [h.event for h in chain])
        self.found.append(draft)
        self.current = (draft, chain)

    def _remember(self, move: Handoff) -> None:
        self.moves.append(move)
        self.latest[(_party(move.source), _party(move.target))] = move


def _moment(move: Handoff) -> datetime:
    return move.event.occurred_at


RULE = Rule.walking(
    "REFERRAL_LOOP", Severity.MEDIUM, _Walk, types=event_types(ReferralMade, CallLogged)
)
RULES = (RULE,)
