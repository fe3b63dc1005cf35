"""The peers' applications, each run as `python -m journeys.bench.peer_apps NAME ...`.

faust-streaming: an agent over the peer's topic folding into a `Table` stored in RocksDB
(`rocksdb://`, through rocksdict: python-rocksdb is not installed). quixstreams: an
`Application` whose dataframe folds into its `State` (RocksDB). Both decode every record with
the ledger's pydantic model and fold with `peers.fold_customer`; both time themselves from the
first record to the last one committed and write `{"records", "seconds", "store"}` to `--out`.
Their consumer groups use short sessions: Tansu completes a join in about half of one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from journeys.bench.peers import SESSION_TIMEOUT_MS, fold_customer
from schemas.codec import decode_event


def _write(out: Path, records: int, seconds: float, store: str) -> None:
    """Write the measurement atomically (the parent reads it once the process is gone)."""
    partial = out.with_suffix(".partial")
    partial.write_bytes(orjson.dumps({"records": records, "seconds": seconds, "store": store}))
    partial.replace(out)


def run_faust(args: argparse.Namespace) -> None:
    """A faust-streaming agent folding each customer into a RocksDB-backed table."""
    import faust
    from faust.stores import rocksdb
    from faust.types import StreamT

    # Named with the binding faust drives RocksDB through (rocksdict whenever it is installed).
    store = "rocksdb:// (" + ("rocksdict" if rocksdb.USE_ROCKSDICT else "python-rocksdb") + ")"
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap_servers}",
        datadir=str(args.data_dir),
        store="rocksdb://",
        web_enabled=False,
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_rebalance_timeout=SESSION_TIMEOUT_MS / 2000,
        broker_heartbeat_interval=SESSION_TIMEOUT_MS / 4000,
        topic_partitions=args.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        "customers",
        default=None,
        partitions=args.partitions,
        key_type=bytes,  # the app's defaults: raw keys, JSON values
    )
    seen = {"records": 0}
    first: list[float] = []

    @app.agent(topic)
    async def fold(stream: StreamT[Any]) -> None:
        async for key, value in stream.items():
            if not first:
                first.append(time.perf_counter())
            table[key] = fold_customer(table.get(key), decode_event(value))
            seen["records"] += 1
            if seen["records"] == args.expect:
                await app.producer.flush()  # the changelog writes
                await app.consumer.commit()
                _write(args.out, seen["records"], time.perf_counter() - first[0], store)
                os.kill(os.getpid(), signal.SIGTERM)  # faust's worker stops cleanly on it

    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()


def run_quixstreams(args: argparse.Namespace) -> None:
    """A quixstreams application folding each customer into its RocksDB state."""
    from quixstreams import Application
    from quixstreams.state import State

    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=str(args.data_dir),
        loglevel="WARNING",
        # Tansu has no idempotent producers; quixstreams turns them on by default.
        producer_extra_config={"enable.idempotence": False},
        consumer_extra_config={
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 4,
        },
    )
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    first: list[float] = []

    def fold(value: bytes, state: State[str, Any]) -> None:
        if not first:
            first.append(time.perf_counter())
        state.set("journey", fold_customer(state.get("journey"), decode_event(value)))

    sdf = app.dataframe(topic)
    sdf.update(fold, stateful=True)
    app.run(count=args.expect)  # returns after the last record's checkpoint is committed
    _write(args.out, args.expect, time.perf_counter() - first[0], "rocksdb (quixstreams State)")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments and run the peer named first."""
    parser = argparse.ArgumentParser(prog="python -m journeys.bench.peer_apps")
    parser.add_argument("peer", choices=("faust", "quixstreams"))
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.peer == "faust":
        run_faust(args)
    else:
        run_quixstreams(args)


if __name__ == "__main__":
    main()
