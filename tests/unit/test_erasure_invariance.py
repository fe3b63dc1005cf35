"""Erasure invariance as served (hypothesis, fixed budget): erasing one customer changes no
other customer's journey or flags as the API opens them, handling notes included; the erased
customer keeps its skeleton and its flags, every personal value of both reading `[erased]`.

The stage drivers' side (stored bytes, rings and flag changes) is
`test_erasure.test_erasing_one_customer_changes_no_other_customer`; this one reads what a
person is shown: journeys opened with their rings (`streams.queries.opened`) and the flag
index's flags with their notes opened (`streams.crypto.opening.open_flag`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.journey import Journey
from schemas.codec import encode_event
from schemas.events import IDENTIFIER_KINDS
from streams.crypto.fields import ERASED, PREFIX
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.opening import open_flag
from streams.crypto.ring import KeyRing
from streams.crypto.sealing import Sealer
from streams.flag_index import FlagIndex
from streams.queries import opened
from streams.stages.journey.stage import decode_journey
from tests.factories import raw
from tests.unit.test_erasure import _erasure, _journeys, _rings
from tests.unit.test_properties import Scenario, scenarios
from tests.unit.test_stages import Pipeline

MASTER = bytes(range(64, 96))

Ref = tuple[str, str]


def _sealer() -> Sealer:
    return Sealer(LocalKeyProvider(MASTER))


def _opened(pipeline: Pipeline, sealer: Sealer) -> dict[Ref, Journey]:
    rings = _rings(pipeline)
    found = {}
    for ref, value in _journeys(pipeline).items():
        ring = rings.get(ref)
        data_keys = {} if ring is None else sealer.unwrapped(KeyRing.from_bytes(ring))
        found[ref] = opened(decode_journey(ref, value), (), data_keys)[0]
    return found


def _served(pipeline: Pipeline, sealer: Sealer) -> dict[Ref, tuple[list[bytes], list[Any]]]:
    """Per customer: its journey's events and its standing flags, as the API shows them."""
    rings = {ref: sealer.unwrapped(KeyRing.from_bytes(v)) for ref, v in _rings(pipeline).items()}
    index = FlagIndex()
    for change in pipeline.flags:
        index.apply(change)
    served: dict[Ref, tuple[list[bytes], list[Any]]] = {}
    for ref, journey in _opened(pipeline, sealer).items():
        flags = [open_flag(f, ref[0], rings.get(ref, {})) for f in index.of_customer(*ref)]
        served[ref] = ([encode_event(e) for e in journey.events], flags)
    return served


def _notes(pipeline: Pipeline, sealer: Sealer) -> list[bytes]:
    """A person's note on every standing flag, carrying an identifier of its customer (so
    ingest stitches it there): personal free text, sealed under that customer's key."""
    journeys = _opened(pipeline, sealer)
    lines = []
    for number, change in enumerate(c for c in pipeline.flags if c.change == "opened"):
        journey = journeys.get((change.tenant, change.customer_id))
        carried = [
            (kind, value)
            for event in (journey.events if journey else ())
            for kind in IDENTIFIER_KINDS
            if isinstance(value := getattr(event.customer, kind, None), str)
        ]
        if not carried:
            continue
        kind, value = carried[0]
        document = raw(
            "flag.noted",
            {"flag_id": change.flag.flag_id, "by": "r.khan", "note": f"zq7 note {number}"},
            customer={kind: value},
            system="journeys",
            event_id=f"note-{number}",
            tenant=change.tenant,
        )
        lines.append(orjson.dumps(document))
    return lines


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(max_events=12), pick=st.integers(0, 1000))
def test_erasing_one_customer_changes_nothing_another_customer_is_shown(
    scenario: Scenario, pick: int
) -> None:
    sealer = _sealer()
    with tempfile.TemporaryDirectory() as root:
        pipeline = Pipeline(Path(root), sealer=sealer)
        for event in scenario.events:
            pipeline.append("touchpoints", event.tenant.encode(), encode_event(event))
        pipeline.drain()
        for line in _notes(pipeline, sealer):
            pipeline.append("touchpoints", orjson.loads(line)["tenant"].encode(), line)
        pipeline.drain()
        before = _served(pipeline, sealer)
        if not before:
            return
        index = FlagIndex()
        for change in pipeline.flags:
            index.apply(change)
        tenant, customer = ref = sorted(before)[pick % len(before)]
        sealed_flags = index.of_customer(tenant, customer)
        pipeline.append("touchpoints", tenant.encode(), _erasure(customer, tenant=tenant))
        pipeline.drain()
        assert not pipeline.dead
        after = _served(pipeline, sealer)
        events, flags = after.pop(ref)
        events_before, _ = before.pop(ref)
        assert after == before  # nobody else's journey, flags or notes changed
        # the erased customer: the same events (ids, types, times) and flags, nothing personal
        ids = [orjson.loads(e)["event_id"] for e in events]
        assert ids == [orjson.loads(e)["event_id"] for e in events_before]
        assert flags == [open_flag(f, tenant, {}) for f in sealed_flags]
        shown = b"".join(events) + orjson.dumps(flags)
        assert PREFIX.encode() not in shown
        assert b"zq7" not in shown
        if any(b"zq7" in e for e in events_before):
            assert ERASED.encode() in shown
