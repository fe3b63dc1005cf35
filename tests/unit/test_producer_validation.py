"""The producers validate with the ledger's schemas before anything reaches Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from journeys.sdk.producer import (
    BufferFullError,
    JourneyProducer,
    ProducerStateError,
    SyncJourneyProducer,
    prepare,
)
from schemas.codec import encode_event, validate_document
from schemas.errors import InvalidEventError, JourneyLedgerError
from streams.config import KafkaSettings
from tests.factories import ev, raw

CARD = "4929 1234 5678 9015"


class RecordingClient:
    """Stands in for AIOKafkaProducer: records every send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((topic, value, key))
        return asyncio.get_running_loop().create_future()


def _started(producer: JourneyProducer, client: RecordingClient) -> JourneyProducer:
    producer._client = client
    producer._slots = asyncio.Semaphore(producer.max_in_flight)
    return producer


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (raw("form.submitted", {"form": "x"}, when="2024-03-11T09:00:00"), "occurred_at"),
        (raw("form.submitted", {}), "payload.form"),
        (raw("form.submitted", {"form": "x"}, tenant="Not A Tenant"), "tenant"),
        (raw("no.such.type", {}), "type"),
        ({**raw("form.submitted", {"form": "x"}), "colour": "red"}, "colour"),
    ],
)
def test_invalid_events_raise_naming_the_field(document: dict[str, Any], field: str) -> None:
    for form in (document, orjson.dumps(document), orjson.dumps(document).decode()):
        with pytest.raises(InvalidEventError) as caught:
            prepare(form)
        assert any(p.field == field for p in caught.value.problems), caught.value.problems


def test_invalid_json_is_rejected() -> None:
    with pytest.raises(InvalidEventError, match="invalid JSON"):
        prepare(b"{not json")


def test_invalid_event_reaches_no_client() -> None:
    async def scenario() -> None:
        client = RecordingClient()
        producer = _started(JourneyProducer(KafkaSettings()), client)
        with pytest.raises(InvalidEventError, match=r"payload\.form"):
            await producer.send(raw("form.submitted", {}))
        assert client.sent == []
        await producer.send(raw("form.submitted", {"form": "x"}, tenant="acme"))
        assert len(client.sent) == 1

    asyncio.run(scenario())


def test_valid_event_is_keyed_by_event_id_with_canonical_bytes_and_masked() -> None:
    document = raw(
        "message.received", {"medium": "email", "text": f"paid with {CARD}"}, event_id="m-1"
    )
    record = prepare(document)
    assert record.key == b"m-1"  # not the tenant: one tenant's events spread over partitions
    assert record.value == encode_event(validate_document(document))
    assert b"9015" in record.value
    assert CARD.encode() not in record.value
    assert prepare(ev("form.submitted", {"form": "x"}, event_id="f-1")).key == b"f-1"


def test_raise_when_full_sends_nothing_more() -> None:
    async def scenario() -> None:
        client = RecordingClient()
        producer = JourneyProducer(KafkaSettings(), max_in_flight=2, when_full="raise")
        _started(producer, client)
        await producer.send(raw("form.submitted", {"form": "x"}))
        await producer.send(raw("form.submitted", {"form": "x"}))
        with pytest.raises(BufferFullError) as caught:
            await producer.send(raw("form.submitted", {"form": "x"}))
        assert isinstance(caught.value, JourneyLedgerError)
        assert len(client.sent) == 2

    asyncio.run(scenario())


def test_unstarted_producers_refuse_to_send() -> None:
    with pytest.raises(ProducerStateError):
        asyncio.run(JourneyProducer(KafkaSettings()).send(raw("form.submitted", {"form": "x"})))
    with pytest.raises(ProducerStateError):
        SyncJourneyProducer(KafkaSettings()).send(raw("form.submitted", {"form": "x"}))
    with pytest.raises(InvalidEventError):
        SyncJourneyProducer(KafkaSettings()).send(raw("form.submitted", {}))


def test_an_event_the_door_masked_keeps_its_mark_when_sent_again() -> None:
    document = raw("message.received", {"medium": "email", "text": "card 4111 1111 1111 1111 paid"})
    masked = validate_document(document)
    assert masked.redacted
    again = prepare(masked)
    assert again.event.redacted
    assert orjson.loads(again.value)["redacted"] is True
    # A dict (what a producer writes) cannot claim masking that did not happen.
    claimed = prepare(
        {**raw("message.received", {"medium": "email", "text": "hi"}), "redacted": True}
    )
    assert claimed.event.redacted is False
