"""The flags' trends (`projections.handling.stats`): open over time, medians, what waits longest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.handling.stats import (
    MAX_BUCKETS,
    MAX_OLDEST,
    StatsRequestError,
    StatsWindow,
    bucket_ends,
    flag_stats,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def flag(
    flag_id: str,
    opened: datetime,
    resolved: datetime | None = None,
    *,
    rule: str = "DATE_MISMATCH",
    severity: str = "high",
    sites: tuple[str, ...] = ("leeds",),
    tenant: str = "acme-motors",
    acknowledged: datetime | None = None,
    message: str = "a contradiction",
) -> dict[str, Any]:
    """A flag document as the flag index shows it."""
    document: dict[str, Any] = {
        "flag_id": flag_id,
        "rule": rule,
        "severity": severity,
        "status": "open" if resolved is None else "resolved",
        "message": message,
        "event_ids": [f"{flag_id}-e1"],
        "opened_at": opened.isoformat(),
        "resolved_at": None if resolved is None else resolved.isoformat(),
        "resolution": None if resolved is None else "resolved",
        "systems": ["dealer-booking"],
        "sites": list(sites),
        "tenant": tenant,
        "customer_id": f"cus_{flag_id}",
    }
    if acknowledged is not None:
        document["handling"] = {
            "state": "acknowledged",
            "acknowledged_at": acknowledged.isoformat(),
            "acknowledged_by": "sam",
        }
    return document


def window(days: int = 3, **options: Any) -> StatsWindow:
    return StatsWindow(since=T0, until=T0 + days * DAY, **options)


def totals(document: dict[str, Any]) -> list[int]:
    return [point["total"] for point in document["open_over_time"]]


# --- open over time ---------------------------------------------------------------------------


def test_buckets_end_a_step_apart_and_the_last_one_at_until() -> None:
    ends = bucket_ends(T0, T0 + 2 * DAY + timedelta(hours=5), "day")
    assert ends == [T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY + timedelta(hours=5)]


def test_a_flag_is_open_from_its_opening_until_its_resolution_at_bucket_boundaries() -> None:
    flags = [
        flag("opened-at-first-end", T0 + DAY),  # open at the first end already (<=)
        flag("resolved-at-second-end", T0, T0 + 2 * DAY),  # not open at the second end
        flag("before-the-window", T0 - 10 * DAY),  # still open: counted throughout
        flag("over-before-the-window", T0 - 10 * DAY, T0 - 5 * DAY),
        flag("after-the-window", T0 + 4 * DAY),
    ]
    document = flag_stats(flags, window())
    assert [p["at"] for p in document["open_over_time"]] == [
        (T0 + k * DAY).isoformat() for k in (1, 2, 3)
    ]
    assert totals(document) == [3, 2, 2]


def test_open_flags_are_counted_by_rule_and_by_each_site() -> None:
    flags = [
        flag("a", T0, rule="DATE_MISMATCH", sites=("leeds", "york")),
        flag("b", T0 + DAY + timedelta(hours=1), rule="UNANSWERED_ENQUIRY", sites=()),
        flag("c", T0, T0 + timedelta(hours=12), rule="UNANSWERED_ENQUIRY"),
    ]
    first, second = flag_stats(flags, window(2))["open_over_time"]
    assert first["by_rule"] == {"DATE_MISMATCH": 1}
    assert first["by_site"] == {"leeds": 1, "york": 1}
    assert second["by_rule"] == {"DATE_MISMATCH": 1, "UNANSWERED_ENQUIRY": 1}
    assert second["by_site"] == {"": 1, "leeds": 1, "york": 1}
    assert second["total"] == 2


def test_moments_in_other_offsets_are_compared_as_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    # 01:00+02:00 is 23:00 UTC the day before the first bucket end: open there.
    opened = datetime(2026, 11, 2, 1, 0, tzinfo=plus_two)
    assert totals(flag_stats([flag("a", opened)], window(2))) == [1, 1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-48, max_value=120),
            st.one_of(st.none(), st.integers(min_value=0, max_value=96)),
        ),
        max_size=30,
    ),
    st.sampled_from(["hour", "day"]),
)
def test_the_sweep_agrees_with_counting_each_bucket_end_naively(
    spans: list[tuple[int, int | None]], bucket: str
) -> None:
    hour = timedelta(hours=1)
    flags = [
        flag(f"f{i}", T0 + opened * hour, None if lasts is None else T0 + (opened + lasts) * hour)
        for i, (opened, lasts) in enumerate(spans)
    ]
    document = flag_stats(flags, window(3, bucket=bucket))
    for point in document["open_over_time"]:
        at = datetime.fromisoformat(point["at"])
        naive = sum(
            1
            for f in flags
            if datetime.fromisoformat(f["opened_at"]) <= at
            and (f["resolved_at"] is None or datetime.fromisoformat(f["resolved_at"]) > at)
        )
        assert point["total"] == naive
        assert sum(point["by_rule"].values()) == naive


# --- medians ----------------------------------------------------------------------------------


def test_median_time_to_acknowledge_of_an_odd_count_is_the_middle_one() -> None:
    hours = [1, 5, 2]
    flags = [flag(f"f{h}", T0, acknowledged=T0 + h * timedelta(hours=1)) for h in hours]
    (row,) = flag_stats(flags, window())["time_to_acknowledge"]
    assert row == {"rule": "DATE_MISMATCH", "site": "leeds", "median_s": 2 * 3600.0, "count": 3}


def test_median_time_to_resolve_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    flags = [
        flag("a", T0, T0 + timedelta(hours=1), sites=("york",)),
        flag("b", T0, T0 + timedelta(hours=2), sites=("york",)),
        flag("c", T0, T0 + timedelta(hours=4), sites=("york",)),
        flag("d", T0, T0 + timedelta(hours=9), sites=("york",)),
        flag("elsewhere", T0, T0 + timedelta(hours=7), sites=("leeds",)),
    ]
    rows = flag_stats(flags, window())["time_to_resolve"]
    assert rows == [
        {"rule": "DATE_MISMATCH", "site": "leeds", "median_s": 7 * 3600.0, "count": 1},
        {"rule": "DATE_MISMATCH", "site": "york", "median_s": 3 * 3600.0, "count": 4},
    ]


def test_no_median_without_acknowledgements_or_resolutions_in_the_window() -> None:
    flags = [
        flag("open", T0),
        flag("resolved-before", T0 - 5 * DAY, T0 - DAY, acknowledged=T0 - 2 * DAY),
    ]
    document = flag_stats(flags, window())
    assert document["time_to_acknowledge"] == []
    assert document["time_to_resolve"] == []


def test_medians_are_per_rule_and_site() -> None:
    flags = [
        flag("a", T0, acknowledged=T0 + timedelta(hours=1), rule="DATE_MISMATCH"),
        flag("b", T0, acknowledged=T0 + timedelta(hours=3), rule="REPEATED_ASK"),
    ]
    rows = flag_stats(flags, window())["time_to_acknowledge"]
    assert [(r["rule"], r["median_s"]) for r in rows] == [
        ("DATE_MISMATCH", 3600.0),
        ("REPEATED_ASK", 3 * 3600.0),
    ]


# --- the oldest unacknowledged high flags -----------------------------------------------------


def test_oldest_unacknowledged_high_leaves_out_acknowledged_resolved_and_lower_severities() -> None:
    flags = [
        flag("newer", T0 + DAY),
        flag("older", T0),
        flag("acknowledged", T0 - DAY, acknowledged=T0),
        flag("resolved", T0 - DAY, T0 + timedelta(hours=1)),
        flag("medium", T0 - DAY, severity="medium"),
        flag("low", T0 - DAY, severity="low"),
    ]
    document = flag_stats(flags, window())
    shown = document["oldest_unacknowledged_high"]
    assert [f["flag_id"] for f in shown] == ["older", "newer"]
    assert shown[0]["waiting_s"] == 3 * 86400.0
    assert shown[0]["customer_id"] == "cus_older"
    assert "event_ids" not in shown[0]
    assert document["unacknowledged_high_total"] == 2


def test_oldest_unacknowledged_high_lists_at_most_ten() -> None:
    flags = [flag(f"f{i:02}", T0 - i * timedelta(hours=1)) for i in range(MAX_OLDEST + 5)]
    document = flag_stats(flags, window())
    shown = [f["flag_id"] for f in document["oldest_unacknowledged_high"]]
    assert shown == [f"f{i:02}" for i in range(MAX_OLDEST + 4, 4, -1)]
    assert document["unacknowledged_high_total"] == MAX_OLDEST + 5


# --- low scores -------------------------------------------------------------------------------


def test_low_scores_of_the_window_are_listed_oldest_first() -> None:
    message = (
        "customer scored 3/10 in survey-tool; in the 30 days before: RECALL_NOT_VISIBLE "
        "(head-office-recalls, service-centre), resolved after 2 days"
    )
    flags = [
        flag("late", T0 + 2 * DAY, rule="LOW_SCORE_AFTER_FLAGS", severity="medium"),
        flag("early", T0 + DAY, rule="LOW_SCORE_AFTER_FLAGS", severity="medium", message=message),
        flag("before", T0 - DAY, rule="LOW_SCORE_AFTER_FLAGS", severity="medium"),
        flag("other-rule", T0 + DAY, rule="RECALL_NOT_VISIBLE"),
    ]
    document = flag_stats(flags, window())
    assert [f["flag_id"] for f in document["low_scores"]] == ["early", "late"]
    assert document["low_scores"][0]["message"] == message
    assert document["low_scores"][0]["sites"] == ["leeds"]
    assert document["low_scores_total"] == 2


# --- scoping and refusals ---------------------------------------------------------------------


def test_only_the_tenants_the_caller_may_see_are_counted() -> None:
    flags = [
        flag("ours", T0, tenant="acme-motors"),
        flag("theirs", T0, tenant="other-co"),
    ]
    mine = flag_stats(flags, window(tenants=frozenset({"acme-motors"})))
    assert totals(mine) == [1, 1, 1]
    assert [f["flag_id"] for f in mine["oldest_unacknowledged_high"]] == ["ours"]
    # Asking for a tenant outside the token's sees nothing, exactly like an unknown one.
    asked = flag_stats(flags, window(tenant="other-co", tenants=frozenset({"acme-motors"})))
    assert totals(asked) == [0, 0, 0]
    assert asked["oldest_unacknowledged_high"] == []
    one = flag_stats(flags, window(tenant="other-co"))
    assert [f["flag_id"] for f in one["oldest_unacknowledged_high"]] == ["theirs"]
    assert one["tenant"] == "other-co"


def test_more_buckets_than_the_cap_is_refused_naming_the_bucket() -> None:
    assert len(bucket_ends(T0, T0 + MAX_BUCKETS * timedelta(hours=1), "hour")) == MAX_BUCKETS
    with pytest.raises(StatsRequestError) as caught:
        flag_stats([], StatsWindow(T0, T0 + (MAX_BUCKETS + 1) * timedelta(hours=1), "hour"))
    assert caught.value.field == "bucket"
    assert str(caught.value).startswith(f"bucket: {MAX_BUCKETS + 1} hour buckets")
    assert "larger bucket" in caught.value.hint


def test_since_after_until_is_refused() -> None:
    for since in (T0 + DAY, T0):
        with pytest.raises(StatsRequestError) as caught:
            flag_stats([], StatsWindow(since, T0))
        assert caught.value.field == "since"


def test_an_unknown_bucket_is_refused() -> None:
    with pytest.raises(StatsRequestError) as caught:
        flag_stats([], window(bucket="month"))
    assert caught.value.field == "bucket"
    assert "hour, day, week" in str(caught.value)
