"""CPU of replay's read of the events topic, without a broker: `python -m journeys.bench.cpu.replay`.

Builds the client's records (`aiokafka` `ConsumerRecord`s) of an events topic as the ledger
writes it: each event of `skewed_load(events, customers, seed)` through the door and encoded,
with its kind and customer headers, a quarter of them written again as a merge forwards them
(the same bytes, more headers: the bench's topic holds about 1.25 records an event), and
merge records between them. Then times `EventCollector.add` over them in batches, as
`read_events` runs it (the collector paused as `bulk_decoding` pauses it), in CPU time
(`time.process_time`), best of `--repeat`; `--top N` prints a cProfile of one run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import time
from typing import Any

from aiokafka.structs import ConsumerRecord  # type: ignore[import-untyped]

from journeys.bench.load import skewed_lines
from journeys.forensics.source import BATCH_RECORDS, EventCollector, ReadStats
from schemas.codec import decode_event, encode_event
from schemas.outputs import HEADER_CUSTOMER_ID, HEADER_KIND, KIND_EVENT, KIND_MERGE
from streams.kafka.records import customer_key

COPIES = 4
"""One event in this many is written again (forwarded on a merge)."""

MERGES = 20
"""One event in this many is followed by a merge record."""


def events_topic(events: int, customers: int, seed: int = 1) -> list[Any]:
    """The client's records of an events topic holding the load's events (see the module)."""
    rng = random.Random(seed)
    records: list[Any] = []

    def record(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        offset = len(records)
        records.append(
            ConsumerRecord(
                "events", 0, offset, 0, 0, key, value, None, len(key), len(value), tuple(headers)
            )
        )

    for number, line in enumerate(skewed_lines(events, customers, seed)):
        event = decode_event(line)
        raw = encode_event(event)
        customer = f"cus_{number % customers:016x}".encode()
        key = customer_key(event.tenant, customer.decode())
        record(key, raw, [(HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, customer)])
        if rng.randrange(COPIES) == 0:
            forwarded = [(HEADER_KIND, KIND_EVENT), (HEADER_CUSTOMER_ID, customer)]
            record(key, raw, [*forwarded, ("forwarded", b"0"), ("settled", b"1")])
        if rng.randrange(MERGES) == 0:
            record(key, b'{"kind":"merge"}', [(HEADER_KIND, KIND_MERGE)])
    return records


def read_seconds(records: list[Any], profiler: cProfile.Profile | None = None) -> tuple[float, int]:
    """CPU seconds of `EventCollector.add` over the records, in `read_events`' batches, and
    the events it read (copies included, as `read_events` counts them)."""
    collector = EventCollector(ReadStats())
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        if profiler is not None:
            profiler.enable()
        started = time.process_time()
        for at in range(0, len(records), BATCH_RECORDS):
            collector.add(records[at : at + BATCH_RECORDS])
        seconds = time.process_time() - started
        if profiler is not None:
            profiler.disable()
    finally:
        if enabled:
            gc.enable()
    events = collector.stats.events
    del collector
    return seconds, events


def main(argv: list[str] | None = None) -> None:
    """Build the records, time the reads, print events per CPU second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--customers", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best CPU is shown")
    parser.add_argument("--top", type=int, default=0, help="print the top N functions (own time)")
    args = parser.parse_args(argv)
    records = events_topic(args.events, args.customers, args.seed)
    runs = sorted(read_seconds(records) for _ in range(args.repeat))
    (best, events), (median, _) = runs[0], runs[len(runs) // 2]
    print(
        f"{len(records)} records, {events} events: best {best:.3f} s CPU "
        f"({events / best:,.0f} events/s, {best / events * 1e6:.2f} us an event), "
        f"median {median:.3f} s ({events / median:,.0f} events/s)"
    )
    if args.top:
        profiler = cProfile.Profile()
        read_seconds(records, profiler)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
