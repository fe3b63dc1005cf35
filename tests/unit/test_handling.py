"""People's handling of flags: folded from `flag.*` events, laid over the rules' flags."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from projections.flag_changes import flag_statuses, flag_transitions
from projections.flags import Flag
from projections.handling.handling import MAX_NOTES
from projections.ledger import Ledger
from projections.rules import next_deadline
from projections.settings import FoldSettings
from projections.view import view
from schemas.events import Event
from tests.factories import at, ev
from tests.unit.rules.conftest import shuffled


def _new_mismatch() -> list[Event]:
    """A booking for Friday and an SMS saying Saturday: one DATE_MISMATCH."""
    return [
        ev(
            "booking.created",
            {"booking_id": "B1", "slot": "2024-03-15T10:00:00+00:00"},
            when=at(),
            system="booking",
        ),
        ev(
            "message.sent",
            {"medium": "sms", "booking_id": "B1", "stated_slot": "2024-03-16T10:00:00+00:00"},
            when=at(hours=1),
            system="sms-gateway",
        ),
    ]


MISMATCH = _new_mismatch()


def _mismatch() -> list[Event]:
    return list(MISMATCH)


def _flags(events: list[Event], as_of: datetime | None = None) -> list[Flag]:
    settings = FoldSettings()
    ledger = Ledger(settings)
    ledger.add_all(events)
    moment = as_of or max(e.occurred_at for e in events)
    return [f for journey in ledger for f in view(journey, moment, settings).flags]


def _flag_id() -> str:
    (flag,) = _flags(_mismatch())
    return flag.flag_id


def act(type_: str, hours: float, by: str = "sam@acme", **payload: Any) -> Event:
    """A person's action on the mismatch flag, `hours` after T0."""
    body = {"flag_id": payload.pop("flag_id", None) or _flag_id(), "by": by, **payload}
    return ev(
        type_,
        body,
        when=at(hours=hours),
        system="journeys",
        source={"channel": "system", "actor": by},
    )


def test_a_flag_nobody_acted_on_has_no_handling() -> None:
    (flag,) = _flags(_mismatch())
    assert flag.handling is None
    assert flag.status == "open"


def test_acknowledge_records_who_and_when() -> None:
    (flag,) = _flags([*_mismatch(), act("flag.acknowledged", 2)])
    assert flag.handling is not None
    assert flag.handling.state == "acknowledged"
    assert (flag.handling.acknowledged_at, flag.handling.acknowledged_by) == (
        at(hours=2),
        "sam@acme",
    )
    assert flag.status == "open"


def test_assigning_is_also_seeing_it() -> None:
    (flag,) = _flags([*_mismatch(), act("flag.assigned", 2, assignee="leeds-desk")])
    assert flag.handling is not None
    assert flag.handling.state == "assigned"
    assert flag.handling.assignee == "leeds-desk"
    assert flag.handling.acknowledged_by == "sam@acme"


def test_a_note_alone_does_not_acknowledge() -> None:
    (flag,) = _flags([*_mismatch(), act("flag.noted", 2, by="jo", note="voicemail left")])
    assert flag.handling is not None
    assert flag.handling.state == "unacknowledged"
    assert [(n.by, n.text) for n in flag.handling.notes] == [("jo", "voicemail left")]


def test_resolving_by_hand_resolves_the_flag_with_the_reason() -> None:
    events = [*_mismatch(), act("flag.resolved", 3, by="jo", note="called, moved to Saturday")]
    (flag,) = _flags(events)
    assert flag.status == "resolved"
    assert flag.resolved_at == at(hours=3)
    assert flag.resolution == "resolved by jo: called, moved to Saturday"
    assert flag.handling is not None
    assert (flag.handling.state, flag.handling.resolved_by) == ("resolved", "jo")


def test_a_new_contradicting_event_reopens_a_flag_resolved_by_hand() -> None:
    again = ev(
        "message.sent",
        {"medium": "sms", "booking_id": "B1", "stated_slot": "2024-03-17T10:00:00+00:00"},
        when=at(hours=5),
        system="sms-gateway",
    )
    events = [*_mismatch(), act("flag.resolved", 3, note="moved"), again]
    flags = _flags(events)
    reopened = [f for f in flags if f.handling is not None]
    assert len(reopened) == 1
    (flag,) = reopened
    assert flag.status == "open"
    assert flag.handling is not None
    assert flag.handling.state != "resolved"
    assert flag.handling.reopened_because is not None
    assert "message.sent from sms-gateway" in flag.handling.reopened_because
    # Before the new SMS, it stood resolved.
    (before,) = _flags(events, as_of=at(hours=4))
    assert before.status == "resolved"


