"""LOW_SCORE_AFTER_FLAGS: a low survey score arrives with the flags that preceded it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.settings import Settings
from projections.flags import Flag, Severity, flag_id
from projections.ledger import Ledger
from projections.replay.visibility import first_visible
from projections.rules.scores import MAX_NAMED, Preceding, _overlaps, is_low
from projections.settings import RULES, FoldSettings, RuleSettings
from projections.view import view
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.conftest import flags_of, ids, shuffled

RULE = "LOW_SCORE_AFTER_FLAGS"


def notified(days: float = 0, code: str = "R-24-117") -> Event:
    return ev(
        "recall.notified",
        {"recall_code": code},
        when=at(days=days),
        system="head-office-recalls",
    )


def recall_lookup(days: float, found: bool, code: str = "R-24-117") -> Event:
    return ev(
        "recall.lookup",
        {"recall_code": code, "found": found},
        when=at(days=days),
        system="service-centre",
        source={"site": "leeds"},
    )


def survey(days: float, score: float, scale: int | None = 10) -> Event:
    payload: dict[str, Any] = {"score": score, "comment": "not great"}
    if scale is not None:
        payload["scale"] = scale
    return ev("survey.responded", payload, when=at(days=days), system="survey-tool")


def unseen_recall(opened: float = 1, resolved: float | None = 3) -> list[Event]:
    """A recall the service centre could not see on day `opened`, found on day `resolved`."""
    events = [notified(0), recall_lookup(opened, found=False)]
    if resolved is not None:
        events.append(recall_lookup(resolved, found=True))
    return events


def low_flags(events: list[Event], **overrides: Any) -> list[Flag]:
    return flags_of(events, rule=RULE, **overrides)


# --- when it opens ----------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "scale"), [(3, 10), (2, 5), (0, 10), (6, 10), (1, 5)])
def test_a_low_score_after_a_flag_in_the_window_is_flagged(score: int, scale: int) -> None:
    before = unseen_recall()
    scored = survey(5, score, scale)
    [flag] = low_flags([*before, scored])
    assert flag.status == "open"
    assert flag.severity == "medium"
    assert flag.opened_at == scored.occurred_at
    assert flag.flag_id == flag_id(RULE, scored.event_id)
    # The survey and every event of the preceding flag: the journey page shows them together.
    assert set(flag.event_ids) == ids(scored, *before)
    assert flag.systems == ("head-office-recalls", "service-centre", "survey-tool")
    assert flag.sites == ("leeds",)


@pytest.mark.parametrize(("score", "scale"), [(7, 10), (10, 10), (3, 5), (5, 5), (6.5, 10)])
def test_a_score_above_the_bottom_band_is_not_flagged(score: float, scale: int) -> None:
    assert low_flags([*unseen_recall(), survey(5, score, scale)]) == []


def test_a_low_score_with_no_flag_before_it_is_not_flagged() -> None:
    scored = survey(5, 1)
    assert flags_of([scored]) == []


def test_a_score_without_a_scale_is_not_judged() -> None:
    assert low_flags([*unseen_recall(), survey(5, 2, scale=None)]) == []


@pytest.mark.parametrize(
    ("score", "scale", "low"),
    [
        (6, 10, True),
        (7, 10, False),
        (2, 5, True),
        (3, 5, False),
        (4, 7, True),  # another scale: the lowest 60 %, rounded down (4.2 -> 4)
        (5, 7, False),
        (60, 100, True),
        (61, 100, False),
        (11, 10, False),  # outside the scale it names
        (-1, 10, False),
        (math.nan, 10, False),
        (math.inf, 10, False),
        (0, 0, False),
        (1, None, False),
    ],
)
def test_bottom_band_of_each_scale(score: float, scale: int | None, low: bool) -> None:
    assert is_low(score, scale) is low


# --- which flags precede it ------------------------------------------------------------------


def test_a_flag_resolved_more_than_the_window_before_does_not_count() -> None:
    # Resolved on day 3; scored 31 days later.
    assert low_flags([*unseen_recall(1, 3), survey(34, 2)]) == []


def test_the_window_is_half_open_at_its_start() -> None:
    # Resolved exactly 30 days before the survey: it was over when the window began.
    assert low_flags([*unseen_recall(1, 3), survey(33, 2)]) == []
    assert len(low_flags([*unseen_recall(1, 3), survey(32.9, 2)])) == 1


def test_a_flag_opened_90_days_before_and_still_open_counts_and_is_named() -> None:
    # The specification: flags open at some moment of the window, however long ago they opened.
    before = unseen_recall(1, resolved=None)
    scored = survey(90, 2)
    [flag] = low_flags([*before, scored])
    assert "RECALL_NOT_VISIBLE (head-office-recalls, service-centre), still open" in flag.message
    assert set(flag.event_ids) == ids(scored, *before)


def test_a_flag_opened_before_the_window_and_resolved_in_it_counts() -> None:
    # Open through the start of the window, resolved inside it.
    [flag] = low_flags([*unseen_recall(1, 20), survey(40, 2)])
    assert flag.message.endswith("resolved after 19 days")


def test_a_flag_opened_after_the_survey_does_not_count() -> None:
    assert low_flags([survey(0.5, 2), *unseen_recall(1, 3)]) == []


def test_a_flag_opened_at_the_survey_moment_does_not_count() -> None:
    events = unseen_recall(1, 3)
    assert low_flags([*events, survey(1, 2)]) == []


def test_the_window_setting_is_respected() -> None:
    events = [*unseen_recall(1, 3), survey(8, 2)]
    assert len(low_flags(events)) == 1
    assert low_flags(events, low_score_window=timedelta(days=4)) == []
    [flag] = low_flags(events, low_score_window=timedelta(days=6))
    assert "in the 6 days before:" in flag.message


def test_the_settings_file_sets_the_window_in_days() -> None:
    settings = Settings.model_validate({"rules": {"low_score_window_days": 7}})
    assert settings.fold_settings().rules.low_score_window == timedelta(days=7)
    assert Settings().fold_settings().rules.low_score_window == timedelta(days=30)
    for bad in (0, -1, 1e300):
        with pytest.raises(ValueError, match="low_score_window_days"):
            Settings.model_validate({"rules": {"low_score_window_days": bad}})


def test_a_time_based_flag_counts_once_it_had_opened() -> None:
    # The enquiry waited 24 h (the flag opened at 24 h), then the customer scored at 30 h.
    enquiry = ev("form.submitted", {"form": "contact"}, when=at(0), system="website")
    scored = ev("survey.responded", {"score": 1, "scale": 5}, when=at(30), system="survey-tool")
    [flag] = low_flags([enquiry, scored])
    assert "UNANSWERED_ENQUIRY (website), still open" in flag.message
    early = ev("survey.responded", {"score": 1, "scale": 5}, when=at(20), system="survey-tool")
    assert low_flags([enquiry, early], as_of=at(30)) == []


def test_other_low_score_flags_are_never_counted() -> None:
    first, second = survey(5, 2), survey(6, 1)
    flags = low_flags([*unseen_recall(1, 3), first, second])
    assert [f.opened_at for f in flags] == [first.occurred_at, second.occurred_at]
    for flag in flags:
        assert RULE not in flag.message
        assert flag.message.count("RECALL_NOT_VISIBLE") == 1
    assert first.event_id not in flags[1].event_ids


# --- the message -----------------------------------------------------------------------------


def test_message_names_score_rule_systems_and_how_long_the_flag_lasted() -> None:
    [flag] = low_flags([*unseen_recall(1, 3), survey(5, 3)])
    assert flag.message == (
        "customer scored 3/10 in survey-tool; in the 30 days before: "
        "RECALL_NOT_VISIBLE (head-office-recalls, service-centre), resolved after 2 days"
    )


def test_message_gives_short_resolutions_in_hours() -> None:
    [flag] = low_flags([*unseen_recall(1, 1.5), survey(5, 3)])
    assert "resolved after 12 h" in flag.message


def test_message_tells_the_moment_of_the_survey_not_what_came_after() -> None:
    # Found only after the survey: the customer answered while it was still open.
    before = unseen_recall(1, resolved=None)
    scored = survey(5, 3)
    found = recall_lookup(8, found=True)
    [flag] = low_flags([*before, scored, found])
    assert flag.message.endswith(
        "RECALL_NOT_VISIBLE (head-office-recalls, service-centre), still open"
    )
    assert set(flag.event_ids) == ids(scored, *before)
    assert low_flags([*before, scored]) == [flag]


def test_message_names_at_most_a_few_flags_and_counts_the_rest() -> None:
    codes = [f"R-{n}" for n in range(MAX_NAMED + 2)]
    events = [notified(0, code) for code in codes]
    events += [recall_lookup(1 + n / 10, found=False, code=code) for n, code in enumerate(codes)]
    scored = survey(5, 1)
    [flag] = low_flags([*events, scored])
    assert flag.message.count("RECALL_NOT_VISIBLE") == MAX_NAMED
    assert flag.message.endswith("; and 2 more")
    # The events of the flags it names (the most recently opened), not of all it counts.
    named = [e for e in events if e.payload.recall_code in codes[-MAX_NAMED:]]  # type: ignore[attr-defined]
    assert set(flag.event_ids) == ids(scored, *named)


def test_message_names_the_most_recently_opened_flags_first() -> None:
    enquiry = ev("form.submitted", {"form": "contact"}, when=at(days=2), system="website")
    [flag] = low_flags([*unseen_recall(1, resolved=None), enquiry, survey(5, 3)])
    named = flag.message.split("before: ", 1)[1]
    assert named.index("UNANSWERED_ENQUIRY") < named.index("RECALL_NOT_VISIBLE")


def test_flags_opened_long_before_are_named_when_the_window_holds_few() -> None:
    # Seven recalls unseen on days 1-2 and never found, one enquiry in the window: the enquiry
    # first, then the most recent of the old ones still open, and the count stays exact.
    codes = [f"R-{n}" for n in range(MAX_NAMED + 2)]
    events = [notified(0, code) for code in codes]
    events += [recall_lookup(1 + n / 10, found=False, code=code) for n, code in enumerate(codes)]
    enquiry = ev("form.submitted", {"form": "contact"}, when=at(days=70), system="website")
    [flag] = low_flags([*events, enquiry, survey(80, 1)])
    listed = flag.message.split("before: ", 1)[1]
    assert listed.startswith("UNANSWERED_ENQUIRY")
    assert listed.count("RECALL_NOT_VISIBLE") == MAX_NAMED - 1
    assert listed.endswith("; and 3 more")


# --- settings, order, replay -----------------------------------------------------------------


def test_disabling_the_rule_or_the_flags_it_reads() -> None:
    events = [*unseen_recall(1, 3), survey(5, 3)]
    without = frozenset(RULES) - {RULE}
    assert low_flags(events, enabled=without) == []
    assert low_flags(events, enabled=frozenset(RULES) - {"RECALL_NOT_VISIBLE"}) == []


def test_arrival_order_does_not_matter() -> None:
    events = [
        *unseen_recall(1, 3),
        survey(5, 3),
        survey(6, 9),
        ev("form.submitted", {"form": "contact"}, when=at(days=6, hours=1), system="website"),
        survey(8, 2, scale=5),
        survey(40, 1),
    ]
    expected = flags_of(events)
    # Day 5 after the recall, day 8 after both, day 40 after the enquiry nobody answered.
    assert [f.rule for f in expected].count(RULE) == 3
    for arrival in shuffled(events):
        assert flags_of(arrival) == expected


def test_replay_shows_the_flag_from_the_moment_of_the_survey() -> None:
    events = [*unseen_recall(1, 3), survey(5, 3)]
    flags = flags_of(events)
    [low] = [f for f in flags if f.rule == RULE]
    visible = first_visible(events, [low], at(days=9), FoldSettings(rules=RuleSettings()))
    assert visible == {low.flag_id: (low.opened_at, low.systems)}


def test_same_moment_surveys_each_get_their_own_flag() -> None:
    one, two = survey(5, 3), survey(5, 2)
    flags = low_flags([*unseen_recall(1, 3), one, two])
    assert {f.flag_id for f in flags} == {flag_id(RULE, one.event_id), flag_id(RULE, two.event_id)}
    assert all(f.opened_at == at(days=5) for f in flags)


@st.composite
def timelines(draw: st.DrawFn) -> list[Event]:
    """Recalls seen and unseen, unanswered forms and surveys over some 40 days, in any order."""
    events: list[Event] = []
    for _ in range(draw(st.integers(1, 14))):
        day = draw(st.integers(0, 80)) / 2
        code = draw(st.sampled_from(("R-1", "R-2")))
        kind = draw(st.sampled_from(("notified", "missing", "found", "form", "survey")))
        if kind == "notified":
            events.append(notified(day, code))
        elif kind in ("missing", "found"):
            events.append(recall_lookup(day, found=kind == "found", code=code))
        elif kind == "form":
            events.append(ev("form.submitted", {"form": "contact"}, when=at(days=day)))
        else:
            scale = draw(st.sampled_from((5, 10)))
            events.append(survey(day, draw(st.integers(0, scale)), scale))
    return events


def _one_at_a_time(events: list[Event], rules: RuleSettings) -> list[Flag]:
    fold = FoldSettings(rules=rules)
    ledger = Ledger(fold)
    for event in events:
        ledger.add(event)
    return [f for journey in ledger for f in view(journey, at(days=45), fold).flags]


@settings(max_examples=60, deadline=None)
@given(events=timelines(), data=st.data())
def test_flags_depend_on_the_events_not_their_arrival(
    events: list[Event], data: st.DataObject
) -> None:
    rules = RuleSettings(low_score_window=timedelta(days=data.draw(st.integers(1, 30))))
    expected = _one_at_a_time(events, rules)
    arrival = data.draw(st.permutations(events), label="arrival order")
    assert _one_at_a_time(arrival, rules) == expected
    everything = flags_of(
        arrival, as_of=at(days=45), **{"low_score_window": rules.low_score_window}
    )
    assert everything == expected


_EDGE = (
    datetime.min.replace(tzinfo=UTC),
    datetime.min.replace(tzinfo=UTC) + timedelta(days=2),
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime.max.replace(tzinfo=UTC) - timedelta(days=2),
    datetime.max.replace(tzinfo=UTC),
)
"""Moments at both ends of what a datetime holds, and one between."""


@st.composite
def _moments(draw: st.DrawFn) -> datetime:
    base = draw(st.sampled_from(_EDGE))
    shift = timedelta(hours=draw(st.integers(-30, 30)))
    try:
        return base + shift
    except OverflowError:
        return base


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.tuples(_moments(), st.none() | _moments()), max_size=8),
    at_=_moments(),
    as_of=_moments(),
    window=st.sampled_from((timedelta(days=1), timedelta(days=30), timedelta.max)),
)
def test_counting_from_sorted_times_is_the_window_overlap_at_the_ends_of_time(
    times: list[tuple[datetime, datetime | None]],
    at_: datetime,
    as_of: datetime,
    window: timedelta,
) -> None:
    """`Preceding.count` equals counting `_overlaps` flag by flag, whatever the moments
    (near year 1 or 9999, where a window start or end overflows a datetime), resolved before
    they opened included, after flags come and go."""
    flags = [
        Flag(f"f{n}", "RECALL_NOT_VISIBLE", Severity.HIGH, "", (), opened, resolved)
        for n, (opened, resolved) in enumerate(times)
    ]
    kept = Preceding.of([*flags, *flags[:2]], window)
    for flag in flags[:2]:
        kept.remove(flag)
    expected = sum(1 for f in flags if f.opened_at < at_ and _overlaps(f, at_, window, as_of))
    assert kept.count(at_, as_of) == expected
