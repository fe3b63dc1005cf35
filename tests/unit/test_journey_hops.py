"""A record passed on from customer to customer goes aside once it has gone round too often
(`streams.stages.journey.hops`): pointers that disagree cost a bounded number of records."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.codec import decode_event, encode_event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_EVENT
from streams.kafka.records import InRecord, OutRecord
from streams.stages.journey.hops import HEADER_HOPS, MAX_HOPS
from streams.stages.journey.segments import read_journey
from streams.stages.journey.split import HEADER_FORWARDED
from streams.stages.journey.stage import JourneyCache, process_events
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.unit.test_identity_rules import SHOP, _settings
from tests.unit.test_stages import NOW

CAROL, DAVE = ("acme", "cus_carol"), ("acme", "cus_dave")


def _round(store: LocalStore, records: list[InRecord]) -> list[OutRecord]:
    state = BatchState(store, 0)
    outs = process_events(state, JourneyCache(), records, NOW, _settings())
    store.write(0, state.changes)
    return outs


def test_customers_merged_into_each_other_pass_an_event_round_a_bounded_number_of_times(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "journeys")
    state = BatchState(store, 0)
    state.put(keys.forward_key(CAROL), b"cus_dave")  # each stored as merged into the other
    state.put(keys.forward_key(DAVE), b"cus_carol")
    store.write(0, state.changes)
    event = decode_event(SHOP[1])
    headers = ((HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, b"cus_carol"))
    records = [InRecord("events", 0, 0, b"acme/cus_carol", encode_event(event), 0, headers)]
    passes, dead = 0, []
    for offset in range(1, 2 * MAX_HOPS):
        outs = _round(store, records)
        dead += [o for o in outs if o.destination == "dead_letters"]
        passed = [o for o in outs if o.destination == "events"]
        if not passed:
            break
        (out,) = passed
        assert dict(out.headers)[HEADER_HOPS] == str(passes + 1).encode()
        assert HEADER_FORWARDED in dict(out.headers)
        passes += 1
        records = [InRecord("events", 0, offset, out.key, out.value, 0, out.headers)]
    assert passes == MAX_HOPS
    (letter,) = dead
    reason = orjson.loads(letter.value or b"{}")["reason"]
    assert f"passed on between customers {MAX_HOPS} times (headers.{HEADER_HOPS})" in reason
    for ref in (CAROL, DAVE):  # held by neither: it went aside, not folded
        assert read_journey(lambda key: store.get(0, key), ref) is None
    store.close()


def test_an_event_folded_where_it_arrives_passes_nothing_on(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "journeys")
    event = decode_event(SHOP[1])
    headers = ((HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, b"cus_carol"), (HEADER_HOPS, b"3"))
    record = InRecord("events", 0, 0, b"acme/cus_carol", encode_event(event), 0, headers)
    outs = _round(store, [record])
    assert not [o for o in outs if o.destination in ("events", "dead_letters")]
    stored = read_journey(lambda key: store.get(0, key), CAROL)
    assert stored is not None
    assert [e.event_id for e in stored.events] == [event.event_id]
    store.close()


def test_a_count_past_any_reached_goes_aside_naming_the_header(tmp_path: Path) -> None:
    """A header of thousands of digits (past `int()`'s digit limit) is past the bound: kept
    aside with the header's reason, not a parse error's."""
    store = LocalStore(tmp_path / "journeys")
    event = decode_event(SHOP[1])
    headers = (
        (HEADER_KIND, KIND_EVENT),
        (HEADER_CUSTOMER_ID, b"cus_carol"),
        (HEADER_HOPS, b"9" * 5000),
    )
    record = InRecord("events", 0, 0, b"acme/cus_carol", encode_event(event), 0, headers)
    (letter,) = [o for o in _round(store, [record]) if o.destination == "dead_letters"]
    assert f"(headers.{HEADER_HOPS})" in orjson.loads(letter.value or b"{}")["reason"]
    store.close()
