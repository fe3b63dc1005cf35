"""The key space of the processors' state: the only module that spells a key prefix.

State keys (in RocksDB under a partition prefix, and as they are on the changelog topics) are
``<prefix><tenant>/<rest>``. With a master key, every identifier key and national number below
is a keyed hash (`email:#<base32>`, `phone:+44:#<base32>`: `projections.identifiers.GraphHasher`),
never the identifier. Ingest (identity) keeps:

- ``i/<tenant>/<identifier key>`` -> the customer id holding the identifier,
- ``m/<tenant>/<customer id>`` -> the head of the customer's identifier keys: how many chunks
  and keys, and a digest of the set (`streams.stages.identity.members`); written by earlier
  versions: every key in one JSON array, read as it is and rewritten as chunks on its next change,
- ``mc/<tenant>/<customer id>/<n>`` -> chunk ``n`` of the customer's identifier keys (JSON array,
  bounded in bytes): a key added is appended to the last chunk, so no record grows with them,
- ``p/<tenant>/<national number>`` -> the country codes seen with it (JSON array),
- ``s/<tenant>/<event id>`` -> a digest of the event first seen under that id,
- ``t/<tenant>`` -> nothing: the tenants this partition holds,
- ``b/<tenant>/<blocked key>`` -> why a person blocked the value (``identity.blocked``),
- ``h/<tenant>/<customer id>/<digest>`` -> one edge of the customer: identifier keys one event
  linked together (JSON array), stored once per distinct set, so a split can be recomputed,
- ``r/<tenant>/<blocked key>/<customer id>`` -> nothing: the customer holds an edge with the
  value while a person's block keeps it from linking (an unblock merges those customers back),
- ``k/<tenant>/<blocked key>/<customer id>/<flag id>`` -> one IDENTITY_CONFLICT flag a held
  link on the value opened on the customer (its document, JSON, with its number ``n`` in the
  order opened), until a person's decision about the value resolves it; a record per flag, so
  none grows with the customers sharing a value (a decision reads the value's by prefix),
- ``k/<tenant>/<blocked key>`` -> the next conflict number of the value; written by earlier
  versions: every conflict flag on the value in one JSON array, moved to the records above
  the first time the value's conflicts are written,
- ``hh/<tenant>/<identifier key>/<digest>`` -> the keys of an event that carried the value
  when a limit held its link (JSON array, once per distinct set): graph health counts the
  strong identifiers seen with a held value across the customers it would have joined,
- ``he/<tenant>/<identifier key>/<customer id>`` -> nothing: the customer keeps an edge with
  the identifier that it does not hold (a limit held the link): a settle reaching the
  customer holding the identifier reaches this one too,
- ``ov/<tenant>/<customer id>`` -> nothing: the customer is part of a component over a limit
  (a settle wrote it): its events ask whether the pure fold settles them,
- ``kc/<tenant>/<customer id>/<blocked key>`` -> nothing: a conflict flag on the value is open
  on the customer (a merge moves it to the customer it merged into, as the pure fold does),
- ``dc/<tenant>/<customer id>`` -> nothing: the customer is a person's identity decision
  standing alone (a decision links nothing): graph health does not count it as a customer,
- ``g/<tenant>`` -> the number of the tenant's latest settle or split (each `regroup` record
  carries its number, so the journey stage tells an older word from a newer one),
- ``ky/<tenant>/<customer id>`` -> the customer's key ring (`streams.crypto.ring`: wrapped data
  keys only); its changelog record is the ring's compacted copy; erasure deletes it,
- ``la/<tenant>/<customer id>`` -> the UTC day (``YYYY-MM-DD``) of the customer's latest event,
- ``lr/<tenant>/<day>/<customer id>`` -> nothing: the same, indexed by day, so the retention
  timer reads the customers longest silent first and stops at the first one it keeps,
- ``lc/<tenant>`` -> the customer id the retention sweep (customers not indexed yet) reached,
- ``sx/<tenant>/<identity hash>`` -> nothing: an identifier of a customer erased in a tenant
  that suppresses them (a keyed hash, `streams.crypto.hashing`, never the identifier),
- ``dl/<tenant>/<identity key>/<dead letter key>`` -> when its notice was written (Kafka
  timestamp, milliseconds, decimal): a dead letter (its own Kafka key,
  `streams.kafka.records.dead_letter_key`) carries the identifier; the identity key is the
  identifier key's keyed hash when the worker seals (`Sealer.link_tag`), the key itself
  otherwise; both parts are quoted (``%`` as ``%25``, ``/`` as ``%2F``) so each is one level;
  at most `streams.stages.identity.dead_letters.MAX_PER_KEY` per identity key (the oldest make
  way); erasure sends
  a tombstone for each and deletes them (`streams.stages.identity.dead_letters`).

The journey stage keeps, per customer (``<tenant>/<customer id>``):

- ``j/`` the journey's latest events (its tail), ``jh/`` the index of its sealed segments and
  ``js/<tenant>/<customer id>/<n>`` each sealed segment (see `streams.stages.journey.segments`;
  a journey stored before segments existed is all tail), ``f/`` the status of each flag last
  emitted,
- ``fw/`` the customer it merged into, ``fn/`` the number of ingest's latest settle when it
  merged (events passed on carry it), ``d/`` the next deadline of a time-based rule,
- ``x/`` the last split of the customer (its parts' keys and the keys it dropped), to deal out
  the events still forwarded to it by merges from before the split, and where each key its
  splits dealt went, by which numbered settle (events moved to it by an older one follow them),
- ``mg/`` the latest merges that made the customer (a `MergeHistory`, bounded), carried on
  to the customer it merges into; a split starts them again.

Positions (``__offset__``, ``__changelog__``, ``__inflight__``) sit beside them, and every key
is stored in RocksDB behind its input partition's prefix, except ``~identity-root``: the store's
one record of which identity root its hashes were made with (local to the worker, never on a
changelog).
"""

