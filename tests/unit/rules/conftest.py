"""Helpers for the rule tests: fold events through the ledger and read the flags."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from projections.flags import Flag
from projections.ledger import Ledger
from projections.settings import FoldSettings, RuleSettings
from projections.view import JourneyView, view
from schemas.events import Event


def views_of(
    events: Iterable[Event], as_of: datetime | None = None, **rule_overrides: Any
) -> list[JourneyView]:
    """Fold events with the in-memory ledger; view every journey as of a moment.

    `as_of` defaults to the latest `occurred_at`; keyword overrides go to `RuleSettings`
    (e.g. `enquiry_response_window=timedelta(hours=12)`).
    """
    events = list(events)
    settings = FoldSettings(rules=RuleSettings(**rule_overrides))
    ledger = Ledger(settings)
    ledger.add_all(events)
    moment = as_of or max(e.occurred_at for e in events)
    return [view(journey, moment, settings) for journey in ledger]


def flags_of(
    events: Iterable[Event],
    as_of: datetime | None = None,
    *,
    rule: str | None = None,
    **rule_overrides: Any,
) -> list[Flag]:
    """Every flag of every journey (only `rule`'s when given), in the order they opened."""
    flags = [f for v in views_of(events, as_of, **rule_overrides) for f in v.flags]
    return [f for f in flags if rule is None or f.rule == rule]


def ids(*events: Event) -> set[str]:
    """The event ids of some events, to compare with `Flag.event_ids`."""
    return {e.event_id for e in events}


def shuffled(events: Sequence[Event], times: int = 12, seed: int = 2024) -> Iterator[list[Event]]:
    """The same events in several arrival orders (reversed first, then random ones)."""
    rng = random.Random(seed)
    yield list(reversed(events))
    for _ in range(times):
        order = list(events)
        rng.shuffle(order)
        yield order


HOUR = timedelta(hours=1)
