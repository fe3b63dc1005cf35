"""Flags: contradictions between systems, as values the rules return."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from schemas.events import Event

if TYPE_CHECKING:  # handling builds on flags: no import at run time
    from projections.handling.handling import Handling


class Severity(StrEnum):
    """How urgently a service manager should look."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


FlagStatus = Literal["open", "resolved"]
"""A flag is open while the contradiction holds; it is never deleted."""


def flag_id(rule: str, anchor: str) -> str:
    """A stable flag id from the rule and the id of the event(s) that opened it."""
    digest = hashlib.blake2b(f"{rule}\x00{anchor}".encode(), digest_size=8).hexdigest()
    return f"flg_{digest}"


@dataclass(frozen=True, slots=True)
class Flag:
    """One contradiction, with the events involved and when it opened and resolved."""

    flag_id: str
    rule: str
    severity: Severity
    message: str
    event_ids: tuple[str, ...]
    opened_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None
    systems: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    handling: Handling | None = None
    """What people did about the flag (None: nobody has acted on it)."""

    @property
    def status(self) -> FlagStatus:
        """open, or resolved once later events removed the contradiction."""
        return "open" if self.resolved_at is None else "resolved"


class DraftJournal:
    """The drafts made, changed or dropped while the journal is open (`with journal:`).

    An incremental evaluation (`projections.evaluation`) opens one around each step of the
    rules' walks: it learns which flags a step touched without reading every draft again.
    Outside a journal, drafts note nothing.
    """

    __slots__ = ("_token", "dropped", "touched")

    def __init__(self) -> None:
        self.touched: dict[int, FlagDraft] = {}
        """Drafts made or changed, by `id` (they are mutable: not hashable)."""
        self.dropped: dict[int, FlagDraft] = {}
        """Drafts their walk no longer finds (`FlagDraft.drop`)."""
        self._token: Token[DraftJournal | None] | None = None

    def __enter__(self) -> DraftJournal:
        self._token = _JOURNAL.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _JOURNAL.reset(self._token)
            self._token = None

    def clear(self) -> None:
        """Forget what was noted (it was read)."""
        self.touched.clear()
        self.dropped.clear()


_JOURNAL: ContextVar[DraftJournal | None] = ContextVar("draft_journal", default=None)


@dataclass(slots=True)
class FlagDraft:
    """A flag under construction while a detector walks the timeline.

    Every change (an attribute set, `involve`, `resolve`) and `drop` is noted in the open
    `DraftJournal`, if any.
    """

    rule: str
    severity: Severity
    anchor: str
    message: str
    opened_at: datetime
    events: list[Event] = field(default_factory=list)
    resolved_at: datetime | None = None
    resolution: str | None = None

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if (journal := _JOURNAL.get()) is not None:
            journal.touched[id(self)] = self

    def involve(self, *events: Event) -> None:
        """Add events to those the flag points at (each once)."""
        held = {e.event_id for e in self.events}
        for event in events:
            if event.event_id not in held:
                self.events.append(event)
                held.add(event.event_id)
        if (journal := _JOURNAL.get()) is not None:
            journal.touched[id(self)] = self

    def drop(self) -> None:
        """Note that the walk no longer finds this draft (it took it back)."""
        if (journal := _JOURNAL.get()) is not None:
            journal.dropped[id(self)] = self

    def resolve(self, at: datetime, resolution: str, *events: Event) -> None:
        """Mark the contradiction removed by later events."""
        self.involve(*events)
        self.resolved_at = at
        self.resolution = resolution

    def build(self) -> Flag:
        """The finished flag value."""
        return Flag(
            flag_id=flag_id(self.rule, self.anchor),
            rule=self.rule,
            severity=self.severity,
            message=self.message,
            event_ids=tuple(e.event_id for e in self.events),
            opened_at=self.opened_at,
            resolved_at=self.resolved_at,
            resolution=self.resolution,
            systems=tuple(sorted({e.source.system for e in self.events})),
            sites=tuple(sorted({e.source.site for e in self.events if e.source.site})),
        )


def sort_flags(flags: Iterable[Flag]) -> tuple[Flag, ...]:
    """Flags in the order they opened (ties by rule, then id)."""
    return tuple(sorted(flags, key=lambda f: (f.opened_at, f.rule, f.flag_id)))


def reopen(flag: Flag) -> Flag:
    """The flag as it stood before it resolved (used when viewing an earlier moment)."""
    return replace(flag, resolved_at=None, resolution=None)
