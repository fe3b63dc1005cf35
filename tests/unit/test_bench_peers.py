"""The peers' pure parts: their record keys, their per-customer fold, the summary of their runs."""

from __future__ import annotations

import orjson

from journeys.bench.load import skewed_lines
from journeys.bench.peers import (
    MISSING,
    PEERS,
    PeerRun,
    fold_customer,
    installed,
    peer_key,
    peers_summary,
)
from schemas.codec import decode_event


def _line(event_id: str, occurred_at: str, tenant: str = "acme", email: str = "a@x.org") -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "tenant": tenant,
            "source": {"system": "web"},
            "customer": {"email": email, "phone": "+44 20 7946 0000"},
            "type": "form.submitted",
            "payload": {"form": "contact"},
        }
    )


def test_peer_key_is_the_tenant_and_the_first_identifier() -> None:
    assert peer_key(_line("e1", "2026-06-01T08:00:00Z")) == b"acme/email:a@x.org"
    assert peer_key(_line("e1", "2026-06-01T08:00:00Z", tenant="other")) == b"other/email:a@x.org"


def test_peer_keys_of_the_load_group_its_events_by_customer() -> None:
    lines = skewed_lines(400, 80, seed=2)
    keys = {peer_key(line) for line in lines}
    # Peers do not stitch: a customer known by several first identifiers has several keys.
    assert 80 <= len(keys) < 400


def test_fold_customer_starts_a_state_and_appends_in_arrival_order() -> None:
    first = decode_event(_line("e1", "2026-06-01T09:00:00Z"))
    second = decode_event(_line("e2", "2026-06-01T08:00:00Z"))

    state = fold_customer(None, first)
    after = fold_customer(state, second)

    assert state == {
        "events": ["e1"],
        "types": {"form.submitted": 1},
        "latest": first.occurred_at.isoformat(),
    }
    assert after["events"] == ["e1", "e2"]
    assert after["types"] == {"form.submitted": 2}
    assert after["latest"] == first.occurred_at.isoformat()  # a late event keeps the latest
    assert state["events"] == ["e1"]  # the state read is never changed in place


def test_fold_customer_state_survives_a_json_round_trip() -> None:
    events = [decode_event(line) for line in skewed_lines(200, 40, seed=4)]
    state = None
    for event in events:
        state = orjson.loads(orjson.dumps(fold_customer(state, event)))
    assert state is not None
    assert len(state["events"]) == 200
    assert sum(state["types"].values()) == 200


def test_peers_summary_divides_the_pipeline_by_the_best_peer() -> None:
    runs = [
        PeerRun("faust", 3_000, 2.0, "rocksdb://"),
        PeerRun("quixstreams", 3_000, 0.5, "rocksdb"),
    ]

    peers, ratio = peers_summary(4_500.0, runs)

    assert peers["faust"] == {
        "events_per_s": 1_500,
        "records": 3_000,
        "seconds": 2.0,
        "store": "rocksdb://",
    }
    assert peers["quixstreams"]["events_per_s"] == 6_000
    assert ratio == 0.75


def test_peers_summary_of_no_peer_has_no_ratio() -> None:
    assert peers_summary(4_500.0, []) == ({}, 0.0)


def test_every_peer_is_named_once() -> None:
    assert PEERS == ("faust", "quixstreams")


def test_a_peer_not_installed_is_named_without_a_figure() -> None:
    runs = [PeerRun("faust", 1_000, 1.0, "rocksdb://")]

    peers, ratio = peers_summary(2_000.0, runs, missing=["quixstreams"])

    assert peers["quixstreams"] == {"events_per_s": 0, "missing": MISSING}
    assert peers["faust"]["events_per_s"] == 1_000
    assert ratio == 2.0


def test_the_peers_of_this_environment_are_installed() -> None:
    # The development environment has the `bench` extra (make's `uv sync --extra bench`).
    assert all(installed(name) for name in PEERS)
