"""Flags' handling notes opened for serving: the personal free text of `flag.*` events.

The journey stage folds sealed events, so a flag on the flag topic carries people's notes (and
the `reopened_because` and `resolution` texts quoting them) sealed. They are opened here with
each customer's ring (`rings`), read `[erased]` once the customer was erased, and `[sealed]`
while the ring's worker cannot be asked.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from journeys.server.api import ApiContext
from journeys.server.privacy.rings import DataKeys, data_keys_by_customer
from journeys.server.problems import HttpProblem
from streams.crypto.fields import PREFIX
from streams.crypto.opening import open_flag


async def opened_flags(context: ApiContext, flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Served flags with their sealed handling notes opened with their customers' rings (one
    ring read per customer with a sealed note on the page, or none while the ring is cached;
    flags without one are untouched). A cached ring that lacks a key a note names (kept from
    before a merge) is asked for again and the customer's flags opened once more."""
    sealed: dict[str, set[str]] = defaultdict(set)
    for flag in flags:
        if _has_sealed(flag.get("handling")):
            sealed[str(flag["tenant"])].add(str(flag["customer_id"]))
    if not sealed:
        return flags
    rings = await _rings_of(context, sealed)
    if rings is None:  # this worker does not seal: nothing it could open
        return flags
    opened = _opened(flags, rings)
    stale: dict[str, set[str]] = defaultdict(set)
    for (tenant, customer_id), data_keys in rings.items():
        if data_keys is not None and data_keys.stale:
            stale[tenant].add(customer_id)
    if not stale:
        return opened
    again = await _rings_of(context, stale, fresh=True) or {}
    return [
        _opened([flag], again)[0]
        if (str(flag["tenant"]), str(flag["customer_id"])) in again
        else done
        for flag, done in zip(flags, opened, strict=True)
    ]


async def _rings_of(
    context: ApiContext, customers: dict[str, set[str]], fresh: bool = False
) -> dict[tuple[str, str], DataKeys | None] | None:
    """Each customer's data keys (None: its ring's worker cannot be asked now); None when this
    worker does not seal."""
    rings: dict[tuple[str, str], DataKeys | None] = {}
    for tenant, ids in customers.items():
        try:
            found = await data_keys_by_customer(context, tenant, ids, fresh)
        except HttpProblem:  # the ring's worker cannot be asked now: the list still answers
            rings.update({(tenant, c): None for c in ids})
            continue
        if found is None:
            return None
        rings.update({(tenant, c): found[c] for c in ids})
    return rings


def _opened(
    flags: list[dict[str, Any]], rings: dict[tuple[str, str], DataKeys | None]
) -> list[dict[str, Any]]:
    return [
        open_flag(flag, str(flag["tenant"]), rings[key]) if key in rings else flag
        for flag, key in ((f, (str(f["tenant"]), str(f["customer_id"]))) for f in flags)
    ]


def _has_sealed(value: Any) -> bool:
    if isinstance(value, str):
        return PREFIX in value
    if isinstance(value, dict):
        return any(_has_sealed(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_sealed(v) for v in value)
    return False
