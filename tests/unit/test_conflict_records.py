"""Ingest's open conflicts: a record per flag and customer, so none grows with a shared value.

A switchboard phone named by many customers opens an IDENTITY_CONFLICT for each held link;
ingest keeps each under its own key (`k/<tenant>/<value>/<customer>/<flag id>`), reads a
value's by prefix when a decision resolves them, and still reads the single list an earlier
version kept per value.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from projections.settings import FoldSettings
from schemas.outputs import FlagChange
from streams.kafka.records import InRecord
from streams.stages.ingest import ingest
from streams.stages.recent import RecentEvents
from streams.stages.validate import validate
from streams.store import keys
from streams.store.state import BatchState, LocalStore
from tests.unit.test_identity_rules import BLOCK, SHOP, _line, _settings
from tests.unit.test_identity_split import CONFLICT_THEN_MERGE

LIMITED = _settings({"limits": {"email": 1}})
"""One email per customer: each customer sharing the phone is a held link, not a merge."""

Changes = list[tuple[str, str, str, str | None]]


def _sharing(customers: int) -> list[bytes]:
    """`customers` people leaving their own email with the shop's switchboard number."""
    return [
        _line(
            f"e-{n:04d}",
            "form.submitted",
            f"2024-03-09T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
            {"email": f"c{n:04d}@example.com", "phone": "0113 496 0000"},
            form="contact",
        )
        for n in range(customers)
    ]


def _validated(lines: list[bytes]) -> list[InRecord]:
    raw = [InRecord("touchpoints", 0, n, None, line) for n, line in enumerate(lines)]
    door = [out for out in validate(raw) if out.destination == "validated"]
    return [InRecord("validated", 0, n, o.key, o.value, 0, o.headers) for n, o in enumerate(door)]


def _ingest(
    store: LocalStore, lines: list[bytes], batch: int, settings: FoldSettings = LIMITED
) -> Changes:
    """Ingest the lines in batches of `batch` over the store; the flag changes, in order."""
    records = _validated(lines)
    changes: Changes = []
    for start in range(0, len(records), batch):
        state = BatchState(store, 0)
        for out in ingest(state, records[start : start + batch], settings, recent=RecentEvents()):
            if out.destination == "flags":
                change = FlagChange.from_bytes(out.value or b"{}")
                changes.append(
                    (change.change, change.customer_id, change.flag_id, change.merged_into)
                )
        store.write(0, state.changes)
    return changes


def _conflict_entries(store: LocalStore) -> dict[bytes, bytes]:
    return dict(store.items(0, keys.Prefix.CONFLICTS.value))


def test_no_state_record_grows_with_the_customers_sharing_a_held_value(tmp_path: Path) -> None:
    largest = {}
    # (a record's number takes one digit more per tenfold: both runs number in three digits)
    for customers in (60, 240):
        store = LocalStore(tmp_path / str(customers))
        changes = _ingest(store, _sharing(customers), batch=64)
        # each later customer's held link opens a conflict on it and on the first one's
        assert [c for c, *_ in changes] == ["opened"] * (2 * (customers - 1))
        assert len(_conflict_entries(store)) > customers  # the flags are all kept, apart
        largest[customers] = max(len(value) for _, value in store.items(0))
        store.close()
    assert largest[240] == largest[60]


def _to_legacy(store: LocalStore) -> int:
    """Put every value's conflict records back into the single list an earlier version kept
    (its documents in the order opened, without their numbers); the lists written."""
    by_value: dict[bytes, list[dict[str, object]]] = {}
    rewrite: dict[bytes, bytes | None] = {}
    for key, value in _conflict_entries(store).items():
        rewrite[key] = None
        if value.startswith(b"{"):
            head = key.split(b"/")
            by_value.setdefault(b"/".join(head[:3]), []).append(orjson.loads(value))
    for head, documents in by_value.items():
        documents.sort(key=lambda document: int(str(document["n"])))
        rewrite[head] = orjson.dumps([{k: v for k, v in d.items() if k != "n"} for d in documents])
    store.write(0, rewrite)
    return len(by_value)


