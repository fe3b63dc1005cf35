"""The eight contradiction rules, each a pure walk over a journey's timeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from projections.detectors import asks, enquiries, lookups, orders, referrals, slots
from projections.flags import Flag, FlagDraft, sort_flags
from projections.settings import RuleSettings
from schemas.events import Event

Detector = Callable[[Sequence[Event], datetime, RuleSettings], list[FlagDraft]]
"""A rule: the journey's events in order, the moment of evaluation, the thresholds."""

DETECTORS: dict[str, Detector] = {
    "DATE_MISMATCH": slots.detect,
    "DUPLICATE_ORDER": orders.detect_duplicates,
    "PAYMENT_FOR_CANCELLED_ORDER": orders.detect_payments,
    "UNRECOGNISED_ENROLMENT": lookups.detect_enrolments,
    "RECALL_NOT_VISIBLE": lookups.detect_recalls,
    "UNANSWERED_ENQUIRY": enquiries.detect,
    "REPEATED_ASK": asks.detect,
    "REFERRAL_LOOP": referrals.detect,
}
"""Every rule by name."""


def detect(
    events: Sequence[Event],
    as_of: datetime,
    rules: RuleSettings,
    extra: dict[str, Detector] | None = None,
) -> tuple[Flag, ...]:
    """Every flag of a journey as of a moment, open and resolved, in the order they opened."""
    detectors = {**DETECTORS, **(extra or {})}
    drafts: list[FlagDraft] = []
    for name, detector in detectors.items():
        if name in rules.enabled or name in (extra or {}):
            drafts.extend(detector(events, as_of, rules))
    return sort_flags(draft.build() for draft in drafts)


def next_deadline(events: Sequence[Event], as_of: datetime, rules: RuleSettings) -> datetime | None:
    """The next moment a time-based rule could open a flag without any new event."""
    if "UNANSWERED_ENQUIRY" not in rules.enabled:
        return None
    return enquiries.pending_deadline(events, as_of, rules)
