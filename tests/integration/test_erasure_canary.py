"""The canary: a customer with marker values in every personal field, through a real worker and
its API on a real broker, flags opened, then forgotten; every byte the ledger keeps is scanned.

Markers: an e-mail, a phone number, a name, a plate, chat text and a producer's own payload
field; one touchpoint the door refuses carries them into a dead letter. Scanned: every topic
of the ledger (consumed whole), the worker's RocksDB directories (read through rocksdict, as
RocksDB compresses its files), the worker's log, and the API's answers.

Before forgetting, the scan finds the markers in the raw touchpoints and validated topics (clear
text before the door and the seal: that proves the scan can fail) and in the refused
touchpoint's dead letter, and nowhere else in clear: the identity graph's keys are keyed hashes
(ingest's store and the identity changelog), the events topic, the journey state and its
changelog hold them only as ciphertext. After forgetting: no marker anywhere but those two
topics (a 7-day retention removes them) and the dead-letter topic in a record its tombstone
supersedes; the ring is gone from every store, and no key the ledger still holds opens the
customer's ciphertext. Replay and a rebuilt generation read the log without finding a marker
either.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from rocksdict import AccessType, Options, Rdict
from typer.testing import CliRunner

from journeys.cli import app
from journeys.demo import demo_lines
from journeys.devbroker import find_free_port
from journeys.forensics.source import read_data_keys, read_events
from schemas.codec import encode_event
from streams.config import KafkaSettings
from streams.crypto.fields import decrypt_personal, is_encrypted
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.ring import KeyRing
from streams.crypto.sealing import Sealer
from streams.store import keys
from streams.topics import ledger_topics
from tests.integration.ledger_log import (
    Record,
    WorkerProcess,
    create,
    kafka_for_test,
    produce,
    read_topic_sync,
    sdk_keyed,
    wait_for,
    write_config,
)
from tests.support.canary import Hit, scan_blob

ADMIN = "admin-token-0123456789abcdef-canary"
MASTER = bytes(range(100, 132))
TENANT = "acme-motors"

MARKERS = {
    "name": "Zqxname Canarybird",
    "email": "zqxmail.canary@example.org",
    "phone": "07700 900417",
    "plate": "ZQ71 CNY",
    "text": "zqxchat-sentence",
    "extra": "zqxextra-teal",
}
"""One marker per personal field; the phone is also looked for by its digits."""

PLATE_FORMS = ("ZQ71CNY", "zq71-cny")


def _canary_lines() -> list[bytes]:
    """The demo's first customer (a booking and an SMS that disagree: DATE_MISMATCH, and an
    agent asking again: flags open) with the markers in place of its personal values."""
    text = b"\n".join(demo_lines()[:6]).decode()
    for old, new in (
        ("Priya Shah", MARKERS["name"]),
        ("LM19 XKD", MARKERS["plate"]),
        ("LM19XKD", PLATE_FORMS[0]),
        ("lm19-xkd", PLATE_FORMS[1]),
        ("+44 7700 900123", "+44 7700 900417"),
        ("07700 900123", MARKERS["phone"]),
        ("07700900123", "07700900417"),
    ):
        text = text.replace(old, new)
    lines = []
    for line in text.splitlines():
        document = orjson.loads(line)
        payload = document["payload"]
        if isinstance(payload.get("text"), str):
            payload["text"] += f" {MARKERS['text']}"
        payload["vehicle_colour"] = MARKERS["extra"]
        if document["type"] == "booking.created":
            document["customer"]["email"] = MARKERS["email"]
        lines.append(orjson.dumps(document))
    # and one the door refuses (an unknown type) holding the markers: a dead letter of the
    # customer's, which erasure supersedes with a tombstone
    refused = {**orjson.loads(lines[0]), "event_id": "canary-refused", "type": "no.such.type"}
    refused["customer"] = {**refused["customer"], "email": MARKERS["email"]}
    lines.append(orjson.dumps(refused))
    return lines


def _markers() -> list[str]:
    return [*MARKERS.values(), *PLATE_FORMS]


@dataclass
class Stack:
    kafka: KafkaSettings
    worker: WorkerProcess
    url: str
    data_dir: Path
    config: Path

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return httpx.get(self.url + path, params=params, headers=headers, timeout=10)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=10)

    def replay(self, *args: str) -> bytes:
        """`journeys replay ... --format json` against the log: its output."""
        invoked = CliRunner().invoke(
            app, ["--config", str(self.config), "replay", *args, "--format", "json"]
        )
        assert invoked.exit_code == 0, invoked.output
        return invoked.stdout_bytes

    def export(self, identifier: str) -> bytes:
        """`journeys export IDENT --tenant T` through the API: its output."""
        args = ["export", identifier, "--tenant", TENANT, "--api", self.url, "--token", ADMIN]
        invoked = CliRunner().invoke(app, args)
        assert invoked.exit_code == 0, invoked.output
        return invoked.stdout_bytes

    def topics(self) -> dict[str, list[Record]]:
        return {
            spec.name: read_topic_sync(self.kafka, spec.name) for spec in ledger_topics(self.kafka)
        }


@pytest.fixture(scope="module")
def stack(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    kafka = kafka_for_test(bootstrap_servers, partitions=2)
    names = create(kafka)
    tmp = tmp_path_factory.mktemp("canary")
    config = write_config(tmp / "journeys.toml", kafka)
    with config.open("a") as handle:
        handle.write(f'[privacy]\nmaster_key = "{base64.b64encode(MASTER).decode()}"\n')
        handle.write(
            f'[api]\ntokens = [{{token = "{ADMIN}", tenants = ["{TENANT}"], user = "dpo", '
            'role = "admin"}]\n'
        )
    port = find_free_port()
    worker = WorkerProcess(config, tmp / "w", tmp / "w.log", api_port=port).start()
    asyncio.run(produce(kafka, names.touchpoints, sdk_keyed(_canary_lines())))
    result = Stack(kafka, worker, f"http://127.0.0.1:{port}", tmp / "w", config)

    def flags_open() -> bool:
        try:
            return len(result.get("/v1/flags", status="open").json()["flags"]) >= 1
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    try:
        wait_for(flags_open, 120, "the canary customer's flags opening", 1.0)
        yield result
    finally:
        if worker.alive():
            worker.stop()


def _hits(blob: bytes, where: str) -> list[Hit]:
    return list(scan_blob(blob, _markers(), where))


def _record_blob(record: Record) -> bytes:
    headers = b"".join(k.encode() + v for k, v in record.headers.items())
    return (record.key or b"") + b"\x00" + (record.value or b"") + b"\x00" + headers


def _topic_hits(topics: dict[str, list[Record]]) -> dict[str, list[Record]]:
    """The records holding a marker in any form, by topic."""
    return {
        name: hit
        for name, records in topics.items()
        if (hit := [r for r in records if _hits(_record_blob(r), name)])
    }


def _store_blobs(data_dir: Path) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every key and value of the worker's RocksDB stores, read through rocksdict."""
    found = {}
    for path in sorted(p.parent for p in data_dir.rglob("CURRENT")):
        options = Options(raw_mode=True)
        db = Rdict(str(path), options, access_type=AccessType.read_only())
        try:
            found[path.name] = [(bytes(k), bytes(v)) for k, v in db.items()]
        finally:
            db.close()
    return found


