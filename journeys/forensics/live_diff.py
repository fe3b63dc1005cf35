"""The replayed journey against the live projection served by the ledger's API.

Contract: `GET {api}/v1/journeys/{customer_id}` with `Authorization: Bearer <token>` answers
the journey in the shape of `projections.view.view_to_dict` (404 when the API holds no such
customer). The comparison is of event ids (held by only one side) and flags (held by only one
side, or with another status). The live side is the ledger now; a replay as of an earlier
moment naturally differs by what happened since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

API_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class FlagDifference:
    """A flag whose status differs, or that only one side holds (its status there None)."""

    flag_id: str
    rule: str
    replayed: str | None
    live: str | None


@dataclass(frozen=True, slots=True)
class JourneyDifferences:
    """How a replayed journey differs from the live projection of the same customer."""

    customer_id: str
    live_found: bool
    only_replayed: tuple[str, ...] = ()
    """Event ids the replay holds and the live projection does not."""
    only_live: tuple[str, ...] = ()
    """Event ids the live projection holds and the replay does not."""
    flags: tuple[FlagDifference, ...] = ()

    @property
    def empty(self) -> bool:
        """No difference at all."""
        return self.live_found and not (self.only_replayed or self.only_live or self.flags)


class LiveUnavailableError(Exception):
    """The API could not be asked (unreachable, refused the token, answered garbage)."""


def compare(replayed: dict[str, Any], live: dict[str, Any]) -> JourneyDifferences:
    """Compare two journeys in the `view_to_dict` shape (pure)."""
    mine = {e["event_id"] for e in replayed.get("events", [])}
    theirs = {e["event_id"] for e in live.get("events", [])}
    my_flags = {f["flag_id"]: f for f in replayed.get("flags", [])}
    their_flags = {f["flag_id"]: f for f in live.get("flags", [])}
    flags = []
    for flag_id in sorted(my_flags.keys() | their_flags.keys()):
        a, b = my_flags.get(flag_id), their_flags.get(flag_id)
        status_a = a["status"] if a else None
        status_b = b["status"] if b else None
        if status_a != status_b:
            rule = (a or b or {}).get("rule", "?")
            flags.append(FlagDifference(flag_id, rule, status_a, status_b))
    return JourneyDifferences(
        customer_id=str(replayed.get("customer_id")),
        live_found=True,
        only_replayed=tuple(sorted(mine - theirs)),
        only_live=tuple(sorted(theirs - mine)),
        flags=tuple(flags),
    )


def fetch_live(api: str, token: str | None, customer_id: str) -> dict[str, Any] | None:
    """The live journey from the API; None on 404. Raises `LiveUnavailableError`."""
    url = f"{api.rstrip('/')}/v1/journeys/{quote(customer_id, safe='')}"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(url, headers=headers, timeout=API_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise LiveUnavailableError(f"cannot reach the API at {api}: {exc}") from exc
    if response.status_code == 404:
        return None
    if response.status_code in (401, 403):
        raise LiveUnavailableError(
            f"the API at {api} refused the token (HTTP {response.status_code}); "
            "check --token or JOURNEYS_TOKEN"
        )
    if response.status_code != 200:
        raise LiveUnavailableError(f"the API at {api} answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise LiveUnavailableError(f"the API at {api} answered something other than JSON") from exc
    if not isinstance(document, dict):
        raise LiveUnavailableError(f"the API at {api} answered an unexpected document")
    return document


def live_differences(api: str, token: str | None, replayed: dict[str, Any]) -> JourneyDifferences:
    """Ask the API for the replayed customer and compare. Raises `LiveUnavailableError`."""
    customer_id = str(replayed["customer_id"])
    live = fetch_live(api, token, customer_id)
    if live is None:
        return JourneyDifferences(customer_id, live_found=False)
    return compare(replayed, live)


def describe_differences(diff: JourneyDifferences, api: str) -> list[str]:
    """Lines saying how the replay differs from the live projection."""
    head = f"live projection at {api} (now) vs this replay, customer {diff.customer_id}:"
    if not diff.live_found:
        return [
            head,
            "  the API holds no such customer (merged into another since, or not processed yet)",
        ]
    if diff.empty:
        return [f"{head} no differences"]
    lines = [head]
    if diff.only_replayed:
        lines.append(f"  events only in the replay: {', '.join(diff.only_replayed)}")
    if diff.only_live:
        lines.append(f"  events only in the live projection: {', '.join(diff.only_live)}")
    for flag in diff.flags:
        lines.append(
            f"  flag {flag.flag_id} {flag.rule}: replay {flag.replayed or 'absent'}, "
            f"live {flag.live or 'absent'}"
        )
    return lines
