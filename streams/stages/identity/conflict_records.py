"""The live `IDENTITY_CONFLICT` records ingest keeps, and how they follow a person's split.

Each conflict flag is a record of its own per value, customer and flag
(`k/<tenant>/<value>/<customer>/<flag id>`), numbered in the order opened, with a marker per
customer and value (`kc/`). A person's split of a customer moves the flags on a value to the
part holding it, as the pure fold (which applies the decision from the start) names them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from projections.flag_changes import flag_changed, flag_withdrawn
from projections.flags import Flag, flag_id
from projections.identity import IDENTITY_CONFLICT
from projections.regroup import Edge, conflicts, decided_form
from streams.kafka.records import OutRecord, flag_record
from streams.store import keys
from streams.store.state import BatchState


def conflict_number(state: BatchState, tenant: str, value: str) -> int | None:
    """The value's next conflict number (None: no conflict on it), once a list an earlier
    version kept under the value is moved to a record per flag (numbered in its order)."""
    stored = keys.conflicts_key(tenant, value)
    raw = state.get(stored)
    if raw is None or not raw.startswith(b"["):
        return None if raw is None else int(raw)
    kept: list[dict[str, object]] = orjson.loads(raw)
    for number, document in enumerate(kept):
        customer, flag = str(document["customer"]), str(document["flag_id"])
        moved = orjson.dumps({**document, "n": number})
        state.put(keys.conflict_key(tenant, value, customer, flag), moved)
    state.put(stored, str(len(kept)).encode())
    return len(kept)


def live_markers(state: BatchState, tenant: str, customer: str) -> list[tuple[bytes, str]]:
    """A customer's conflict markers (`kc/`) with the value each names, for the values that
    still have conflict flags; the markers of values with none left are deleted."""
    prefix = keys.customer_conflicts_prefix(tenant, customer)
    live = []
    for marker, _ in state.items(prefix):
        value = marker[len(prefix) :].decode()
        if conflict_number(state, tenant, value) is None:
            state.delete(marker)
        else:
            live.append((marker, value))
    return live


def conflicts_under(
    state: BatchState, prefix: bytes, depth: int
) -> list[tuple[bytes, dict[str, Any]]]:
    """The conflict flags kept under a prefix, in the order they were opened; `depth` is the
    number of `/` after the prefix in their keys (a longer value's records share the prefix)."""
    found = [
        (key, orjson.loads(raw))
        for key, raw in state.items(prefix, deep=depth > 0)
        if raw.startswith(b"{") and key.count(b"/", len(prefix)) == depth
    ]
    return sorted(found, key=lambda entry: int(entry[1]["n"]))


def follow_split(
    state: BatchState,
    tenant: str,
    customer: str,
    parts: Mapping[str, Iterable[str]],
    edges: Mapping[str, Iterable[Edge]],
    reason: str,
) -> list[OutRecord]:
    """The conflict flags open on a customer a person split follow the part holding their
    value (else the part whose edges carry it): each such flag is withdrawn on every customer
    it names (the split's reason) and opened again naming that part instead of the customer."""
    out: list[OutRecord] = []
    for marker, value in live_markers(state, tenant, customer):
        target = _holding(value, parts, edges)
        if target is None or target == customer:
            continue
        state.delete(marker)
        mine = keys.customer_value_conflicts_prefix(tenant, value, customer)
        every = keys.value_conflicts_prefix(tenant, value)
        for _, document in conflicts_under(state, mine, 0):
            _, flag = conflicts.from_document(document)
            named = [
                (k, d) for k, d in conflicts_under(state, every, 1) if d["flag_id"] == flag.flag_id
            ]
            old = sorted({str(d["customer"]) for _, d in named})
            new = sorted({target if c == customer else c for c in old})
            renamed = _renamed(flag, old, new) if len(new) > 1 else None
            for stored, kept in named:
                was = str(kept["customer"])
                state.delete(stored)
                out.append(flag_record(flag_withdrawn(tenant, was, flag.flag_id, None, reason)))
                now = target if was == customer else was
                if renamed is None or state.any_under(
                    keys.customer_value_conflicts_prefix(tenant, value, now)
                ):
                    continue  # one conflict per value and customer, as the pure fold keeps
                moved = {**conflicts.to_document(now, renamed), "n": kept["n"]}
                state.put(
                    keys.conflict_key(tenant, value, now, renamed.flag_id), orjson.dumps(moved)
                )
                state.put(keys.customer_conflict_key(tenant, now, value), b"")
                out.append(flag_record(flag_changed(tenant, now, renamed, "opened")))
    return out


def _holding(
    value: str, parts: Mapping[str, Iterable[str]], edges: Mapping[str, Iterable[Edge]]
) -> str | None:
    """The part holding a value (by its decided form), else the one whose edges carry it."""
    for found in (parts, {part: [k for e in held for k in e] for part, held in edges.items()}):
        for part in sorted(found):
            if any(decided_form(key) == value for key in found[part]):
                return part
    return None


def _renamed(flag: Flag, old: list[str], new: list[str]) -> Flag:
    """The conflict flag naming the customers `new` instead of `old` (its id names them)."""
    shown = flag.message.split(" (", 1)[0]  # "<kind> <value>", as `conflict_flag` writes it
    kind, _, value = shown.partition(" ")
    message = flag.message.replace(f"joined {' and '.join(old)}", f"joined {' and '.join(new)}")
    identity = flag_id(IDENTITY_CONFLICT, f"{kind}:{value}\x00{' and '.join(new)}")
    return Flag(
        flag_id=identity,
        rule=flag.rule,
        severity=flag.severity,
        message=message,
        event_ids=flag.event_ids,
        opened_at=flag.opened_at,
        systems=flag.systems,
        sites=flag.sites,
    )