from __future__ import annotations

from enum import Enum

CustomerRef = tuple[str, str]
"""(tenant, customer id)."""


class Prefix(bytes, Enum):
    """Every prefix of the state key space."""

    IDENTIFIER = b"i/"
    MEMBERS = b"m/"
    MEMBER_CHUNK = b"mc/"
    PHONE_COUNTRIES = b"p/"
    SEEN = b"s/"
    TENANT = b"t/"
    BLOCKED = b"b/"
    EDGE = b"h/"
    CONFLICTS = b"k/"
    CUSTOMER_CONFLICTS = b"kc/"
    HELD = b"hh/"
    HELD_AT = b"he/"
    OVER_LIMIT = b"ov/"
    DECISION = b"dc/"
    REFUSED = b"r/"
    JOURNEY = b"j/"
    JOURNEY_INDEX = b"jh/"
    JOURNEY_SEGMENT = b"js/"
    FLAGS = b"f/"
    FORWARD = b"fw/"
    FORWARD_SETTLED = b"fn/"
    DEADLINE = b"d/"
    SPLIT = b"x/"
    MERGES = b"mg/"
    RING = b"ky/"
    LAST_SEEN = b"la/"
    RETENTION = b"lr/"
    SWEEP = b"lc/"
    SUPPRESSED = b"sx/"
    DEAD_LETTERS = b"dl/"
    SETTLES = b"g/"


OFFSET_KEY = b"__offset__"
"""Per partition: the next input offset to read."""

CHANGELOG_KEY = b"__changelog__"
"""Per partition: the next changelog offset this store has not yet applied."""

INFLIGHT_KEY = b"__inflight__"
"""Per partition: where a batch whose outputs may have gone out ends (see `streams.stages.cut`)."""

IDENTITY_ROOT_KEY = b"~identity-root"
"""Store-wide, outside every partition's prefix (digits sort before `~`): the id (`ik_…`) of
the identity root the store's keyed hashes were made with (`streams.crypto.startup`)."""


def partition_prefix(partition: int) -> bytes:
    """The RocksDB key prefix of one partition's state."""
    return b"%04d/" % partition


