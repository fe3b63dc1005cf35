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
from journeys.server.privacy.rings import data_keys_by_customer
from journeys.server.problems import HttpProblem
from streams.crypto.fields import PREFIX
from streams.crypto.opening import open_flag


async def opened_flags(context: ApiContext, flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Served flags with their sealed handling notes opened with their customers' rings (one
    ring read per customer with a sealed note on the page; flags without one are untouched)."""
    sealed: dict[str, set[str]] = defaultdict(set)
    for flag in flags:
        if _has_sealed(flag.get("handling")):
            sealed[str(flag["tenant"])].add(str(flag["customer_id"]))
    if not sealed:
        return flags
    rings: dict[tuple[str, str], dict[str, bytes] | None] = {}
    for tenant, customers in sealed.items():
        try:
            found = await data_keys_by_customer(context, tenant, customers)
        except HttpProblem:  # the ring's worker cannot be asked now: the list still answers
            rings.update({(tenant, c): None for c in customers})
            continue
        if found is None:  # this worker does not seal: nothing it could open
            return flags
        rings.update({(tenant, c): found.get(c, {}) for c in customers})
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
