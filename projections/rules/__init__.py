"""The contradiction rules, each a pure walk over a journey's timeline, and their registry."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import Flag, FlagDraft, sort_flags
from projections.handling.handling import apply_handling, snooze_deadline
from projections.rules import asks, enquiries, lookups, orders, referrals, scores, slots
from projections.rules.rule import DerivedRule, Detector, FlagDetector, Rule
from schemas.events import Event

if TYPE_CHECKING:
    from projections.settings import RuleSettings

__all__ = [
    "DERIVED",
    "DETECTORS",
    "REGISTRY",
    "RULE_NAMES",
    "DerivedRule",
    "Detector",
    "FlagDetector",
    "Rule",
    "detect",
    "needed",
    "next_deadline",
]

REGISTRY: tuple[Rule, ...] = (
    *slots.RULES,
    *orders.RULES,
    *lookups.RULES,
    *enquiries.RULES,
    *asks.RULES,
    *referrals.RULES,
)
"""Every base rule (a walk over the events alone), in the order they are documented."""

DERIVED: tuple[DerivedRule, ...] = (*scores.RULES,)
"""The rules evaluated after the base rules, reading their flags too, in documented order."""

RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in (*REGISTRY, *DERIVED))
"""Every rule's name, in the order they are documented."""

DETECTORS: Mapping[str, Detector] = {rule.name: rule.detect for rule in REGISTRY}
"""Every base rule's detector by name."""

_TYPES: Mapping[Detector, frozenset[str]] = {
    rule.detect: rule.types for rule in REGISTRY if rule.types is not None
}
"""The event types each typed rule's detector acts on (`Rule.types`)."""


def detect(
    events: Sequence[Event],
    as_of: datetime,
    rules: RuleSettings,
    extra: dict[str, Detector] | None = None,
) -> tuple[Flag, ...]:
    """Every flag of a journey as of a moment, open and resolved, in the order they opened,
    with what people did about each one laid over it."""
    detectors = {**DETECTORS, **(extra or {})}
    drafts: list[FlagDraft] = []
    present = {event.type for event in events}
    for name, detector in detectors.items():
        if name in rules.enabled or name in (extra or {}):
            types = _TYPES.get(detector)
            if types is not None and types.isdisjoint(present):
                continue  # no event its walk acts on: no flag (most rules, most journeys)
            drafts.extend(detector(events, as_of, rules))
    # People's handling first: a flag resolved by hand reads as resolved to a derived rule.
    base = apply_handling(sort_flags(draft.build() for draft in drafts), events, as_of)
    derived = apply_handling(_derived(events, base, as_of, rules), events, as_of)
    return sort_flags((*base, *derived))


def _derived(
    events: Sequence[Event], base: Sequence[Flag], as_of: datetime, rules: RuleSettings
) -> list[Flag]:
    # After the base rules, and given only their flags: a derived rule never reads another's.
    return [
        draft.build()
        for rule in DERIVED
        if rule.name in rules.enabled
        for draft in rule.detect(events, base, as_of, rules)
    ]


def needed(names: Collection[str], extra: Collection[str] = ()) -> frozenset[str]:
    """The rules to run to find the flags of these: a derived rule reads every other rule's
    flags, so it needs every base rule and the `extra` ones."""
    if any(rule.name in names for rule in DERIVED):
        return frozenset(names) | {rule.name for rule in REGISTRY} | frozenset(extra)
    return frozenset(names)


def next_deadline(events: Sequence[Event], as_of: datetime, rules: RuleSettings) -> datetime | None:
    """The next moment a time-based rule could open a flag, or a snooze ends, without any new
    event."""
    present = {event.type for event in events}
    deadlines = [
        moment
        for rule in REGISTRY
        if rule.deadline is not None and rule.name in rules.enabled
        if rule.types is None or not rule.types.isdisjoint(present)
        if (moment := rule.deadline(events, as_of, rules)) is not None
    ]
    snoozed = snooze_deadline(events, as_of)
    return min([*deadlines, *([snoozed] if snoozed else [])], default=None)
