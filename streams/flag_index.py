"""Every customer's standing flags, read from the flag topic into memory, for queries.

Each API process reads all partitions of the (low-volume) flag topic without a consumer group,
so every instance answers flag queries the same way whatever the number of workers. The topic
is at-least-once: a change seen before (same `change_id`) is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.outputs import FlagChange, FlagSnapshot
from streams.config import KafkaSettings
from streams.kafka.follow import FollowerHealth, follow_topic

log = logging.getLogger(__name__)

FlagKey = tuple[str, str, str]
"""(tenant, customer id, flag id)."""


@dataclass(frozen=True, slots=True)
class FlagQuery:
    """Filters and page of a flag listing."""

    tenants: frozenset[str] | None = None
    """The tenants the caller may see; None means every tenant."""
    tenant: str | None = None
    rule: str | None = None
    status: str | None = None
    site: str | None = None
    since: str | None = None
    until: str | None = None
    handling: str | None = None
    """`unacknowledged` (nobody acted, or only noted), `assigned` (has an assignee) or `mine`."""
    assignee: str | None = None
    user: str | None = None
    """The caller, whom `handling=mine` means."""
    limit: int = 50
    cursor: str | None = None


HANDLING_FILTERS = ("unacknowledged", "assigned", "mine")
"""The values `FlagQuery.handling` takes."""


@dataclass(frozen=True, slots=True)
class FlagPage:
    """One page of flags, newest first, and the cursor of the next page."""

    flags: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(position: tuple[str, str, str]) -> str:
    """An opaque cursor for the position after which the next page starts."""
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str]:
    """Read a cursor back; ValueError when it was not made by `encode_cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        opened_at, customer_id, flag_id = orjson.loads(base64.urlsafe_b64decode(padded))
    except Exception as exc:
        raise ValueError("cursor: not a cursor this API returned") from exc
    return str(opened_at), str(customer_id), str(flag_id)


class FlagIndex:
    """Standing flags by tenant, customer and flag id."""

    def __init__(self) -> None:
        self._flags: dict[FlagKey, FlagSnapshot] = {}
        # (tenant, customer id) -> flag id -> flag: a customer's flags without a walk of all
        self._by_customer: dict[tuple[str, str], dict[str, FlagSnapshot]] = {}
        self._seen: set[str] = set()
        self.changes = 0

    def apply(self, change: FlagChange) -> bool:
        """Apply one record of the flag topic; False when it repeats a change already applied."""
        self.changes += 1
        if change.change_id in self._seen:
            return False
        self._seen.add(change.change_id)
        key = (change.tenant, change.customer_id, change.flag_id)
        customer = (change.tenant, change.customer_id)
        if isinstance(change.flag, FlagSnapshot) and change.change != "withdrawn":
            self._flags[key] = change.flag
            self._by_customer.setdefault(customer, {})[change.flag_id] = change.flag
        else:
            self._flags.pop(key, None)
            held = self._by_customer.get(customer)
            if held is not None:
                held.pop(change.flag_id, None)
                if not held:
                    del self._by_customer[customer]
        return True

    def __len__(self) -> int:
        return len(self._flags)

    def standing(self) -> Iterable[tuple[FlagKey, FlagSnapshot]]:
        """Every standing flag under its key."""
        return self._flags.items()

    def all(self) -> Iterable[dict[str, Any]]:
        """Every standing flag, as the API shows it."""
        return [_shown(key, flag) for key, flag in self._flags.items()]

    def of_customer(self, tenant: str, customer_id: str) -> list[dict[str, Any]]:
        """One customer's standing flags."""
        return [
            _shown((tenant, customer_id, flag.flag_id), flag)
            for flag in self.snapshots_of(tenant, customer_id)
        ]

    def snapshots_of(self, tenant: str, customer_id: str) -> list[FlagSnapshot]:
        """One customer's standing flags as the topic carries them: a copy made without a
        walk of the index (one lookup), so it is cheap on the event loop that applies changes."""
        return list(self._by_customer.get((tenant, customer_id), {}).values())

    def find(
        self, flag_id: str, tenants: frozenset[str] | None
    ) -> tuple[FlagKey, FlagSnapshot] | None:
        """The standing flag with this id in one of `tenants` (None: any), else None: a flag of
        another tenant is not found, exactly like one that does not exist."""
        for key, flag in self._flags.items():
            if key[2] == flag_id and (tenants is None or key[0] in tenants):
                return key, flag
        return None

    def page(self, query: FlagQuery) -> FlagPage:
        """Flags matching the query, newest first by opened_at, one page."""
        found = [item for item in self._flags.items() if _matches(*item, query)]
        found.sort(key=_position, reverse=True)
        if query.cursor is not None:
            after = decode_cursor(query.cursor)
            found = [item for item in found if _position(item) < after]
        page = found[: query.limit]
        more = len(found) > query.limit
        cursor = encode_cursor(_position(page[-1])) if more and page else None
        return FlagPage([_shown(*item) for item in page], cursor)


def _shown(key: FlagKey, flag: FlagSnapshot) -> dict[str, Any]:
    return {**flag.to_document(), "tenant": key[0], "customer_id": key[1]}


def _position(item: tuple[FlagKey, FlagSnapshot]) -> tuple[str, str, str]:
    (_, customer_id, flag_id), flag = item
    return (flag.opened_at, customer_id, flag_id)


def _matches(key: FlagKey, flag: FlagSnapshot, query: FlagQuery) -> bool:
    tenant = key[0]
    if query.tenants is not None and tenant not in query.tenants:
        return False
    checks = ((query.tenant, tenant), (query.rule, flag.rule), (query.status, flag.status))
    if any(wanted is not None and wanted != value for wanted, value in checks):
        return False
    if query.site is not None and query.site not in flag.sites:
        return False
    if not _handled_as(flag, query):
        return False
    # ISO 8601 in UTC compares as text; the caller normalises since/until to UTC.
    if query.since is not None and flag.opened_at < query.since:
        return False
    return not (query.until is not None and flag.opened_at > query.until)


def _handled_as(flag: FlagSnapshot, query: FlagQuery) -> bool:
    handling = flag.handling
    assignee = None if handling is None else handling.assignee
    if query.assignee is not None and assignee != query.assignee:
        return False
    if query.handling == "unacknowledged":
        return handling is None or handling.state == "unacknowledged"
    if query.handling == "assigned":
        return assignee is not None
    if query.handling == "mine":
        return assignee is not None and assignee == query.user
    if query.handling is not None:
        raise ValueError(f"handling: one of {', '.join(HANDLING_FILTERS)}")
    return True


async def follow_flags(
    kafka: KafkaSettings,
    index: FlagIndex,
    stop: asyncio.Event,
    health: FollowerHealth | None = None,
) -> None:
    """Read every partition of the flag topic from the start into `index` until `stop`.

    With `health`, a record that is not a flag change is skipped and counted there.
    """

    def apply(_key: bytes | None, value: bytes | None) -> None:
        if value:
            index.apply(FlagChange.from_bytes(value))

    await follow_topic(kafka, kafka.names().flags, apply, stop, health)
