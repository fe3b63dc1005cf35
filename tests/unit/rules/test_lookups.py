"""UNRECOGNISED_ENROLMENT and RECALL_NOT_VISIBLE: written by one system, not found by another."""

from __future__ import annotations

from typing import Any

from projections.flags import Flag
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.conftest import flags_of, ids, shuffled

ENROLMENT = "UNRECOGNISED_ENROLMENT"
RECALL = "RECALL_NOT_VISIBLE"


def enrolled(
    days: float = 0, programme: str = "Roadside Assist", effective: str | None = None
) -> Event:
    payload: dict[str, Any] = {"programme": programme}
    if effective is not None:
        payload["effective_from"] = effective
    return ev("enrolment.confirmed", payload, when=at(days=days), system="dealer-crm")


def enrolment_lookup(days: float, found: bool, programme: str = "Roadside Assist") -> Event:
    return ev(
        "enrolment.lookup",
        {"programme": programme, "found": found},
        when=at(days=days),
        system="roadside-partner",
    )


def notified(days: float = 0, code: str = "R-24-117") -> Event:
    return ev("recall.notified", {"recall_code": code}, when=at(days=days), system="head-office")


def recall_lookup(days: float, found: bool, code: str = "R-24-117") -> Event:
    return ev(
        "recall.lookup", {"recall_code": code, "found": found}, when=at(days=days), system="dms"
    )


def enrolment_flags(events: list[Event], **overrides: Any) -> list[Flag]:
    return flags_of(events, rule=ENROLMENT, **overrides)


def recall_flags(events: list[Event], **overrides: Any) -> list[Flag]:
    return flags_of(events, rule=RECALL, **overrides)


# --- UNRECOGNISED_ENROLMENT ---------------------------------------------------------------


def test_failed_lookup_after_enrolment_is_flagged() -> None:
    confirmed = enrolled()
    lookup = enrolment_lookup(2, found=False)
    [flag] = enrolment_flags([confirmed, lookup])
    assert flag.status == "open"
    assert flag.opened_at == lookup.occurred_at
    assert set(flag.event_ids) == ids(confirmed, lookup)
    assert flag.severity == "high"
    assert flag.systems == ("dealer-crm", "roadside-partner")


def test_enrolment_message_names_systems_programme_and_days() -> None:
    [flag] = enrolment_flags([enrolled(), enrolment_lookup(2, found=False)])
    assert "dealer-crm enrolled the customer in Roadside Assist on Mon 11 Mar" in flag.message
    assert "roadside-partner could not find them on Wed 13 Mar" in flag.message


def test_successful_lookup_is_not_flagged() -> None:
    assert enrolment_flags([enrolled(), enrolment_lookup(2, found=True)]) == []


def test_failed_lookup_before_the_enrolment_is_not_flagged() -> None:
    assert enrolment_flags([enrolment_lookup(0, found=False), enrolled(1)]) == []


def test_failed_lookup_without_any_enrolment_is_not_flagged() -> None:
    assert enrolment_flags([enrolment_lookup(0, found=False)]) == []


def test_lookup_of_another_programme_is_not_flagged() -> None:
    events = [enrolled(), enrolment_lookup(1, found=False, programme="Loyalty Plus")]
    assert enrolment_flags(events) == []


def test_programme_names_compare_without_case_or_punctuation() -> None:
    events = [enrolled(), enrolment_lookup(1, found=False, programme="ROADSIDE-assist")]
    assert len(enrolment_flags(events)) == 1


def test_lookup_before_effective_from_is_not_flagged() -> None:
    events = [enrolled(effective="2024-03-15"), enrolment_lookup(2, found=False)]
    assert enrolment_flags(events) == []


def test_lookup_on_the_effective_date_is_flagged_with_the_date() -> None:
    events = [enrolled(effective="2024-03-15"), enrolment_lookup(4, found=False)]
    [flag] = enrolment_flags(events)
    assert "effective Fri 15 Mar" in flag.message


def test_effective_from_with_a_time_is_compared_as_an_instant() -> None:
    effective = "2024-03-13T12:00:00+00:00"
    before = enrolment_lookup(2, found=False)  # Wed 13 Mar 09:00 UTC
    assert enrolment_flags([enrolled(effective=effective), before]) == []
    after = enrolment_lookup(2.25, found=False)  # Wed 13 Mar 15:00 UTC
    [flag] = enrolment_flags([enrolled(effective=effective), after])
    assert "effective Wed 13 Mar 12:00" in flag.message