def _tenant_key(prefix: Prefix, tenant: str, rest: str) -> bytes:
    # `prefix` is bytes itself: `Enum.value` costs a descriptor call, and this runs for every
    # state read of every event.
    return prefix + f"{tenant}/{rest}".encode()


# Ingest: one tenant's identity graph and the events it saw.


def identifier_key(tenant: str, key: str) -> bytes:
    """Where the customer holding an identifier key is kept."""
    return _tenant_key(Prefix.IDENTIFIER, tenant, key)


def members_key(tenant: str, customer_id: str) -> bytes:
    """Where a customer's identifier keys are kept."""
    return _tenant_key(Prefix.MEMBERS, tenant, customer_id)


def member_chunk_key(tenant: str, customer_id: str, number: int) -> bytes:
    """Where one chunk of a customer's identifier keys is kept."""
    return _tenant_key(Prefix.MEMBER_CHUNK, tenant, f"{customer_id}/{number}")


def phone_countries_key(tenant: str, nsn: str) -> bytes:
    """Where the country codes seen with a national phone number are kept."""
    return _tenant_key(Prefix.PHONE_COUNTRIES, tenant, nsn)


def seen_key(tenant: str, event_id: str) -> bytes:
    """Where the digest of the event first seen under an id is kept."""
    return _tenant_key(Prefix.SEEN, tenant, event_id)


def blocked_value_key(tenant: str, key: str) -> bytes:
    """Where a person's block of an identifier value (its blocked key) is kept."""
    return _tenant_key(Prefix.BLOCKED, tenant, key)


def blocked_prefix(tenant: str) -> bytes:
    """The prefix of every value a person blocked (or unblocked) in a tenant."""
    return _tenant_key(Prefix.BLOCKED, tenant, "")


def edge_key(tenant: str, customer_id: str, digest: str) -> bytes:
    """Where one edge of a customer (a distinct set of keys linked by one event) is kept."""
    return _tenant_key(Prefix.EDGE, tenant, f"{customer_id}/{digest}")


def conflicts_key(tenant: str, key: str) -> bytes:
    """Where a value's (its blocked key's) next conflict number, or its legacy list, is kept."""
    return _tenant_key(Prefix.CONFLICTS, tenant, key)


def conflict_key(tenant: str, key: str, customer_id: str, flag_id: str) -> bytes:
    """Where one conflict flag opened on a customer over a value (its blocked key) is kept."""
    return _tenant_key(Prefix.CONFLICTS, tenant, f"{key}/{customer_id}/{flag_id}")


def value_conflicts_prefix(tenant: str, key: str) -> bytes:
    """The prefix of every conflict flag opened over a value (its blocked key)."""
    return _tenant_key(Prefix.CONFLICTS, tenant, f"{key}/")


def customer_value_conflicts_prefix(tenant: str, key: str, customer_id: str) -> bytes:
    """The prefix of every conflict flag opened on a customer over a value (its blocked key)."""
    return _tenant_key(Prefix.CONFLICTS, tenant, f"{key}/{customer_id}/")


def held_edge_key(tenant: str, key: str, digest: str) -> bytes:
    """Where the keys of one event that carried a held value (by its identifier key) are kept."""
    return _tenant_key(Prefix.HELD, tenant, f"{key}/{digest}")


def held_at_key(tenant: str, key: str, customer_id: str) -> bytes:
    """The marker of a customer keeping an edge with an identifier it does not hold."""
    return _tenant_key(Prefix.HELD_AT, tenant, f"{key}/{customer_id}")


def held_at_prefix(tenant: str, key: str) -> bytes:
    """The prefix of the markers of every customer keeping an edge with an identifier."""
    return _tenant_key(Prefix.HELD_AT, tenant, f"{key}/")


def over_limit_key(tenant: str, customer_id: str) -> bytes:
    """The marker of a customer that is part of a component over a limit."""
    return _tenant_key(Prefix.OVER_LIMIT, tenant, customer_id)


