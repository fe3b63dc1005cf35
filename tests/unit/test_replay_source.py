"""What replay keeps of the events topic's records: `EventCollector` over the client's records.

The records are `aiokafka` `ConsumerRecord`s as the client hands them out (no broker needed:
reading them is pure); the broker end is `tests/integration/test_replay.py`.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord  # type: ignore[import-untyped]

from journeys.bench.cpu.replay import events_topic
from journeys.demo import demo_lines
from journeys.forensics.source import EventCollector, ReadStats
from schemas.codec import EVENT_ADAPTER, decode_event, encode_event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_EVENT, KIND_MERGE
from streams.crypto.fields import ERASED, encrypt_personal
from streams.crypto.keys import new_data_key
from streams.kafka.records import customer_key
from tests.unit.test_trusted_decode import _assert_same_model

KEY = new_data_key(random.Random(7).randbytes)


def _record(value: bytes | None, headers: list[tuple[str, bytes]], key: bytes = b"") -> Any:
    size = -1 if value is None else len(value)
    return ConsumerRecord("events", 0, 0, 0, 0, key, value, None, len(key), size, tuple(headers))


def _event_record(raw: bytes, *more: tuple[str, bytes], first: bool = True) -> Any:
    kind = (HEADER_KIND, KIND_EVENT)
    customer = (HEADER_CUSTOMER_ID, b"cus_1")
    headers = [kind, customer, *more] if first else [customer, *more, kind]
    return _record(raw, headers, customer_key(orjson.loads(raw)["tenant"], "cus_1"))


def _demo() -> list[bytes]:
    return [encode_event(decode_event(line)) for line in demo_lines()]


def test_every_event_record_is_read_as_validation_reads_it_in_log_order() -> None:
    raws = _demo()
    records = [_event_record(raw) for raw in raws]
    records.insert(3, _record(b'{"kind":"merge"}', [(HEADER_KIND, KIND_MERGE)]))
    records.insert(5, _record(None, [(HEADER_KIND, KIND_EVENT)]))
    # the kind header need not come first (the ledger writes it first)
    records.append(_event_record(raws[0], ("forwarded", b"0"), first=False))
    records.append(_record(raws[1], [(HEADER_KIND, KIND_MERGE), (HEADER_KIND, KIND_EVENT)]))
    records.append(_record(raws[1], []))
    collector = EventCollector(ReadStats())
    collector.add(records[:4])
    collector.add(records[4:])
    expected = [EVENT_ADAPTER.validate_json(raw) for raw in [*raws, raws[0]]]
    assert collector.events == expected
    for got, want in zip(collector.events, expected, strict=True):
        _assert_same_model(got, want)
    assert collector.stats.events == len(expected)
    assert collector.stats.merges == 4
    assert collector.stats.sealed == 0


def test_a_copy_of_an_event_is_decoded_once_and_shared() -> None:
    raws = _demo()[:5]
    collector = EventCollector(ReadStats())
    collector.add([_event_record(raw) for raw in raws])
    collector.add([_event_record(raws[2], ("forwarded", b"0"), ("settled", b"4"))])
    assert collector.events[-1] is collector.events[2]
    assert len(collector.events) == 6


def test_other_tenants_records_are_skipped_unread() -> None:
    records = events_topic(400, 80, seed=2)
    tenant = orjson.loads(records[0].value)["tenant"]
    everyone = EventCollector(ReadStats())
    everyone.add(records)
    one = EventCollector(ReadStats(), tenant=tenant)
    one.add([*records, _record(b"not json", [(HEADER_KIND, KIND_EVENT)], b"other/cus_1")])
    assert one.events == [e for e in everyone.events if e.tenant == tenant]
    assert 0 < len(one.events) < len(everyone.events)
    assert one.stats.skipped == len(everyone.events) - len(one.events) + 1


def _sealed(raw: bytes) -> bytes:
    document = orjson.loads(raw)
    return orjson.dumps(encrypt_personal(document, KEY.key, KEY.key_id, synthetic_nonces=True))


def test_sealed_events_are_counted_without_keys_and_opened_with_them() -> None:
    raws = _demo()[:6]
    records = [_event_record(_sealed(raw)) for raw in raws]
    records.append(records[0])
    closed = EventCollector(ReadStats())
    closed.add(records)
    assert closed.stats.sealed == len(raws)  # each distinct event once
    assert all(b"enc:v1:" in encode_event(event) for event in closed.events)
    opened = EventCollector(ReadStats(), data_keys={KEY.key_id: KEY.key})
    opened.add(records)
    assert opened.events == [EVENT_ADAPTER.validate_json(raw) for raw in [*raws, raws[0]]]
    assert opened.stats.sealed == 0
    erased = EventCollector(ReadStats(), data_keys={})
    erased.add(records[:1])
    assert ERASED in encode_event(erased.events[0]).decode()


def test_a_record_that_does_not_decode_is_counted_and_left_out_with_where_and_why() -> None:
    raws = _demo()[:4]
    document = orjson.loads(raws[1])
    document["payload"] = {"secret": "4111 1111 1111 1111 is not here"}
    damaged = orjson.dumps(document)
    oops = _record(b"{oops", [(HEADER_KIND, KIND_EVENT)])
    records = [_event_record(raws[0]), _event_record(damaged), oops]
    records += [_event_record(raw) for raw in raws[2:]]
    records[1] = ConsumerRecord(
        "events", 3, 41, 0, 0, records[1].key, damaged, None, 0, len(damaged), records[1].headers
    )
    collector = EventCollector(ReadStats())
    collector.add(records)
    assert collector.events == [EVENT_ADAPTER.validate_json(r) for r in [raws[0], *raws[2:]]]
    assert collector.stats.unreadable == 2
    reason = collector.stats.first_unreadable
    assert reason.startswith("partition 3, offset 41: ")
    assert f"{document['type']}.payload." in reason
    assert "4111" not in reason


def test_the_whole_topics_loop_reads_as_the_general_one() -> None:
    # `add` runs a loop of its own for the whole topic without data keys (replay's common
    # case); it must read every record as the general loop (`_add_each`) does.
    raws = _demo()
    document = orjson.loads(raws[2])
    document["occurred_at"] = "yesterday"
    records = events_topic(600, 120, seed=3)
    records[5:5] = [
        _event_record(orjson.dumps(document)),
        _record(b"{oops", [(HEADER_KIND, KIND_EVENT)]),
        _record(None, [(HEADER_KIND, KIND_EVENT)]),
        _record(raws[1], [(HEADER_CUSTOMER_ID, b"cus_1"), (HEADER_KIND, KIND_EVENT)]),
        _record(raws[1], []),
        _event_record(_sealed(raws[3])),
        _event_record(_sealed(raws[3])),
    ]
    fast, general = EventCollector(ReadStats()), EventCollector(ReadStats())
    for at in range(0, len(records), 97):
        fast.add(records[at : at + 97])
        general._add_each(records[at : at + 97])
    assert fast.events == general.events
    for got, want in zip(fast.events, general.events, strict=True):
        _assert_same_model(got, want)
    assert fast.stats == general.stats
    assert (fast.stats.unreadable, fast.stats.sealed) == (2, 1)
    assert "occurred_at" in fast.stats.first_unreadable