def test_early_failed_lookup_then_one_after_effective_from_flags_the_later() -> None:
    confirmed = enrolled(effective="2024-03-15")
    early = enrolment_lookup(1, found=False)
    late = enrolment_lookup(5, found=False)
    [flag] = enrolment_flags([confirmed, early, late])
    assert flag.opened_at == late.occurred_at
    assert early.event_id not in flag.event_ids


def test_found_lookup_resolves_enrolment_flag() -> None:
    failed = enrolment_lookup(2, found=False)
    found = enrolment_lookup(3, found=True)
    [flag] = enrolment_flags([enrolled(), failed, found])
    assert flag.status == "resolved"
    assert flag.resolved_at == found.occurred_at
    assert found.event_id in flag.event_ids


def test_repeated_failed_lookups_join_one_flag() -> None:
    confirmed = enrolled()
    first = enrolment_lookup(2, found=False)
    second = enrolment_lookup(3, found=False)
    [flag] = enrolment_flags([confirmed, first, second])
    assert flag.opened_at == first.occurred_at
    assert set(flag.event_ids) == ids(confirmed, first, second)


def test_enrolment_does_not_depend_on_arrival_order() -> None:
    events = [
        enrolled(effective="2024-03-14"),
        enrolment_lookup(1, found=False),
        enrolment_lookup(4, found=False),
        enrolment_lookup(5, found=True),
        enrolment_lookup(6, found=False),
        enrolled(0.5, programme="Loyalty Plus"),
        enrolment_lookup(7, found=False, programme="loyalty plus"),
    ]
    expected = enrolment_flags(events)
    assert [f.status for f in expected] == ["resolved", "open", "open"]
    for arrival in shuffled(events):
        assert enrolment_flags(arrival) == expected


# --- RECALL_NOT_VISIBLE -------------------------------------------------------------------


def test_failed_recall_lookup_after_notification_is_flagged() -> None:
    recorded = notified()
    lookup = recall_lookup(3, found=False)
    [flag] = recall_flags([recorded, lookup])
    assert flag.status == "open"
    assert flag.opened_at == lookup.occurred_at
    assert set(flag.event_ids) == ids(recorded, lookup)
    assert "head-office recorded recall R-24-117 on Mon 11 Mar" in flag.message
    assert "dms could not see it on Thu 14 Mar" in flag.message


def test_found_recall_is_not_flagged() -> None:
    assert recall_flags([notified(), recall_lookup(1, found=True)]) == []


def test_failed_recall_lookup_before_notification_is_not_flagged() -> None:
    assert recall_flags([recall_lookup(0, found=False), notified(1)]) == []


def test_lookup_of_another_recall_code_is_not_flagged() -> None:
    assert recall_flags([notified(), recall_lookup(1, found=False, code="R-24-200")]) == []


def test_recall_codes_compare_without_case_or_punctuation() -> None:
    assert len(recall_flags([notified(), recall_lookup(1, found=False, code="r24 117")])) == 1


def test_later_found_lookup_resolves_recall_flag() -> None:
    failed = recall_lookup(2, found=False)
    found = recall_lookup(4, found=True)
    [flag] = recall_flags([notified(), failed, found])
    assert flag.status == "resolved"
    assert flag.opened_at == failed.occurred_at
    assert flag.resolved_at == found.occurred_at
    assert found.event_id in flag.event_ids
    assert flag.resolution is not None
    assert "dms found it on Fri 15 Mar" in flag.resolution


def test_found_for_another_code_does_not_resolve() -> None:
    events = [
        notified(),
        notified(0.1, code="R-24-200"),
        recall_lookup(2, found=False),
        recall_lookup(3, found=True, code="R-24-200"),
    ]
    [flag] = recall_flags(events)
    assert flag.status == "open"


def test_failure_after_resolution_opens_a_new_flag() -> None:
    events = [
        notified(),
        recall_lookup(1, found=False),
        recall_lookup(2, found=True),
        recall_lookup(3, found=False),
    ]
    flags = recall_flags(events)
    assert [f.status for f in flags] == ["resolved", "open"]
    assert flags[1].opened_at == at(days=3)
    assert flags[0].flag_id != flags[1].flag_id


def test_recall_does_not_depend_on_arrival_order() -> None:
    events = [
        recall_lookup(0, found=False),
        notified(0.5),
        recall_lookup(1, found=False),
        recall_lookup(1.5, found=False),
        recall_lookup(2, found=True),
        notified(2.5, code="R-24-200"),
        recall_lookup(3, found=False, code="R-24-200"),
    ]
    expected = recall_flags(events)
    assert [f.status for f in expected] == ["resolved", "open"]
    for arrival in shuffled(events):
        assert recall_flags(arrival) == expected