def _superseded(records: list[Record], hit: Record) -> bool:
    """Whether a later record of the same key in the same partition is a tombstone."""
    return any(
        r.key == hit.key
        and r.partition == hit.partition
        and r.offset > hit.offset
        and r.value is None
        for r in records
    )


def _api_answers(stack: Stack, customer_id: str) -> list[bytes]:
    return [
        stack.get(f"/v1/journeys/{customer_id}", tenant=TENANT).content,
        stack.get("/v1/flags", limit=500).content,
    ]


def test_a_forgotten_customer_leaves_no_marker_anywhere(stack: Stack) -> None:
    names = stack.kafka.names()
    served = stack.get("/v1/journeys", plate=PLATE_FORMS[0])
    assert served.status_code == 200, served.text
    journey = served.json()
    customer_id = journey["customer_id"]
    # served decrypted: the API opens the sealed fields with the customer's ring
    assert _hits(served.content, "api")
    before = _topic_hits(stack.topics())
    clear = {names.touchpoints, names.validated}  # before the door and the seal: kept 7 days
    held = {*clear, names.dead_letters}
    assert set(before) == held, sorted(before)  # the identity graph holds keyed hashes
    assert len(before[names.touchpoints]) == 7  # the scan finds clear text where it is
    # the six events and the refused one's notice to ingest (its identifiers, for erasure)
    assert len(before[names.validated]) == 7
    assert len(before[names.dead_letters]) == 1
    sealed_events = [
        r
        for r in read_topic_sync(stack.kafka, names.events)
        if r.headers.get("customer_id") == customer_id.encode()
        and r.headers.get("kind") == b"event"
    ]
    # Touchpoints keyed by event id reach ingest in any order: the customer may have been two
    # that merged, whose events were forwarded to it again (the same events, once more).
    assert len({orjson.loads(r.value or b"{}")["event_id"] for r in sealed_events}) == 6
    assert all(b'"enc:v1:' in (r.value or b"") for r in sealed_events)
    flags_before = sorted(f["flag_id"] for f in stack.get("/v1/flags").json()["flags"])
    assert flags_before
    # an access request's export holds the customer's data, decrypted
    assert len({h.marker for h in _hits(stack.export(f"plate:{PLATE_FORMS[0]}"), "export")}) >= 5
    # replay opens the log with the rings the identity changelog holds
    assert _hits(stack.replay(f"plate:{PLATE_FORMS[0]}", "--tenant", TENANT), "replay")

    erased = stack.post(
        f"/v1/customers/{customer_id}/erasure", {"tenant": TENANT, "grounds": "DSR-0417"}
    )
    assert erased.status_code == 202, erased.text

    def skeleton() -> bool:
        answer = stack.get(f"/v1/journeys/{customer_id}", tenant=TENANT)
        return answer.status_code == 200 and not _hits(answer.content, "api")

    wait_for(skeleton, 90, "the journey served as a skeleton", 1.0)
    after = stack.get(f"/v1/journeys/{customer_id}", tenant=TENANT).json()
    assert [e["type"] for e in after["events"]] == [e["type"] for e in journey["events"]]
    assert "[erased]" in orjson.dumps(after).decode()
    assert sorted(f["flag_id"] for f in stack.get("/v1/flags").json()["flags"]) == flags_before
    for answer in [*_api_answers(stack, customer_id), stack.export(customer_id)]:
        assert not _hits(answer, "api"), answer[:500]
    # the identifier no longer finds anyone (the 404 quotes the caller's own query back)
    assert stack.get("/v1/journeys", plate=PLATE_FORMS[0]).status_code == 404

    assert stack.worker.stop() == 0, stack.worker.log_text()[-3000:]
    assert not _hits(stack.worker.log.read_bytes(), "log")
    for store, items in _store_blobs(stack.data_dir).items():
        for key, value in items:
            assert not _hits(key + b"\x00" + value, store), (store, key)
            assert keys.Prefix.RING.value + f"{TENANT}/{customer_id}".encode() not in key

    topics = stack.topics()
    remaining = _topic_hits(topics)
    assert set(remaining) <= held, sorted(remaining)  # not even in superseded graph records
    changelog = topics[names.identity_changelog]
    # every dead letter holding a marker is superseded by a tombstone of its own key (which
    # names the tenant and where the record was, never an identifier)
    dead = topics[names.dead_letters]
    assert len(remaining[names.dead_letters]) == 1
    for record in remaining[names.dead_letters]:
        assert record.value is not None
        assert _superseded(dead, record), record.key
    assert [r.value for r in dead] == [remaining[names.dead_letters][0].value, None]
    # replay reads the log opened with the keys left: every event [erased], none stitched
    sealer = Sealer(LocalKeyProvider(MASTER))
    data_keys = asyncio.run(read_data_keys(stack.kafka, sealer))
    replayed = asyncio.run(read_events(stack.kafka, tenant=TENANT, data_keys=data_keys))
    assert len({event.event_id for event in replayed}) == 6  # forwarded copies aside
    for event in replayed:
        assert event.customer.model_dump(exclude_none=True)
        assert set(event.customer.model_dump(exclude_none=True).values()) == {"[erased]"}
        assert not _hits(encode_event(event), "replay")
    # a new generation rebuilt from the log after the erasure holds no marker either
    rebuilt_dir = stack.data_dir.parent / "rebuilt"
    args = ["--config", str(stack.config), "rebuild", "--output", str(rebuilt_dir)]
    rebuilt = CliRunner().invoke(app, [*args, "--generation", "1"])
    assert rebuilt.exit_code == 0, rebuilt.output
    generation = dataclasses.replace(stack.kafka, journey_generation=1).names()
    for topic in (generation.journey_changelog, generation.flags):
        for record in read_topic_sync(stack.kafka, topic):
            assert not _hits(_record_blob(record), topic)
    stores = _store_blobs(rebuilt_dir)
    journey_key = keys.journey_key((TENANT, customer_id))
    assert any(key.endswith(journey_key) for items in stores.values() for key, _ in items)
    for store, items in stores.items():
        for key, value in items:
            assert not _hits(key + b"\x00" + value, store), (store, key)
    lost = CliRunner().invoke(
        app, ["--config", str(stack.config), "replay", f"plate:{PLATE_FORMS[0]}"]
    )
    assert lost.exit_code == 2
    assert "no event in the log carries it" in lost.output

    # No key the ledger still holds opens the customer's ciphertext: the rings left in the
    # identity changelog (latest record per key, tombstones applied) and in no store.
    latest: dict[bytes, bytes | None] = {}
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        latest[record.key or b""] = record.value
    provider = LocalKeyProvider(MASTER)
    held: dict[str, bytes] = {}
    for key, value in latest.items():
        if key.startswith(keys.Prefix.RING.value) and value is not None:
            held.update(KeyRing.from_bytes(value).unwrap(provider))
    for record in sealed_events:
        document = orjson.loads(record.value or b"{}")
        opened, erased_any = decrypt_personal(document, held)
        assert erased_any
        sealed_fields = [v for s in ("customer", "payload") for v in document[s].values()]
        assert any(is_encrypted(v) for v in sealed_fields)
        assert not _hits(orjson.dumps(opened), "opened with the keys left")
