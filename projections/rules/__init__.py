"""The contradiction rules, each a pure walk over a journey's timeline, and their registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from projections.flags import Flag, FlagDraft, sort_flags
from projections.handling.handling import apply_handling, snooze_deadline
from projections.rules import asks, enquiries, lookups, orders, referrals, slots
from projections.rules.rule import Detector, Rule
from schemas.events import Event

if TYPE_CHECKING:
    from projections.settings import RuleSettings

__all__ = ["DETECTORS", "REGISTRY", "RULE_NAMES", "Detector", "Rule", "detect", "next_deadline"]

REGISTRY: tuple[Rule, ...] = (
    *slots.RULES,
    *orders.RULES,
    *lookups.RULES,
    *enquiries.RULES,
    *asks.RULES,
    *referrals.RULES,
)
"""Every rule, in the order they are documented."""

RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in REGISTRY)
"""Every rule's name, in the order they are documented."""

DETECTORS: Mapping[str, Detector] = {rule.name: rule.detect for rule in REGISTRY}
"""Every rule's detector by name."""


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
    for name, detector in detectors.items():
        if name in rules.enabled or name in (extra or {}):
            drafts.extend(detector(events, as_of, rules))
    return apply_handling(sort_flags(draft.build() for draft in drafts), events, as_of)


def next_deadline(events: Sequence[Event], as_of: datetime, rules: RuleSettings) -> datetime | None:
    """The next moment a time-based rule could open a flag, or a snooze ends, without any new
    event."""
    deadlines = [
        moment
        for rule in REGISTRY
        if rule.deadline is not None and rule.name in rules.enabled
        if (moment := rule.deadline(events, as_of, rules)) is not None
    ]
    snoozed = snooze_deadline(events, as_of)
    return min([*deadlines, *([snoozed] if snoozed else [])], default=None)
