"""Ingest's index of dead letters by identifier, so erasing a customer erases its dead letters.

A dead letter keeps the refused record's bytes, personal data in clear (card numbers masked).
The stage that refuses a record sends, beside the dead letter, a notice on the validated topic
keyed by the tenant (`streams.kafka.records.dead_letter_notice`) with the dead letter's own key
and the identifiers read leniently from its bytes. Ingest normalises them as it does an
event's (`projections.identifiers.identifier_values_ids`, the tenant's region) and keeps one
entry per usable identifier key (`streams.store.keys.dead_letter_index_key`; the key's keyed
hash when the worker seals). Erasing the customer (`journeys forget`, the API, retention)
reads the entries under each of its identifier keys, sends a tombstone for each dead letter
to the dead-letter topic (compacted as well as deleted by age, so the tombstone supersedes
the record) and deletes the entries. A notice for an identifier a tenant suppresses (an
erased customer's) is answered with the tombstone at once.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence

import orjson

from projections.identifiers import MIN_NSN_DIGITS, identifier_values_ids, is_hashed_key
from projections.settings import FoldSettings
from schemas.envelope import IDENTIFIER_KINDS
from streams.crypto.sealing import Sealer
from streams.crypto.suppression import Suppression
from streams.kafka.records import InRecord, OutRecord, tenant_of_dead_letter
from streams.store import keys
from streams.store.state import BatchState

MAX_PER_KEY = 100
"""The most dead letters indexed under one identifier key: a producer re-sending one broken
event for ever must not grow the index without bound. Past it the oldest entry (by the
notice's timestamp) makes way: its dead letter is the first to leave with the dead-letter
topic's retention (`dead_letter_retention_days`) anyway."""


def identity_key(sealer: Sealer | None, tenant: str, key: str) -> str:
    """How an identifier key is kept in the index: as the identity graph keeps it, a keyed hash
    when the worker seals (`GraphHasher`); a clear key from before the graph was hashed gets
    its link tag, never kept in clear while sealing."""
    if sealer is not None and sealer.tags_links and not is_hashed_key(key):
        return sealer.link_tag(tenant, key)
    return key


def indexed_key(key: str) -> str:
    """The identifier key a dead letter is indexed under: the key, but a phone number's national
    spelling (`phone:<nsn>`), as stitching matches a number written with or without its country
    (`projections.identifiers.held_spellings`); erasing any customer holding that number in any
    country's form finds it."""
    if not key.startswith("phone:"):
        return key
    nsn = key.rpartition(":")[2]
    return f"phone:{nsn}" if len(nsn) >= MIN_NSN_DIGITS else key


def tombstone(dead_letter: bytes) -> OutRecord:
    """The record that supersedes a dead letter on the (compacted) dead-letter topic."""
    return OutRecord("dead_letters", dead_letter, None)


def index_dead_letter(
    state: BatchState,
    record: InRecord,
    settings: FoldSettings,
    sealer: Sealer | None,
    suppression: Suppression | None = None,
) -> list[OutRecord]:
    """Index a dead-letter notice's identifiers in the batch; what to send (a tombstone when an
    identifier is an erased customer's that the tenant suppresses, else nothing).

    A notice that does not read as one (only the ledger writes them) is ignored: it names no
    one, so there is nothing to index and nothing to report.
    """
    notice = _notice(record)
    if notice is None:
        return []
    tenant, dead, values = notice
    region = settings.region_for(tenant)
    hasher = settings.hasher_for(tenant)  # the graph's own keys: keyed hashes when sealing
    ids = [i for i in identifier_values_ids(values, region, hasher) if i.unusable is None]
    if suppression is not None and suppression.field_of(state, tenant, ids) is not None:
        return [tombstone(dead)]
    when = str(max(record.timestamp_ms, 0)).encode()
    for ident in ids:
        kept = identity_key(sealer, tenant, indexed_key(ident.key))
        entry = keys.dead_letter_index_key(tenant, kept, dead)
        if state.get(entry) is not None:
            continue  # the same notice again (a batch read twice)
        held = state.items(keys.dead_letters_prefix(tenant, kept))  # at most MAX_PER_KEY
        over = len(held) + 1 - MAX_PER_KEY
        for oldest, _ in sorted(held, key=_age)[: max(over, 0)]:
            state.delete(oldest)  # bounded: the oldest make way
        state.put(entry, when)
    return []


def _age(item: tuple[bytes, bytes]) -> tuple[int, bytes]:
    """An index entry's notice time (milliseconds; 0 unknown), then its key, oldest first."""
    entry, value = item
    return (int(value) if value.isdigit() else 0), entry


def erase_dead_letters(
    state: BatchState, tenant: str, member_keys: Iterable[str], sealer: Sealer | None
) -> list[OutRecord]:
    """Delete the index entries under an erased customer's identifier keys; a tombstone for
    each dead letter they name (once each, in key order)."""
    found: set[bytes] = set()
    for key in member_keys:
        if key.startswith("event:"):
            continue  # an event's own key: no dead letter is indexed by it
        prefix = keys.dead_letters_prefix(tenant, identity_key(sealer, tenant, indexed_key(key)))
        for entry, _ in state.items(prefix):
            found.add(keys.dead_letter_of(entry))
            state.delete(entry)
    return [tombstone(dead) for dead in sorted(found)]


def count_erased(outs: Sequence[OutRecord], counts: MutableMapping[str, int]) -> None:
    """Count the dead-letter tombstones among a stage's outputs under their tenant."""
    for out in outs:
        if out.destination == "dead_letters" and out.value is None:
            tenant = tenant_of_dead_letter(out.key) or "-"
            counts[tenant] = counts.get(tenant, 0) + 1


def _notice(record: InRecord) -> tuple[str, bytes, tuple[str | None, ...]] | None:
    """(tenant, dead letter key, identifier values) of a notice, or None if it is not one."""
    try:
        document = orjson.loads(record.value or b"")
        tenant = (record.key or b"").decode()
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or not tenant:
        return None
    dead, customer = document.get("dead_letter"), document.get("customer")
    if not isinstance(dead, str) or not dead or not isinstance(customer, dict):
        return None
    values = tuple(
        value if isinstance(value := customer.get(kind), str) else None for kind in IDENTIFIER_KINDS
    )
    return tenant, dead.encode(), values
