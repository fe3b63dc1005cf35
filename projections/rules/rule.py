"""What a rule is: a name, a severity, a detector and, for a time-based rule, its next deadline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, get_args

from projections.flags import Flag, FlagDraft, Severity
from schemas.events import Event

if TYPE_CHECKING:  # settings derive the rule names from the registry: no import at run time
    from projections.settings import RuleSettings

Detector = Callable[[Sequence[Event], datetime, "RuleSettings"], list[FlagDraft]]
"""A rule's walk: the journey's events in order, the moment of evaluation, the thresholds."""

Deadline = Callable[[Sequence[Event], datetime, "RuleSettings"], datetime | None]
"""When a time-based rule could next open a flag without any new event, if ever."""

FlagDetector = Callable[
    [Sequence[Event], Sequence[Flag], datetime, "RuleSettings"], list[FlagDraft]
]
"""A derived rule's walk: the events, the base rules' flags in the order they opened, the
moment of evaluation, the thresholds."""


class Walker(Protocol):
    """A rule's walk, resumable: events are stepped in journey order, one at a time, and the
    flags read at any moment without changing the walk. A rule's `detect` is a fresh walker
    stepped over the whole journey, so walking on event by event gives the same flags.
    """

    stale: bool
    """Set when an event showed that the walk so far would have gone otherwise had it known
    that event (a message naming a booking made later): walk the journey again from the start."""

    def step(self, event: Event) -> None:
        """Take the next event in journey order."""

    def drafts(self, as_of: datetime) -> Sequence[FlagDraft]:
        """The flags found so far as of a moment (read only: they change as the walk goes on)."""

    def deadline(self, as_of: datetime) -> datetime | None:
        """When the rule could next open a flag with no new event (None: never)."""

    def due(self, as_of: datetime) -> Sequence[FlagDraft]:
        """Those of `drafts` that depend on the moment, made afresh at each reading; every
        other draft is made or changed by `step` (an incremental evaluation reads only these
        and the drafts a step touched: `flags.DraftJournal`)."""


class NoDeadline:
    """The deadline of a walker whose rule opens flags only when an event comes: none."""

    def deadline(self, as_of: datetime) -> datetime | None:
        """Never: the rule opens flags only when an event comes."""
        del as_of
        return None

    def due(self, as_of: datetime) -> Sequence[FlagDraft]:
        """None: every flag of the rule is found by a step."""
        del as_of
        return ()


class Untimed(NoDeadline):
    """A walker's untimed part when its flags are the drafts it found (`found`), in order:
    the same at every moment, with no deadline."""

    found: list[FlagDraft]

    def drafts(self, as_of: datetime) -> Sequence[FlagDraft]:
        """The flags found so far (not time-based: the same at every moment)."""
        del as_of
        return self.found


WalkerFactory = Callable[["RuleSettings", Sequence[Event]], Walker]
"""A fresh walker of one rule: the thresholds, and the events it is about to step, for a rule
that looks ahead (empty when the events come one at a time)."""


def walk(
    factory: WalkerFactory,
    events: Sequence[Event],
    rules: RuleSettings,
    types: frozenset[str] | None = None,
) -> Walker:
    """A fresh walker stepped over every event (with `types`, over the events of those types:
    a rule's `types` are the only ones its step acts on, so the walk is the same)."""
    walker = factory(rules, events)
    if types is None:
        for event in events:
            walker.step(event)
    else:
        for event in events:
            if event.type in types:
                walker.step(event)
    return walker


def event_types(*classes: type[Event]) -> frozenset[str]:
    """The `type` strings of these event classes (what `Rule.types` holds)."""
    return frozenset(get_args(cls.model_fields["type"].annotation)[0] for cls in classes)


@dataclass(frozen=True, slots=True)
class _Declared:
    name: str
    severity: Severity

    def draft(
        self, anchor: str, message: str, opened_at: datetime, events: Iterable[Event]
    ) -> FlagDraft:
        """A flag of this rule under construction (see `FlagDraft`)."""
        return FlagDraft(self.name, self.severity, anchor, message, opened_at, list(events))


@dataclass(frozen=True, slots=True)
class Rule(_Declared):
    """One contradiction rule, declared once in its module."""

    detect: Detector
    deadline: Deadline | None = None
    walker: WalkerFactory | None = None
    """The rule's resumable walk (`detect` is a whole walk of it)."""
    types: frozenset[str] | None = None
    """The event types the walker's step acts on (None: every type). A step of any other type
    changes nothing, and a walker stepped over no event finds nothing: a journey with none of
    these types has no flag of the rule, whatever the moment."""

    @classmethod
    def walking(
        cls,
        name: str,
        severity: Severity,
        factory: WalkerFactory,
        timed: bool = False,
        types: frozenset[str] | None = None,
    ) -> Rule:
        """A rule declared by its walker: `detect` (and `deadline` if `timed`) walk it whole,
        stepping only the events of `types` (all events when None)."""

        def detect(
            events: Sequence[Event], as_of: datetime, rules: RuleSettings
        ) -> list[FlagDraft]:
            return list(walk(factory, events, rules, types).drafts(as_of))

        def deadline(
            events: Sequence[Event], as_of: datetime, rules: RuleSettings
        ) -> datetime | None:
            return walk(factory, events, rules, types).deadline(as_of)

        detect.__module__ = deadline.__module__ = factory.__module__  # declared there
        return cls(name, severity, detect, deadline if timed else None, factory, types)


@dataclass(frozen=True, slots=True)
class DerivedRule(_Declared):
    """A rule evaluated after the base rules: it reads their flags as well as the events.

    It has no deadline of its own: it reads only flags that had opened before the event it
    anchors on, so whatever it finds is found when that event is evaluated.
    """

    detect: FlagDetector
