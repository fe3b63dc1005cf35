"""Incremental evaluation equals evaluating the whole journey at once, for every rule.

An `Evaluation` carries each rule's walk on as events are added; `rules.detect` walks the whole
journey. Fed the generated journeys of `test_properties` one event at a time or in batches of
any size, in journey order or in any order (late events), both must give the same flags (with
people's handling laid over them) and the same next deadline, at several moments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from projections.evaluation import Evaluation
from projections.evaluation.derived import LowScores
from projections.flags import Flag, Severity, flag_id, sort_flags
from projections.handling.handling import ACTIONS
from projections.journey import Journey, add_new, event_order
from projections.rules import RULE_NAMES, detect, next_deadline
from projections.rules.scores import is_low_survey
from projections.settings import RuleSettings
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.test_scores import timelines
from tests.unit.test_properties import AS_OF, PROPERTY, T0, scenarios

RULE_SETS = st.sampled_from(
    [RuleSettings(), *(RuleSettings(enabled=frozenset({name})) for name in RULE_NAMES)]
)
"""Every rule together, and each rule alone."""


def _moments(journey: Journey) -> tuple[datetime, ...]:
    last = journey.events[-1].occurred_at if journey.events else T0
    return (last, last + timedelta(hours=25), *AS_OF)


def _check(evaluation: Evaluation, journey: Journey, rules: RuleSettings) -> None:
    evaluation.sync(journey.events)
    for moment in _moments(journey):
        assert evaluation.flags(moment) == detect(journey.events, moment, rules)
        assert evaluation.deadline(moment) == next_deadline(journey.events, moment, rules)


def _check_changes(
    evaluation: Evaluation, kept: dict[str, Flag], journey: Journey, rules: RuleSettings
) -> None:
    """The changes read, laid over the flags a consumer kept, give every flag."""
    evaluation.sync(journey.events)
    for moment in _moments(journey):
        changes = evaluation.changes(moment)
        if changes.whole:
            kept.clear()
        for gone in changes.gone:
            del kept[gone]  # only flags it had
        for flag in changes.flags:
            assert kept.get(flag.flag_id) != flag  # nothing unchanged is told
            kept[flag.flag_id] = flag
        assert sort_flags(kept.values()) == detect(journey.events, moment, rules)


def _feed(events: list[Event], cuts: list[int], rules: RuleSettings) -> None:
    evaluation, reader, kept = Evaluation(rules), Evaluation(rules), {}
    journey = Journey("acme", "cus_1")
    position = 0
    for size in [*cuts, len(events)]:
        batch = events[position : position + size]
        position += size
        for event in batch:
            journey = add_new(journey, event)
        _check(evaluation, journey, rules)
        _check_changes(reader, kept, journey, rules)
        if position >= len(events):
            break


@PROPERTY
@given(
    scenario=scenarios(max_events=40),
    rules=RULE_SETS,
    cuts=st.lists(st.integers(1, 6), max_size=40),
)
def test_events_in_journey_order_one_batch_at_a_time_give_what_the_whole_journey_gives(
    scenario: object, rules: RuleSettings, cuts: list[int]
) -> None:
    events = sorted(scenario.events, key=event_order)  # type: ignore[attr-defined]
    _feed(events, cuts, rules)


@PROPERTY
@given(scenario=scenarios(max_events=40), rules=RULE_SETS)
def test_events_one_by_one_give_what_the_whole_journey_gives(
    scenario: object, rules: RuleSettings
) -> None:
    events = sorted(scenario.events, key=event_order)  # type: ignore[attr-defined]
    _feed(events, [1] * len(events), rules)


@PROPERTY
@given(
    scenario=scenarios(max_events=40),
    rules=RULE_SETS,
    cuts=st.lists(st.integers(1, 6), max_size=40),
)
def test_late_events_in_any_batches_give_what_the_whole_journey_gives(
    scenario: object, rules: RuleSettings, cuts: list[int]
) -> None:
    _feed(list(scenario.events), cuts, rules)  # type: ignore[attr-defined]


@PROPERTY
@given(
    events=timelines(),
    days=st.integers(1, 30),
    cuts=st.lists(st.integers(1, 6), max_size=14),
    in_order=st.booleans(),
)
def test_low_scores_read_by_window_give_what_the_whole_journey_gives(
    events: list[Event], days: int, cuts: list[int], in_order: bool
) -> None:
    """Recalls, forms and surveys over some 40 days with windows of 1 to 30 days: flags open
    and resolve on either side of each survey's window, in journey order or late."""
    rules = RuleSettings(low_score_window=timedelta(days=days))
    _feed(sorted(events, key=event_order) if in_order else events, cuts, rules)


