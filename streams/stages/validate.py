"""Stage 0, the door: validate, mask and encode touchpoints, keyed by anything; no state.

Everything a touchpoint needs before stitching depends on the record alone, so this stage
runs in any number of workers over all partitions of the raw topic, whatever its keys. It
writes each valid event's canonical bytes to the validated topic keyed by tenant, where the
single writer of the tenant's identity graph (ingest) reads them back with the trusted
reader; everything else goes to dead letters with the reason naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from schemas.codec import decode_event, encode_event
from schemas.errors import InvalidEventError
from streams.kafka.records import InRecord, OutRecord, dead_letter, failure_reason, with_notices
from streams.stages.order import in_time_order, timed
from streams.stages.recent import RecentEvents

MAX_EVENT_BYTES = 256 * 1024
"""The largest touchpoint accepted: a journey holds its events in one state record, and Kafka's
default record limit is 1 MiB."""


def refusal(record: InRecord, max_bytes: int) -> str | None:
    """Why a record is refused before decoding (empty, too large), or None."""
    if not record.value:
        return "empty record: a touchpoint is one JSON object"
    if len(record.value) > max_bytes:
        return (
            f"record too large: {len(record.value):,} bytes, the limit is {max_bytes:,}; "
            "keep documents and attachments out of events (send a reference instead)"
        )
    return None


def validate(
    records: Iterable[InRecord],
    max_bytes: int = MAX_EVENT_BYTES,
    recent: RecentEvents | None = None,
) -> list[OutRecord]:
    """One batch of raw touchpoints in; validated events (keyed by tenant) and dead letters out.

    With `recent`, each event is kept under the bytes written for it, for an ingest stage in
    this process to take instead of decoding them again. A record that cannot be decoded,
    whatever the exception, goes to dead letters with the reason; the batch goes on. A dead
    letter whose customer can be read gets a notice to ingest (`with_notices`), so that
    erasing the customer supersedes it.
    """
    return with_notices([out for _, out in _validated(records, max_bytes, recent)])


def validate_poll(
    partitions: Sequence[Iterable[InRecord]],
    max_bytes: int = MAX_EVENT_BYTES,
    recent: RecentEvents | None = None,
) -> list[OutRecord]:
    """`validate` over a poll's partitions, the outputs merged in the order the touchpoints
    happened, each partition's own order kept (`streams.stages.order`)."""
    timed_partitions = [timed(_validated(records, max_bytes, recent)) for records in partitions]
    return with_notices(in_time_order(timed_partitions))


def _validated(
    records: Iterable[InRecord], max_bytes: int, recent: RecentEvents | None
) -> Iterator[tuple[float | None, OutRecord]]:
    """Each record's output, with when its event happened (None for a dead letter)."""
    for record in records:
        reason = refusal(record, max_bytes)
        if reason is not None:
            yield None, dead_letter(record, reason)
            continue
        assert record.value is not None  # refusal() turned empty records away
        try:
            event = decode_event(record.value)
            body = encode_event(event)
        except InvalidEventError as exc:
            yield None, dead_letter(record, "; ".join(str(p) for p in exc.problems))
            continue
        except Exception as exc:  # one record must never stop the stage: it goes aside
            yield None, dead_letter(record, failure_reason("decode", exc), exc)
            continue
        if recent is not None:
            recent.remember(body, event)
        yield event.occurred_at.timestamp(), OutRecord("validated", event.tenant.encode(), body)