def test_a_conflict_list_kept_by_an_earlier_version_is_resolved_by_a_decision(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "legacy")
    opened = _ingest(store, SHOP, batch=1)
    assert [c for c, *_ in opened] == ["opened", "opened"]
    assert _to_legacy(store) == 1
    (legacy,) = _conflict_entries(store).values()
    assert len(orjson.loads(legacy)) == 2
    resolved = _ingest(store, [BLOCK], batch=1)
    assert resolved == [("resolved", customer, flag, None) for _, customer, flag, _ in opened]
    assert _conflict_entries(store) == {}
    assert list(store.items(0, keys.Prefix.CUSTOMER_CONFLICTS.value)) == []
    store.close()


def test_a_legacy_list_follows_a_merge_and_resolves_as_records_kept_apart_do(
    tmp_path: Path,
) -> None:
    held, rest = CONFLICT_THEN_MERGE[:3], [*CONFLICT_THEN_MERGE[3:], BLOCK]
    apart = LocalStore(tmp_path / "apart")
    expected = _ingest(apart, held, batch=1) + _ingest(apart, rest, batch=1)
    apart.close()
    assert {"opened", "withdrawn", "resolved"} <= {c for c, *_ in expected}
    legacy = LocalStore(tmp_path / "legacy")
    before = _ingest(legacy, held, batch=1)
    assert _to_legacy(legacy) == 1
    assert before + _ingest(legacy, rest, batch=1) == expected
    assert _conflict_entries(legacy) == {}
    legacy.close()


def test_move_and_resolve_see_conflicts_opened_in_the_same_batch(tmp_path: Path) -> None:
    lines = [*CONFLICT_THEN_MERGE, BLOCK]
    one_by_one = LocalStore(tmp_path / "apart")
    expected = _ingest(one_by_one, lines, batch=1)
    one_by_one.close()
    # opened; the merging event settles (it comes before the value's holder): withdrawn on
    # both and opened on the customers the pure fold names; then resolved on both
    assert [c for c, *_ in expected] == [
        "opened",
        "opened",
        "withdrawn",
        "withdrawn",
        "opened",
        "opened",
        "resolved",
        "resolved",
    ]
    together = LocalStore(tmp_path / "together")
    assert _ingest(together, lines, batch=len(lines)) == expected
    assert _conflict_entries(together) == {}
    together.close()


def test_a_deep_prefix_scan_and_any_under_see_the_batch_s_writes_and_deletes(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "state")
    state = BatchState(store, 0)
    state.put(b"k/acme/phone:1/cus_a/flg_1", b"{}")
    state.put(b"k/acme/phone:1/cus_b/flg_2", b"{}")
    store.write(0, state.changes)
    state = BatchState(store, 0)
    state.delete(b"k/acme/phone:1/cus_a/flg_1")
    state.put(b"k/acme/phone:1/cus_c/flg_3", b"{}")
    assert [k for k, _ in state.items(b"k/acme/phone:1/", deep=True)] == [
        b"k/acme/phone:1/cus_b/flg_2",
        b"k/acme/phone:1/cus_c/flg_3",
    ]
    assert not state.any_under(b"k/acme/phone:1/cus_a/")
    assert state.any_under(b"k/acme/phone:1/cus_b/")
    assert state.any_under(b"k/acme/phone:1/cus_c/")
    state.delete(b"k/acme/phone:1/cus_c/flg_3")
    assert not state.any_under(b"k/acme/phone:1/cus_c/")
    store.close()


def test_erasing_a_customer_deletes_its_conflict_flags_and_leaves_the_others(
    tmp_path: Path,
) -> None:
    from tests.unit.test_erasure import _erasure

    store = LocalStore(tmp_path / "state")
    _ingest(store, _sharing(3), batch=64)
    entries = _conflict_entries(store)
    owners = {key.split(b"/")[3].decode() for key in entries if key.count(b"/") == 4}
    assert len(owners) == 3  # the three customers each hold a conflict on the phone
    erased = sorted(owners)[0]
    _ingest(store, [_erasure(erased)], batch=1)
    after = _conflict_entries(store)
    left = {key.split(b"/")[3].decode() for key in after if key.count(b"/") == 4}
    assert left == owners - {erased}  # its documents quote the value: gone with it
    assert not dict(store.items(0, keys.customer_conflicts_prefix("acme", erased)))
