"""A poll's touchpoints go on in the order they happened, each partition's own order kept."""

from __future__ import annotations

from datetime import timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import decode_trusted
from streams.kafka.records import InRecord, OutRecord
from streams.stages.order import in_time_order, timed
from streams.stages.validate import validate, validate_poll
from tests.factories import T0, raw


def _record(partition: int, offset: int, document: dict[str, object] | bytes) -> InRecord:
    value = document if isinstance(document, bytes) else orjson.dumps(document)
    return InRecord("journeys.touchpoints.v1", partition, offset, None, value, 1234)


def _at(minutes: int, event_id: str, form: str = "contact") -> dict[str, object]:
    when = T0 + timedelta(minutes=minutes)
    return raw("form.submitted", {"form": form}, when=when, event_id=event_id)


def _ids(outs: list[OutRecord]) -> list[str]:
    """Each output's event id; `dead` for a dead letter, `notice` for its notice to ingest."""
    return [
        "dead"
        if out.destination == "dead_letters"
        else "notice"
        if out.headers
        else decode_trusted(out.value or b"").event_id
        for out in outs
    ]


def test_the_partitions_of_a_poll_are_merged_by_when_their_events_happened() -> None:
    first = [_record(0, 0, _at(1, "a1")), _record(0, 1, _at(4, "a4"))]
    second = [_record(1, 0, _at(2, "b2")), _record(1, 1, _at(3, "b3"))]

    assert _ids(validate_poll([first, second])) == ["a1", "b2", "b3", "a4"]
    assert _ids(validate(first + second)) == ["a1", "a4", "b2", "b3"]  # one partition: as read


def test_a_partition_keeps_its_own_order_whatever_its_times_say() -> None:
    # The same event id sent twice lies in one partition: the first arrival stays first, even
    # when the second claims an earlier time; a time far ahead holds back only its partition.
    first = [
        _record(0, 0, _at(5, "same")),
        _record(0, 1, _at(1, "same", form="changed")),
        _record(0, 2, _at(60 * 24 * 30, "far")),
        _record(0, 3, _at(2, "after-far")),
    ]
    second = [_record(1, 0, _at(3, "b3")), _record(1, 1, _at(6, "b6"))]

    assert _ids(validate_poll([first, second])) == ["b3", "same", "same", "b6", "far", "after-far"]


def test_a_dead_letter_keeps_its_place_behind_the_record_before_it() -> None:
    year_9999 = _at(2, "x") | {"occurred_at": "9999-12-31T23:59:59+00:00"}
    first = [_record(0, 0, _at(1, "a1")), _record(0, 1, b"{not json"), _record(0, 2, _at(9, "a9"))]
    second = [_record(1, 0, _at(5, "b5")), _record(1, 1, year_9999), _record(1, 2, _at(6, "b6"))]

    outs = validate_poll([first, second])

    assert _ids(outs) == ["a1", "dead", "b5", "dead", "b6", "a9", "notice"]
    dead = [orjson.loads(o.value or b"") for o in outs if o.destination == "dead_letters"]
    assert [(d["partition"], d["offset"]) for d in dead] == [(0, 1), (1, 1)]
    assert "invalid JSON" in dead[0]["reason"]
    assert dead[1]["reason"].startswith("occurred_at")


def test_a_poll_of_one_partition_is_handed_on_as_read() -> None:
    records = [_record(0, i, _at(10 - i, f"e{i}")) for i in range(5)]

    assert _ids(validate_poll([records])) == [f"e{i}" for i in range(5)]


_partitions = st.lists(
    st.lists(st.one_of(st.none(), st.integers(-5, 50)), max_size=12), min_size=1, max_size=5
)


@settings(max_examples=300, deadline=None)
@given(_partitions)
def test_the_merge_keeps_every_unit_and_every_partition_order(
    times: list[list[int | None]],
) -> None:
    partitions = [
        timed((None if t is None else float(t), (p, i)) for i, t in enumerate(ts))
        for p, ts in enumerate(times)
    ]

    merged = in_time_order(partitions)

    assert sorted(merged) == sorted((p, i) for p, ts in enumerate(times) for i in range(len(ts)))
    for p, ts in enumerate(times):
        assert [i for q, i in merged if q == p] == list(range(len(ts)))
    if all(_ascending(ts) for ts in times):  # each partition in time order: all of it is
        when = {unit: t for part in partitions for t, unit in part}
        assert _ascending([when[unit] for unit in merged])


def _ascending(values: list[int | None] | list[float]) -> bool:
    known = [v for v in values if v is not None]
    return known == sorted(known)
