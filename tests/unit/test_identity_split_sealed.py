"""A person's split, and a settle by the limits, with sealing on: the same journeys as without.

With a master key, the journey stage holds every identifier sealed; a split deals a journey's
events out by the keyed link tags ingest put beside the sealed values (`streams.crypto.links`),
never by a clear identifier. The stages run over real RocksDB files, held equal to the same
stages without a key and to `journeys check` of the clear lines.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from journeys.cli.check import check_lines
from projections.identifiers import customer_ids
from projections.regroup import decided_form
from projections.regroup.steps import Step
from projections.settings import FoldSettings
from schemas.codec import decode_event
from schemas.outputs import (
    HEADER_CUSTOMER_ID,
    HEADER_KIND,
    KIND_ERASED,
    KIND_EVENT,
    KIND_MOVED,
    KIND_REGROUP,
    KIND_REJOIN,
    ErasureRecord,
    RegroupRecord,
    RejoinRecord,
)
from streams.crypto.fields import is_encrypted, link_tag
from streams.crypto.keys import LocalKeyProvider
from streams.crypto.sealing import Sealer
from streams.stages.journey.split import split_document
from streams.store import keys
from tests.unit.test_identity_limits import _shared_phone_lines
from tests.unit.test_identity_rules import BLOCK, SHOP, _decision, _line, _settings
from tests.unit.test_identity_settles import dense_lines
from tests.unit.test_identity_split import (
    CAROL_AGAIN,
    DECIDED,
    MERGED_THEN_SPLIT,
    SWITCHBOARD_ONLY,
    UNBLOCK,
)
from tests.unit.test_journey_merges import merge_histories
from tests.unit.test_stages import NOW, Pipeline

MASTER = bytes(range(32))

SPLIT_AWAY = [
    _line(
        "r-1",
        "order.placed",
        "2024-03-09T10:00:00Z",
        {"customer_ref": "A-1", "email": "erin@example.com"},
        order_id="X1",
        items=["S"],
    ),
    _line(
        "r-2",
        "order.placed",
        "2024-03-09T10:30:00Z",
        {"customer_ref": "A-1", "email": "finn@example.com"},
        order_id="X2",
        items=["S"],
    ),
]
_block_ref = orjson.loads(_decision("identity.blocked", "dec-9", "2024-03-09T12:00:00Z"))
_block_ref["customer"] = {"customer_ref": "A-1"}

CASES = {
    "block a shared phone": [*SHOP, BLOCK],
    "block, then more events": [*SHOP, CAROL_AGAIN, SWITCHBOARD_ONLY, BLOCK],
    "block the smallest key": [*SPLIT_AWAY, orjson.dumps(_block_ref)],
    "a merged customer split": [*MERGED_THEN_SPLIT, BLOCK],
    **DECIDED,
}


def _run(tmp_path: Path, lines: list[bytes], sealer: Sealer | None, seed: int) -> Pipeline:
    rng = random.Random(seed)
    pipeline = Pipeline(
        tmp_path, sealer=sealer, batch_size=rng.randint(1, 4), crash_rate=0.2, seed=seed
    )
    pipeline.settings = _settings()
    for line in lines:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    return pipeline


def _journeys(pipeline: Pipeline) -> dict[str, list[str]]:
    """Customer id -> event ids, decisions (a journey of their own live) left out."""
    return {
        customer: events
        for (_, customer), events in pipeline.stored().items()
        if not any(e.startswith("dec-") for e in events)
    }


def _offline(lines: list[bytes], settings: FoldSettings) -> dict[str, list[str]]:
    report = check_lines(lines, settings, NOW)
    return {j.customer_id: [e.event_id for e in j.events] for j in report.journeys}


def _sealed_values(pipeline: Pipeline) -> int:
    """How many identifier values the events the journey stage reads carry sealed; fails on a
    clear one."""
    count = 0
    for records in pipeline.events.values():
        for record in records:
            if dict(record.headers).get(HEADER_KIND) not in (KIND_EVENT, KIND_MOVED):
                continue
            customer = orjson.loads(record.value or b"{}")["customer"]
            for value in customer.values():
                assert pipeline.sealer is None or is_encrypted(value), value
                count += is_encrypted(value)
    return count


def _regroups(pipeline: Pipeline) -> list[RegroupRecord]:
    return [
        RegroupRecord.from_bytes(record.value or b"")
        for records in pipeline.events.values()
        for record in records
        if dict(record.headers).get(HEADER_KIND) == KIND_REGROUP
    ]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", range(3))
def test_a_split_with_sealing_on_gives_the_journeys_it_gives_without(
    tmp_path: Path, name: str, seed: int
) -> None:
    lines = list(CASES[name])
    random.Random(seed).shuffle(lines)
    clear = _run(tmp_path / "clear", lines, None, seed)
    sealed = _run(tmp_path / "sealed", lines, Sealer(LocalKeyProvider(MASTER)), seed)
    assert _sealed_values(sealed) > 0  # the journey stage saw no clear identifier
    assert _sealed_values(clear) == 0
    assert _journeys(sealed) == _journeys(clear) == _offline(CASES[name], _settings())
    assert sealed.dead == clear.dead == []
    assert all(r.links or r.dropped_links for r in _regroups(sealed))
    assert not any(r.links or r.dropped_links for r in _regroups(clear))


def test_regroup_records_carry_link_tags_not_found_in_clear(tmp_path: Path) -> None:
    """The tags a split deals sealed events by are those the events carry, and show nothing of
    the identifier (the record's clear `parts` are what ingest sent before sealing too)."""
    sealed = _run(tmp_path, [*SHOP, BLOCK], Sealer(LocalKeyProvider(MASTER)), 0)
    (regroup, *_) = _regroups(sealed)
    tags = {t for held in regroup.links.values() for t in held} | set(regroup.dropped_links)
    assert len(tags) == len(regroup.dropped) + sum(len(k) for k in regroup.parts.values())
    carried = set()
    for records in sealed.events.values():
        for record in records:
            if dict(record.headers).get(HEADER_KIND) == KIND_EVENT:
                customer = orjson.loads(record.value or b"{}")["customer"]
                carried |= {link_tag(v) for v in customer.values()}
    assert tags <= carried
    assert not any("carol" in t or "example" in t or "1134960000" in t for t in tags)
    # another master key gives other tags: they are keyed, not a plain digest
    other = _run(tmp_path / "other", [*SHOP, BLOCK], Sealer(LocalKeyProvider(bytes(32))), 0)
    (again, *_) = _regroups(other)
    assert set(again.dropped_links).isdisjoint(regroup.dropped_links)


@pytest.mark.parametrize("seed", range(3))
def test_a_settle_by_the_limits_with_sealing_on_gives_the_journeys_it_gives_without(
    tmp_path: Path, seed: int
) -> None:
    lines = _shared_phone_lines()
    random.Random(seed).shuffle(lines)

    def run(root: Path, sealer: Sealer | None) -> dict[str, list[str]]:
        pipeline = Pipeline(root, sealer=sealer)
        for line in lines:
            pipeline.append("touchpoints", b"acme", line)
            pipeline.drain()
        assert pipeline.dead == []
        return {
            customer: ids
            for (_, customer), ids in pipeline.stored().items()
            if not all(i.startswith("d-") for i in ids)
        }

    sealed = run(tmp_path / "sealed", Sealer(LocalKeyProvider(MASTER)))
    assert sealed == run(tmp_path / "clear", None) == _offline(lines, FoldSettings())


def _merge_list(pipeline: Pipeline) -> dict[str, list[tuple[str, str]]]:
    """Customer -> its merges (event, customer merged in); identifiers are sealed live."""
    return {
        ref[1]: [(m.event_id, m.from_customer) for m in merges]
        for ref, merges in merge_histories(pipeline).items()
        if merges
    }


def test_a_split_with_sealing_on_keeps_the_merges_that_still_hold(tmp_path: Path) -> None:
    lines = [*MERGED_THEN_SPLIT, BLOCK]
    pipeline = Pipeline(tmp_path, sealer=Sealer(LocalKeyProvider(MASTER)))
    pipeline.settings = _settings()
    for line in MERGED_THEN_SPLIT:
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert [m[0] for ms in _merge_list(pipeline).values() for m in ms] == ["m-3", "m-5"]
    pipeline.append("touchpoints", b"acme", BLOCK)
    pipeline.drain()
    pure = check_lines(lines, _settings(), NOW)
    expected = {
        j.customer_id: [(m.event_id, m.from_customer) for m in j.merges]
        for j in pure.journeys
        if j.merges
    }
    assert _merge_list(pipeline) == expected
    assert [m[0] for ms in expected.values() for m in ms] == ["m-3"]  # Dave's merge is undone
    assert pipeline.dead == []
    # erasing the customer leaves no link tag in its kept merges
    (customer,) = expected
    stored = [
        v
        for p in range(3)
        for k, v in pipeline.journeys.items(p)
        if keys.customer_of(keys.Prefix.MERGES, k) == ("acme", customer)
    ]
    assert b'"links"' in stored[0]
    erasure = ErasureRecord(
        tenant="acme",
        customer=customer,
        event_id="x-1",
        at=datetime(2024, 3, 10, tzinfo=UTC),
        decided_by="r.khan",
        grounds="T-1",
        keys_destroyed=1,
    )
    pipeline.append(
        "events",
        f"acme/{customer}".encode(),
        erasure.to_bytes(),
        ((HEADER_KIND, KIND_ERASED), (HEADER_CUSTOMER_ID, customer.encode())),
    )
    pipeline.drain()
    stored = [
        v
        for p in range(3)
        for k, v in pipeline.journeys.items(p)
        if keys.customer_of(keys.Prefix.MERGES, k) == ("acme", customer)
    ]
    assert stored
    assert b'"links"' not in stored[0]


@pytest.mark.parametrize(("log", "seed"), [(0, 0), (0, 3), (1, 8), (2, 1)])
def test_settles_ahead_of_the_journey_stage_with_sealing_on_give_the_pure_fold(
    tmp_path: Path, log: int, seed: int
) -> None:
    """Events moved or passed on to a customer settled again since follow its numbered steps
    (`projections.regroup.steps.follow`) through the link tags, as in clear."""
    lines = dense_lines(log)
    random.Random(seed).shuffle(lines)
    pipeline = Pipeline(tmp_path, sealer=Sealer(LocalKeyProvider(MASTER)))
    for line in lines:  # ingest processes every batch before any journey batch
        pipeline.append("touchpoints", b"acme", line)
    pipeline.drain()
    assert _sealed_values(pipeline) > 0
    stored = pipeline.stored()
    assert stored == {
        ("acme", customer): ids for customer, ids in _offline(lines, FoldSettings()).items()
    }
    assert pipeline.dead == []


def _split_records(pipeline: Pipeline) -> list[bytes]:
    """Every split record (`x/`) the journey stage keeps."""
    return [
        value
        for partition in range(3)
        for key, value in pipeline.journeys.items(partition, keys.Prefix.SPLIT.value)
    ]


def _clear_keys(lines: list[bytes]) -> set[str]:
    """The identifier keys of the lines' customers, and their decided forms, in clear."""
    found = set()
    for raw in lines:
        event = decode_event(raw)
        for ident in customer_ids(event.customer, "GB"):
            found |= {ident.key, decided_form(ident.key), ident.value}
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_split_records_with_sealing_on_name_no_identifier_in_clear(
    tmp_path: Path, name: str
) -> None:
    """The parts, dropped keys, events left alone and steps a split record keeps are link
    tags: the record of one part never holds another part's identifiers."""
    lines = CASES[name]
    pipeline = _run(tmp_path, lines, Sealer(LocalKeyProvider(MASTER)), 0)
    records = _split_records(pipeline)
    assert records
    clear = _clear_keys(lines)
    for record in records:
        document = orjson.loads(record)
        assert "tags" not in document
        named = str(document).casefold()
        assert not [key for key in clear if key.casefold() in named], document
        assert document.get("parts") is None or document["tagged"] is True


def test_erasing_a_part_of_a_split_with_sealing_on_leaves_its_keys_in_no_split_record(
    tmp_path: Path,
) -> None:
    """Carol's customer is split from Dave's by the block; Dave is then erased. The split
    records of Carol (the split customer, whose record names Dave's part) and Dave's own never
    held Dave's keys: the erasure deletes Dave's, and Carol's names only link tags the
    erased identifiers' hashes."""
    sealer = Sealer(LocalKeyProvider(MASTER))
    pipeline = _run(tmp_path, [*SHOP, BLOCK], sealer, 0)
    (regroup, *_) = _regroups(pipeline)
    (dave,) = [part for part, held in regroup.parts.items() if "email:dave@example.com" in held]
    erasure = ErasureRecord(
        tenant="acme",
        customer=dave,
        event_id="x-1",
        at=datetime(2024, 3, 10, tzinfo=UTC),
        decided_by="r.khan",
        grounds="T-1",
        keys_destroyed=1,
    )
    pipeline.append(
        "events",
        f"acme/{dave}".encode(),
        erasure.to_bytes(),
        ((HEADER_KIND, KIND_ERASED), (HEADER_CUSTOMER_ID, dave.encode())),
    )
    pipeline.drain()
    records = _split_records(pipeline)
    assert records  # Carol's
    daves = regroup.links[dave]
    assert any(tag in record.decode() for record in records for tag in daves)
    for record in records:
        assert b"dave" not in record
        assert b"1134960000" not in record
    assert pipeline.dead == []


def test_an_unblock_with_sealing_on_brings_back_events_left_alone_by_their_tags(
    tmp_path: Path,
) -> None:
    """The rejoin record carries the link tags of the value's spellings; the split record, which
    names the lone event by its tags, finds it by them: the journeys of before come back."""
    lines = [*SHOP, SWITCHBOARD_ONLY, CAROL_AGAIN]
    sealer = Sealer(LocalKeyProvider(MASTER))
    pipeline = _run(tmp_path, [*lines, BLOCK, UNBLOCK], sealer, 0)
    rejoins = [
        RejoinRecord.from_bytes(record.value or b"")
        for records in pipeline.events.values()
        for record in records
        if dict(record.headers).get(HEADER_KIND) == KIND_REJOIN
    ]
    assert rejoins
    assert all(len(r.lifted_links) == 2 for r in rejoins)  # international and national
    assert _journeys(pipeline) == _offline(lines, _settings())
    assert pipeline.dead == []


def test_a_tagged_split_turns_the_clear_steps_of_a_record_from_before_into_tags() -> None:
    """A split record in clear (from before tagged records) that a split with sealing on
    rewrites keeps its steps, their keys turned into the tags it knew, and names no key."""
    carol, phone = "email:carol@example.com", "phone:+44:1134960000"
    before = RegroupRecord(
        tenant="acme",
        customer="cus_c",
        parts={"cus_c": (carol, phone)},
        reason="settled",
        decision_id="e-1",
        sequence=1,
        links={"cus_c": ("tag-carol", "tag-phone")},
    )
    clear = orjson.loads(split_document(before, {}))
    del clear["tagged"]  # as a record from before kept it: keys, and a tag -> key map
    clear.update(
        parts=before.parts,
        steps=[{"n": 1, "parts": {"cus_c": [carol, phone]}, "dropped": []}],
        tags={"tag-carol": carol, "tag-phone": phone},
    )
    now = RegroupRecord(
        tenant="acme",
        customer="cus_c",
        parts={"cus_c": (carol,)},
        reason="blocked",
        decision_id="dec-1",
        dropped=(phone,),
        sequence=2,
        links={"cus_c": ("tag-carol",)},
        dropped_links=("tag-phone",),
    )
    document = orjson.loads(split_document(now, {}, orjson.dumps(clear)))
    assert document["parts"] == {"cus_c": ["tag-carol"]}
    assert document["dropped"] == ["tag-phone"]
    assert [Step.from_document(s) for s in document["steps"]] == [
        Step(1, {"cus_c": frozenset({"tag-carol", "tag-phone"})}),
        Step(2, {"cus_c": frozenset({"tag-carol"})}, frozenset({"tag-phone"})),
    ]
    assert "example.com" not in str(document)
    assert "1134960000" not in str(document)
