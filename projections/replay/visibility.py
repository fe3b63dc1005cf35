"""When each flag of a replayed journey first became visible, and to which systems."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import groupby

from projections.flags import Flag
from projections.journey import Journey, event_order
from projections.ledger import Ledger
from projections.moments import later
from projections.rules import Detector, detect, needed, next_deadline
from projections.settings import FoldSettings
from schemas.events import Event

_JUST_AFTER = timedelta(microseconds=1)


def first_visible(
    events: Sequence[Event],
    flags: Iterable[Flag],
    as_of: datetime,
    settings: FoldSettings,
    extra_rules: dict[str, Detector] | None = None,
) -> dict[str, tuple[datetime, tuple[str, ...]]]:
    """For each flag id, the earliest moment a replay would have shown it, and its systems then.

    Walks the journey's events in time order, stitching them as the ledger would have at each
    moment (an event outside the journey can never have linked two of its events), and
    evaluates only the parts that changed at each distinct event time (the event's customer,
    and those a limit's settle moved events of), plus each part's next deadline
    (`next_deadline`) before the following event. Stops once every flag is found.
    A flag not found before `as_of` (a time-based extra rule) is given `as_of`.
    """
    flags = list(flags)
    wanted = {flag.flag_id for flag in flags}
    found: dict[str, tuple[datetime, tuple[str, ...]]] = {}
    # A flag id hashes its rule: only the rules of the flags sought need to run (and, for a
    # rule that reads the others' flags, every base rule it reads).
    names = needed({flag.rule for flag in flags}, extra_rules or {})
    rules = replace(settings.rules, enabled=settings.rules.enabled & names)
    extra = {name: rule for name, rule in (extra_rules or {}).items() if name in names}
    ledger = Ledger(settings)
    deadlines: dict[tuple[str, str], datetime] = {}

    def evaluate(part: Journey, moment: datetime, shown_at: datetime) -> None:
        for flag in detect(part.events, moment, rules, extra):
            if flag.flag_id in wanted and flag.flag_id not in found:
                found[flag.flag_id] = (shown_at, flag.systems)

    def flush(before: datetime) -> None:
        # A part's deadline passes with no event of its own: the time-based rule opens then.
        for key, deadline in sorted(deadlines.items(), key=lambda item: item[1]):
            if deadline < before and (part := ledger.journeys.get(key)) is not None:
                del deadlines[key]
                evaluate(part, later(deadline, _JUST_AFTER), deadline)

    ordered = sorted((e for e in events if e.occurred_at <= as_of), key=event_order)
    for moment, group in groupby(ordered, key=lambda e: e.occurred_at):
        if wanted <= found.keys():
            break
        flush(moment)
        changed: set[tuple[str, str]] = set()
        for event in group:
            change = ledger.add(event)
            if change is None:
                continue
            for old in change.absorbed:
                changed.discard((event.tenant, old))
                deadlines.pop((event.tenant, old), None)
            changed.add((event.tenant, change.customer_id))
            changed.update(ledger.moved)  # a settle moved events of other customers too
        for key in sorted(changed):
            part = ledger.journeys.get(key)
            if part is None:  # a settle left it no event
                deadlines.pop(key, None)
                continue
            evaluate(part, moment, moment)
            deadline = next_deadline(part.events, moment, rules)
            if deadline is not None and deadline >= moment:
                deadlines[key] = deadline
            else:
                deadlines.pop(key, None)
    if not wanted <= found.keys():
        flush(as_of)
    return found
