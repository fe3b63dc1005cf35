"""The ledger's outputs on Kafka: typed records whose bytes on the wire are pinned."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from projections.flag_changes import (
    flag_changed,
    flag_statuses,
    flag_transitions,
    flag_withdrawn,
    withdraw_all,
)
from projections.flags import Flag, Severity
from schemas.outputs import FlagChange, FlagSnapshot, MergeHistory, MergeRecord, WithdrawnFlag

T = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
OPEN = Flag(
    "flg_1",
    "DATE_MISMATCH",
    Severity.HIGH,
    "booked 10:30, SMS said 11:30",
    ("e1", "e2"),
    T,
    systems=("booking", "sms"),
    sites=("leeds",),
)
RESOLVED = Flag(
    "flg_1",
    "DATE_MISMATCH",
    Severity.HIGH,
    "m",
    ("e1",),
    T,
    resolved_at=T.replace(hour=10),
    resolution="rebooked",
    systems=("booking",),
)

OPENED_BYTES = (
    b'{"change_id":"chg_9c117015551e0b718e2e","change":"opened","tenant":"acme",'
    b'"customer_id":"cus_1","flag":{"flag_id":"flg_1","rule":"DATE_MISMATCH",'
    b'"severity":"high","status":"open","message":"booked 10:30, SMS said 11:30",'
    b'"event_ids":["e1","e2"],"opened_at":"2026-03-01T09:30:00+00:00","resolved_at":null,'
    b'"resolution":null,"systems":["booking","sms"],"sites":["leeds"]}}'
)
RESOLVED_BYTES = (
    b'{"change_id":"chg_2db3624609f592a79af9","change":"resolved","tenant":"acme",'
    b'"customer_id":"cus_1","flag":{"flag_id":"flg_1","rule":"DATE_MISMATCH",'
    b'"severity":"high","status":"resolved","message":"m","event_ids":["e1"],'
    b'"opened_at":"2026-03-01T09:30:00+00:00","resolved_at":"2026-03-01T10:30:00+00:00",'
    b'"resolution":"rebooked","systems":["booking"],"sites":[]}}'
)
WITHDRAWN_BYTES = (
    b'{"change_id":"chg_43dbb14e432f31556419","change":"withdrawn","tenant":"acme",'
    b'"customer_id":"cus_1","flag":{"flag_id":"flg_1"}}'
)
MERGED_BYTES = WITHDRAWN_BYTES[:-1] + b',"merged_into":"cus_2"}'


@pytest.mark.parametrize(
    ("record", "wire"),
    [
        (flag_changed("acme", "cus_1", OPEN, "opened"), OPENED_BYTES),
        (flag_changed("acme", "cus_1", RESOLVED, "resolved"), RESOLVED_BYTES),
        (flag_withdrawn("acme", "cus_1", "flg_1"), WITHDRAWN_BYTES),
        (flag_withdrawn("acme", "cus_1", "flg_1", merged_into="cus_2"), MERGED_BYTES),
    ],
)
def test_flag_changes_keep_their_bytes_on_the_wire(record: FlagChange, wire: bytes) -> None:
    assert record.to_bytes() == wire
    assert FlagChange.from_bytes(wire) == record


def test_a_withdrawn_flag_reads_back_as_its_id_only() -> None:
    change = FlagChange.from_bytes(MERGED_BYTES)
    assert change.flag == WithdrawnFlag(flag_id="flg_1")
    assert change.merged_into == "cus_2"
    assert isinstance(FlagChange.from_bytes(OPENED_BYTES).flag, FlagSnapshot)


def test_merge_records_keep_their_bytes_on_the_wire() -> None:
    record = MergeRecord(tenant="acme", from_="cus_1", into="cus_2")
    wire = b'{"tenant":"acme","from":"cus_1","into":"cus_2"}'
    assert record.to_bytes() == wire
    assert MergeRecord.from_bytes(wire) == record


def test_transitions_between_two_flag_sets() -> None:
    def changes(previous: dict[str, str], flags: list[Flag]) -> list[str]:
        return [c.change for c in flag_transitions("acme", "cus_1", previous, flags)]

    assert changes({}, [OPEN]) == ["opened"]
    assert changes({}, [RESOLVED]) == ["opened", "resolved"]
    assert changes({"flg_1": "open"}, [OPEN]) == []  # kept before shapes were: adopts it
    assert changes(flag_statuses([OPEN]), [OPEN]) == []
    assert changes({"flg_1": "open"}, [RESOLVED]) == ["resolved"]
    assert changes({"flg_1": "resolved"}, [OPEN]) == ["reopened"]
    assert changes({"flg_1": "resolved"}, [RESOLVED]) == []
    assert changes({"flg_1": "open"}, []) == ["withdrawn"]
    merged = withdraw_all("acme", "cus_1", ["flg_2", "flg_1"], merged_into="cus_2")
    assert [(c.flag_id, c.merged_into) for c in merged] == [("flg_1", "cus_2"), ("flg_2", "cus_2")]


def test_a_flag_whose_content_changes_while_it_stands_is_updated_once() -> None:
    later = replace(OPEN, message="booked 10:30, SMS said 12:00", event_ids=("e1", "e2", "e3"))
    kept = flag_statuses([OPEN])
    (update,) = flag_transitions("acme", "cus_1", kept, [later])
    assert (update.change, update.flag) == (
        "updated",
        flag_changed("acme", "c", later, "opened").flag,
    )
    assert FlagChange.from_bytes(update.to_bytes()) == update
    # the same change replayed (a batch read again after a crash) gets the same id
    (again,) = flag_transitions("acme", "cus_1", kept, [later])
    assert again.change_id == update.change_id
    # once kept, it is not told again
    assert flag_transitions("acme", "cus_1", flag_statuses([later]), [later]) == []
    # every part of the shape counts
    for changed in (
        replace(OPEN, severity=Severity.MEDIUM),
        replace(OPEN, systems=("booking",)),
        replace(OPEN, sites=("york",)),
        replace(OPEN, opened_at=T.replace(hour=8)),
        replace(OPEN, event_ids=("e2", "e1")),
    ):
        assert [c.change for c in flag_transitions("acme", "c", kept, [changed])] == ["updated"]
    # back to an earlier shape, and on to the later one again: each change an id of its own
    kept = flag_statuses([later], kept)
    (back,) = flag_transitions("acme", "cus_1", kept, [OPEN])
    kept = flag_statuses([OPEN], kept)
    (forth,) = flag_transitions("acme", "cus_1", kept, [later])
    assert (back.change, forth.change) == ("updated", "updated")
    assert len({update.change_id, back.change_id, forth.change_id}) == 3
    kept = flag_statuses([OPEN], flag_statuses([later], kept))  # still the same once kept
    assert flag_transitions("acme", "cus_1", kept, [OPEN]) == []
    kept = flag_statuses([OPEN])
    # a status move carries the new content itself: no `updated` beside it
    moved = replace(RESOLVED, message="rebooked at last")
    assert [c.change for c in flag_transitions("acme", "c", kept, [moved])] == ["resolved"]


def test_statuses_kept_before_shapes_adopt_the_current_shape_silently() -> None:
    later = replace(OPEN, message="another message")
    assert flag_transitions("acme", "cus_1", {"flg_1": "open"}, [later]) == []
    stored = flag_statuses([later])["flg_1"]
    assert stored.startswith("open@")
    assert len(stored) == len("open@") + 12


def test_a_merge_record_says_when_and_through_what_only_when_it_knows() -> None:
    old = b'{"tenant":"acme","from":"cus_1","into":"cus_2"}'
    assert MergeRecord.from_bytes(old).at is None  # records from before still read
    record = MergeRecord(
        tenant="acme",
        from_="cus_1",
        into="cus_2",
        at=T,
        event_id="e-3",
        identifier="email priya@example.com",
        decision="merge confirmed by r.khan on 2026-03-01: same person",
    )
    wire = (
        b'{"tenant":"acme","from":"cus_1","into":"cus_2","at":"2026-03-01T09:30:00+00:00",'
        b'"event_id":"e-3","identifier":"email priya@example.com",'
        b'"decision":"merge confirmed by r.khan on 2026-03-01: same person"}'
    )
    assert record.to_bytes() == wire
    assert MergeRecord.from_bytes(wire) == record
    history = MergeHistory(tenant="acme", customer="cus_2", merges=(record,))
    assert MergeHistory.from_bytes(history.to_bytes()) == history
