"""Rules skipped by event type find what stepping every rule over every event finds.

A rule's `types` are the only event types its walk acts on: `walk` steps only those, and
`rules.detect` and `next_deadline` skip a rule when the journey holds none of them. The
reference here steps each rule's walker over every event of the journey, whatever its type.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from journeys.bench.load import skewed_lines
from projections.flags import Flag, FlagDraft, sort_flags
from projections.handling.handling import apply_handling, snooze_deadline
from projections.journey import event_order
from projections.ledger import Ledger
from projections.rules import DERIVED, REGISTRY, detect, next_deadline
from projections.rules.rule import Rule, Walker, walk
from projections.settings import FoldSettings, RuleSettings
from schemas.codec import decode_event
from schemas.events import EVENT_TYPES, Event
from tests.unit.test_properties import AS_OF, PROPERTY, T0, Scenario, scenarios


def _moments(events: list[Event]) -> tuple[datetime, ...]:
    last = events[-1].occurred_at if events else T0
    return (last, last + timedelta(hours=25), *AS_OF)


def _built(drafts: Sequence[FlagDraft]) -> list[Flag]:
    return [draft.build() for draft in drafts]


def _every_event(rule: Rule, events: list[Event], rules: RuleSettings) -> Walker:
    assert rule.walker is not None
    return walk(rule.walker, events, rules)  # no `types`: every event stepped


@PROPERTY
@given(scenario=scenarios(max_events=40), data=st.data())
def test_each_rule_skipping_other_types_finds_what_a_walk_of_every_event_finds(
    scenario: Scenario, data: st.DataObject
) -> None:
    events = sorted(scenario.events, key=event_order)
    # fewer types sometimes: a journey without any event a rule acts on skips the rule whole
    kept = data.draw(st.sets(st.sampled_from(EVENT_TYPES), min_size=1))
    events = [event for event in events if event.type in kept]
    rules = RuleSettings()
    for rule in REGISTRY:
        assert rule.walker is not None
        reference = rule.walker(rules, events)
        for event in events:
            reference.step(event)
        for moment in _moments(events):
            found = _built(rule.detect(events, moment, rules))
            assert found == _built(reference.drafts(moment))
            if rule.deadline is not None:
                assert rule.deadline(events, moment, rules) == reference.deadline(moment)
    for moment in _moments(events):
        assert detect(events, moment, rules) == _whole(events, moment, rules)
        assert next_deadline(events, moment, rules) == _whole_deadline(events, moment, rules)


def _whole(events: list[Event], moment: datetime, rules: RuleSettings) -> tuple[Flag, ...]:
    """`rules.detect` as it was before rules were skipped: every rule walks every event."""
    drafts = [
        draft for rule in REGISTRY for draft in _every_event(rule, events, rules).drafts(moment)
    ]
    base = apply_handling(sort_flags(draft.build() for draft in drafts), events, moment)
    derived = [
        draft.build() for rule in DERIVED for draft in rule.detect(events, base, moment, rules)
    ]
    return sort_flags((*base, *apply_handling(derived, events, moment)))


def _whole_deadline(events: list[Event], moment: datetime, rules: RuleSettings) -> datetime | None:
    deadlines = [
        found
        for rule in REGISTRY
        if rule.deadline is not None
        if (found := _every_event(rule, events, rules).deadline(moment)) is not None
    ]
    snoozed = snooze_deadline(events, moment)
    return min([*deadlines, *([snoozed] if snoozed else [])], default=None)


def test_every_rule_but_repeated_ask_names_the_types_it_acts_on() -> None:
    # REPEATED_ASK learns what the customer gave from every event: it has no types to skip by
    untyped = {rule.name for rule in REGISTRY if rule.types is None}
    assert untyped == {"REPEATED_ASK"}
    for rule in REGISTRY:
        assert rule.types is None or rule.types <= set(EVENT_TYPES)


def test_on_the_bench_load_skipping_by_type_changes_no_flag() -> None:
    """The bench's stories, where every rule fires, folded into journeys: each journey's flags
    and next deadline as the reference walk of every event gives them."""
    lines = skewed_lines(3_000, 600, seed=3)
    ledger = Ledger(FoldSettings())
    ledger.add_all(decode_event(line) for line in lines)
    rules = RuleSettings()
    fired: set[str] = set()
    for journey in ledger:
        events = list(journey.events)
        for moment in (events[-1].occurred_at, events[-1].occurred_at + timedelta(days=3)):
            flags = detect(events, moment, rules)
            assert flags == _whole(events, moment, rules)
            assert next_deadline(events, moment, rules) == _whole_deadline(events, moment, rules)
            fired.update(flag.rule for flag in flags)
    assert fired >= {rule.name for rule in REGISTRY}  # the comparison saw every rule's flags