@PROPERTY
@given(
    events=timelines(),
    days=st.integers(1, 30),
    cuts=st.lists(st.integers(1, 6), max_size=14),
    moments=st.lists(st.integers(-4, 90), min_size=1, max_size=6),
)
def test_low_scores_read_at_moments_forward_and_back_give_what_the_whole_journey_gives(
    events: list[Event], days: int, cuts: list[int], moments: list[int]
) -> None:
    """Late events read at moments before, among and long after the surveys: flags still
    open end at the moment read, so a survey a window after it no longer counts them."""
    rules = RuleSettings(low_score_window=timedelta(days=days))
    evaluation, kept = Evaluation(rules), {}
    journey, position = Journey("acme", "cus_1"), 0
    for size in [*cuts, len(events)]:
        for event in events[position : position + size]:
            journey = add_new(journey, event)
        position += size
        evaluation.sync(journey.events)
        for day in moments:
            moment = at(days=day)
            changes = evaluation.changes(moment)
            if changes.whole:
                kept.clear()
            for gone in changes.gone:
                del kept[gone]
            kept.update((flag.flag_id, flag) for flag in changes.flags)
            assert sort_flags(kept.values()) == detect(journey.events, moment, rules)
        if position >= len(events):
            break


def _daily(days: int) -> tuple[LowScores, list[Flag]]:
    """Low surveys at noon of each day, a flag opened at 6 each morning, still open; read."""
    low = LowScores()
    for day in range(days):
        survey = ev(
            "survey.responded",
            {"score": 1, "scale": 5},
            when=at(days=day, hours=12),
            event_id=f"s{day}",
        )
        assert is_low_survey(survey)
        low.add(survey)
    flags = [
        Flag(f"f{day}", "RECALL_NOT_VISIBLE", Severity.HIGH, "", (), at(days=day, hours=6))
        for day in range(days)
    ]
    return low, flags


def test_a_flag_that_moved_reads_again_only_the_surveys_it_can_change() -> None:
    rules, as_of = RuleSettings(low_score_window=timedelta(days=30)), at(days=100)
    low, flags = _daily(100)
    assert len(low.update(flags, flags, {}, as_of, rules)) == 100  # new: read once
    assert low.update(flags, (), {}, as_of, rules) == []
    # Each survey counts every flag opened before it (all still open) and names the latest five.
    last = low.found["s99"]
    assert last is not None
    assert last.message.endswith("and 95 more")
    # A change that keeps its times: only the surveys naming it (days 50 to 54).
    old = flags[50]
    new = replace(old, message="changed")
    flags[50] = new
    read = low.update(flags, (old, new), {}, as_of, rules)
    assert sorted(read) == [f"s{d}" for d in range(50, 55)]
    # Resolved on day 60: also the surveys a window or more after that no longer count it.
    resolved = replace(new, resolved_at=at(days=60))
    flags[50] = resolved
    read = low.update(flags, (new, resolved), {}, as_of, rules)
    assert sorted(read) == sorted(f"s{d}" for d in [*range(90, 100), *range(50, 55)])
    last = low.found["s99"]
    assert last is not None
    assert last.message.endswith("and 94 more")
    # The moment read at goes back to day 40: the open flags no longer reach surveys from
    # day 70 on; only those surveys are read.
    read = low.update(flags, (), {}, at(days=40), rules)
    assert sorted(read) == [f"s{d}" for d in range(70, 100)]


def test_a_message_naming_a_booking_made_later_walks_the_journey_again() -> None:
    """The whole walk knows a booking's first slot before it is made; the stepped one learns
    it late and walks again."""
    message = ev(
        "message.sent",
        {"medium": "sms", "booking_id": "b1", "stated_slot": "2024-03-15T10:00:00+00:00"},
        when=at(1),
        event_id="m1",
    )
    booking = ev(
        "booking.created",
        {"booking_id": "b1", "slot": "2024-03-16T10:00:00+00:00"},
        when=at(2),
        event_id="b1",
    )
    rules = RuleSettings()
    evaluation = Evaluation(rules)
    evaluation.sync((message,))
    assert evaluation.flags(at(3)) == detect((message,), at(3), rules) == ()
    evaluation.sync((message, booking))
    flags = evaluation.flags(at(3))
    assert flags == detect((message, booking), at(3), rules)
    assert [flag.rule for flag in flags] == ["DATE_MISMATCH"]


def test_an_unchanged_flag_is_not_built_again() -> None:
    def call(n: int) -> Event:
        asks = {"direction": "inbound", "asked_for": ["phone"]}
        customer = {"phone": "07700 900123", "email": "sam@example.com"}
        return ev("call.logged", asks, when=at(n), event_id=f"c{n}", customer=customer)

    rules = RuleSettings()
    evaluation = Evaluation(rules)
    events = (call(0), call(1))
    evaluation.sync(events)
    flags = evaluation.flags(at(2))
    assert [flag.rule for flag in flags] == ["REPEATED_ASK"]
    events = (*events, ev("survey.responded", {"score": 9, "scale": 10}, when=at(3)))
    evaluation.sync(events)
    again = evaluation.flags(at(4))
    assert again == detect(events, at(4), rules)
    assert again[0] is flags[0]