def decision_customer_key(tenant: str, customer_id: str) -> bytes:
    """The marker of a customer that is a person's identity decision, not a customer."""
    return _tenant_key(Prefix.DECISION, tenant, customer_id)


def decision_customers_prefix(tenant: str) -> bytes:
    """The prefix of a tenant's decision markers."""
    return _tenant_key(Prefix.DECISION, tenant, "")


def held_edges_prefix(tenant: str) -> bytes:
    """The prefix of every held value's event keys of a tenant."""
    return _tenant_key(Prefix.HELD, tenant, "")


def blocked_values_prefix(tenant: str) -> bytes:
    """The prefix of every value a person decided about, of a tenant."""
    return _tenant_key(Prefix.BLOCKED, tenant, "")


def customer_conflict_key(tenant: str, customer_id: str, key: str) -> bytes:
    """The marker of a conflict flag on a value (its blocked key) open on a customer."""
    return _tenant_key(Prefix.CUSTOMER_CONFLICTS, tenant, f"{customer_id}/{key}")


def customer_conflicts_prefix(tenant: str, customer_id: str) -> bytes:
    """The prefix of the markers of every conflict flag open on a customer."""
    return _tenant_key(Prefix.CUSTOMER_CONFLICTS, tenant, f"{customer_id}/")


def refused_key(tenant: str, key: str, customer_id: str) -> bytes:
    """The marker of a customer holding an edge with a value a person blocked."""
    return _tenant_key(Prefix.REFUSED, tenant, f"{key}/{customer_id}")


def refused_prefix(tenant: str, key: str) -> bytes:
    """The prefix of the markers of every customer holding an edge with a blocked value."""
    return _tenant_key(Prefix.REFUSED, tenant, f"{key}/")


def edges_prefix(tenant: str, customer_id: str) -> bytes:
    """The prefix under which every edge of a customer is kept."""
    return _tenant_key(Prefix.EDGE, tenant, f"{customer_id}/")


def ring_key(tenant: str, customer_id: str) -> bytes:
    """Where a customer's key ring (its wrapped data keys) is kept."""
    return _tenant_key(Prefix.RING, tenant, customer_id)


def is_ring_key(key: bytes) -> bool:
    """Whether a state key is a customer's key ring (written before the batch's outputs)."""
    return key.startswith(Prefix.RING.value)


def last_seen_key(tenant: str, customer_id: str) -> bytes:
    """Where the day of a customer's latest event is kept."""
    return _tenant_key(Prefix.LAST_SEEN, tenant, customer_id)


def retention_key(tenant: str, day: str, customer_id: str) -> bytes:
    """The retention index's entry of a customer last seen on `day`."""
    return _tenant_key(Prefix.RETENTION, tenant, f"{day}/{customer_id}")


def retention_prefix(tenant: str) -> bytes:
    """The prefix of a tenant's retention index (its entries sort by day)."""
    return _tenant_key(Prefix.RETENTION, tenant, "")


def retention_entry(key: bytes) -> tuple[str, str]:
    """The (day, customer id) of a retention index key."""
    _, _, rest = _strip(Prefix.RETENTION, key).decode().partition("/")
    day, _, customer = rest.partition("/")
    return day, customer


def members_prefix(tenant: str) -> bytes:
    """The prefix of every customer's identifier keys in a tenant (one entry per customer)."""
    return _tenant_key(Prefix.MEMBERS, tenant, "")


def sweep_key(tenant: str) -> bytes:
    """Where the retention sweep's position (the customer id it reached) is kept."""
    return Prefix.SWEEP.value + tenant.encode()


def suppressed_key(tenant: str, identity_hash: str) -> bytes:
    """The marker of an erased customer's identifier (its keyed hash) a tenant suppresses."""
    return _tenant_key(Prefix.SUPPRESSED, tenant, identity_hash)


def suppressed_prefix(tenant: str) -> bytes:
    """The prefix of every identifier hash a tenant suppresses."""
    return _tenant_key(Prefix.SUPPRESSED, tenant, "")