def test_reopen_by_hand_undoes_the_resolution() -> None:
    events = [
        *_mismatch(),
        act("flag.resolved", 3, note="moved"),
        act("flag.reopened", 4, by="jo", note="still wrong"),
    ]
    (flag,) = _flags(events)
    assert flag.status == "open"
    assert flag.handling is not None
    assert flag.handling.reopened_because == "reopened by jo: still wrong"
    assert flag.handling.resolved_at is None


def test_snooze_holds_until_its_moment_and_is_a_deadline() -> None:
    until = at(hours=10)
    events = [*_mismatch(), act("flag.snoozed", 2, until=until.isoformat())]
    (flag,) = _flags(events, as_of=at(hours=5))
    assert flag.handling is not None
    assert flag.handling.state == "snoozed"
    (later,) = _flags(events, as_of=at(hours=11))
    assert later.handling is not None
    assert later.handling.state == "acknowledged"
    assert next_deadline(events, at(hours=5), FoldSettings().rules) == until


def test_actions_after_the_moment_do_not_count_yet() -> None:
    events = [*_mismatch(), act("flag.resolved", 3, note="moved")]
    (flag,) = _flags(events, as_of=at(hours=2))
    assert flag.handling is None
    assert flag.status == "open"


def test_notes_are_bounded() -> None:
    notes = [act("flag.noted", 2 + i / 60, note=f"note {i}") for i in range(MAX_NOTES + 7)]
    (flag,) = _flags([*_mismatch(), *notes])
    assert flag.handling is not None
    assert len(flag.handling.notes) == MAX_NOTES
    assert flag.handling.notes[-1].text == f"note {MAX_NOTES + 6}"
    assert flag.handling.action_count == MAX_NOTES + 7


def test_an_action_on_an_unknown_flag_changes_nothing() -> None:
    stray = act("flag.resolved", 3, note="x", flag_id="flg_0000000000000000")
    (flag,) = _flags([*_mismatch(), stray])
    assert flag.handling is None
    assert flag.status == "open"


def test_arrival_order_does_not_change_handling() -> None:
    events = [
        *_mismatch(),
        act("flag.acknowledged", 2),
        act("flag.assigned", 2.5, assignee="leeds-desk"),
        act("flag.noted", 2.7, note="rang"),
        act("flag.resolved", 3, by="jo", note="moved"),
    ]
    expected = _flags(events)
    for order in shuffled(events):
        assert _flags(order) == expected


# --- what the flag topic is told ------------------------------------------------------------


def test_each_handling_change_is_told_once() -> None:
    base = _mismatch()
    (flag,) = _flags(base)
    previous = {flag.flag_id: "open"}  # as stored before handling (and shapes) existed
    assert flag_transitions("acme", "cus_1", previous, [flag]) == []
    (acked,) = _flags([*base, act("flag.acknowledged", 2)])
    changes = flag_transitions("acme", "cus_1", previous, [acked])
    assert [c.change for c in changes] == ["handled"]
    assert changes[0].to_document()["flag"]["handling"]["state"] == "acknowledged"  # type: ignore[index]
    stored = flag_statuses([acked])
    assert flag_transitions("acme", "cus_1", stored, [acked]) == []
    (resolved,) = _flags([*base, act("flag.acknowledged", 2), act("flag.resolved", 3, note="ok")])
    changes = flag_transitions("acme", "cus_1", stored, [resolved])
    assert [c.change for c in changes] == ["resolved"]
    assert (
        len(
            {c.change_id for c in [*changes, *flag_transitions("acme", "cus_1", previous, [acked])]}
        )
        == 2
    )


def test_a_flag_without_handling_is_written_as_before() -> None:
    (flag,) = _flags(_mismatch())
    (change,) = flag_transitions("acme", "cus_1", {}, [flag])
    assert "handling" not in change.to_document()["flag"]  # type: ignore[operator]


def test_snapshots_round_trip_through_the_flag_topic() -> None:
    from schemas.outputs import FlagChange

    (flag,) = _flags([*_mismatch(), act("flag.assigned", 2, assignee="desk", note="yours")])
    (change,) = flag_transitions("acme", "cus_1", {}, [flag])
    again = FlagChange.from_bytes(change.to_bytes())
    assert again.to_bytes() == change.to_bytes()
    assert timedelta(0) < at(hours=3) - at(hours=2)


def test_the_api_client_reads_handling_back() -> None:
    from journeys.sdk.client import flag_from_dict
    from projections.view import flag_to_dict

    events = [
        *_mismatch(),
        act("flag.assigned", 2, assignee="desk", note="yours"),
        act("flag.snoozed", 2.5, until=at(hours=9).isoformat()),
        act("flag.resolved", 3, note="done"),
    ]
    (flag,) = _flags(events)
    assert flag.handling is not None
    assert flag_from_dict(flag_to_dict(flag)) == flag