# --- memory: the evaluation's state does not grow with the journey ---------------------------


def _day(n: int) -> list[Event]:
    """A day of a hot customer's journey that raises no flag: an enquiry answered, a chat,
    a call, a good survey (each kind of event a rule reads)."""
    customer = {"email": "hot@example.com"}
    return [
        ev("form.submitted", {"form": "contact"}, when=at(days=n), customer=customer),
        ev("enquiry.responded", {}, when=at(days=n, hours=1), customer=customer),
        ev("chat.message", {"speaker": "customer", "text": "hi"}, when=at(days=n, hours=2)),
        ev("chat.message", {"speaker": "agent", "text": "hello"}, when=at(days=n, hours=2.1)),
        ev("call.logged", {"direction": "inbound"}, when=at(days=n, hours=3), customer=customer),
        ev("survey.responded", {"score": 9, "scale": 10}, when=at(days=n, hours=4)),
    ]


def _sizes(evaluation: Evaluation) -> dict[str, int]:
    """The length of every container the evaluation and its walks hold."""
    sizes: dict[str, int] = {}
    owners: dict[str, object] = {"evaluation": evaluation, "low": evaluation.low}
    owners.update({f"walk {name}": walker for name, walker in evaluation.walkers.items()})
    for owner, value in owners.items():
        for name in dir(value):
            held = getattr(value, name, None)
            if isinstance(held, list | dict | set | tuple | deque) and name != "events":
                sizes[f"{owner}.{name}"] = len(held)
    return sizes


def test_a_hot_customer_s_evaluation_state_stays_flat_as_its_journey_grows() -> None:
    rules = RuleSettings()
    evaluation = Evaluation(rules)
    journey = Journey("acme", "hot")
    sizes = []
    for n in range(300):
        for event in _day(n):
            journey = add_new(journey, event)
            evaluation.sync(journey.events)
            evaluation.changes(event.occurred_at)
        if n in (99, 299):
            sizes.append(_sizes(evaluation))
    assert evaluation.flags(journey.events[-1].occurred_at) == ()
    assert len(journey.events) == 1800
    early, late = sizes
    assert late == early  # 600 events and 1,800: the same state
    assert early["evaluation.involved"] == 0  # no event held that no flag points at


# --- handling: laid again only where it may have changed --------------------------------------

ASKED = flag_id("REPEATED_ASK", "c1")
"""The flag of the second of two calls asking for a phone the journey held."""


def _asks() -> list[Event]:
    customer = {"phone": "07700 900123", "email": "sam@example.com"}
    asks = {"direction": "inbound", "asked_for": ["phone"]}
    return [
        ev("call.logged", asks, when=at(n), event_id=f"c{n}", customer=customer) for n in (0, 1)
    ]


@st.composite
def handling(draw: st.DrawFn) -> Event:
    """A person's action on the flag (or on one that never was), at some hour of four days."""
    type_ = draw(st.sampled_from(sorted(ACTIONS)))  # the handling event types
    body: dict[str, object] = {
        "flag_id": draw(st.sampled_from((ASKED, ASKED, flag_id("REPEATED_ASK", "none")))),
        "by": "sam",
    }
    if type_ in ("flag.noted", "flag.resolved"):
        body["note"] = "called the customer"
    if type_ == "flag.assigned":
        body["assignee"] = "leeds-desk"
    if type_ == "flag.snoozed":
        body["until"] = at(draw(st.integers(2, 96))).isoformat()
    return ev(type_, body, when=at(draw(st.integers(2, 96))), system="journeys")


@PROPERTY
@given(
    actions=st.lists(handling(), max_size=8),
    moments=st.lists(st.integers(0, 120), min_size=1, max_size=10),
    cut=st.integers(0, 8),
)
def test_handling_read_at_moments_forward_and_back_gives_what_the_whole_journey_gives(
    actions: list[Event], moments: list[int], cut: int
) -> None:
    """Actions and snoozes that the moment read at passes (or goes back over) between two
    readings, with no new event: the flag's handling is laid again exactly when it changes."""
    events = sorted([*_asks(), *actions], key=event_order)
    rules = RuleSettings()
    evaluation, kept = Evaluation(rules), {}
    for part in (events[: cut + 2], events):
        evaluation.sync(part)
        for hour in moments:
            changes = evaluation.changes(at(hour))
            if changes.whole:
                kept.clear()
            for gone in changes.gone:
                del kept[gone]
            kept.update((flag.flag_id, flag) for flag in changes.flags)
            assert sort_flags(kept.values()) == detect(part, at(hour), rules)
            assert evaluation.deadline(at(hour)) == next_deadline(part, at(hour), rules)