def _quoted(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def dead_letters_prefix(tenant: str, identity_key: str) -> bytes:
    """The prefix of the index entries of every dead letter carrying an identity key."""
    return _tenant_key(Prefix.DEAD_LETTERS, tenant, _quoted(identity_key) + "/")


def dead_letter_index_key(tenant: str, identity_key: str, dead_letter: bytes) -> bytes:
    """The index entry of one dead letter (by its Kafka key) carrying an identity key."""
    quoted = _quoted(dead_letter.decode("utf-8", "replace"))
    return dead_letters_prefix(tenant, identity_key) + quoted.encode()


def dead_letter_of(entry: bytes) -> bytes:
    """The dead letter's Kafka key an index entry (`dead_letter_index_key`) names."""
    quoted = entry.rpartition(b"/")[2].decode()
    return quoted.replace("%2F", "/").replace("%25", "%").encode()


def tenant_key(tenant: str) -> bytes:
    """The marker of a tenant this partition holds."""
    return Prefix.TENANT.value + tenant.encode()


def tenant_of(key: bytes) -> str:
    """The tenant a `tenant_key` marks."""
    return _strip(Prefix.TENANT, key).decode()


# The journey stage: per customer.


def customer_state_key(prefix: Prefix, ref: CustomerRef) -> bytes:
    """A customer's key under one of the journey stage's prefixes (j/, f/, fw/, d/)."""
    return _tenant_key(prefix, *ref)


def journey_key(ref: CustomerRef) -> bytes:
    """Where a customer's journey (its events) is kept."""
    return customer_state_key(Prefix.JOURNEY, ref)


def journey_index_key(ref: CustomerRef) -> bytes:
    """Where the index of a customer's sealed journey segments is kept."""
    return customer_state_key(Prefix.JOURNEY_INDEX, ref)


def journey_segment_key(ref: CustomerRef, number: int) -> bytes:
    """Where one sealed segment of a customer's journey is kept."""
    return _tenant_key(Prefix.JOURNEY_SEGMENT, ref[0], f"{ref[1]}/{number}")


def flags_key(ref: CustomerRef) -> bytes:
    """Where the status of each flag last emitted for a customer is kept."""
    return customer_state_key(Prefix.FLAGS, ref)


def forward_key(ref: CustomerRef) -> bytes:
    """Where the customer a merged customer now is is kept."""
    return customer_state_key(Prefix.FORWARD, ref)


def forward_settled_key(ref: CustomerRef) -> bytes:
    """Where the number of ingest's latest settle when a customer merged is kept."""
    return customer_state_key(Prefix.FORWARD_SETTLED, ref)


def deadline_key(ref: CustomerRef) -> bytes:
    """Where a customer's next rule deadline is kept."""
    return customer_state_key(Prefix.DEADLINE, ref)


def settles_key(tenant: str) -> bytes:
    """Where the number of a tenant's latest settle or split is kept (ingest)."""
    return Prefix.SETTLES.value + tenant.encode()


def split_key(ref: CustomerRef) -> bytes:
    """Where the last split of a customer is kept."""
    return customer_state_key(Prefix.SPLIT, ref)


def merges_key(ref: CustomerRef) -> bytes:
    """Where the latest merges that made a customer are kept."""
    return customer_state_key(Prefix.MERGES, ref)


def customer_of(prefix: Prefix, key: bytes) -> CustomerRef | None:
    """The customer a key under `prefix` belongs to; None for a key under another prefix."""
    if not key.startswith(prefix.value):
        return None
    tenant, _, customer = key[len(prefix.value) :].decode().partition("/")
    return (tenant, customer)


def journey_of(key: bytes) -> CustomerRef | None:
    """The customer a journey key belongs to; None for any other key."""
    return customer_of(Prefix.JOURNEY, key)


def _strip(prefix: Prefix, key: bytes) -> bytes:
    if not key.startswith(prefix.value):
        raise ValueError(f"{key!r} is not a {prefix.name} key")
    return key[len(prefix.value) :]
