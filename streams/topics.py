"""The ledger's topic layout, and its idempotent creation."""

from __future__ import annotations

from streams.admin import TopicSpec, ensure_topics
from streams.config import KafkaSettings

KEEP_FOREVER = {"retention.ms": "-1", "cleanup.policy": "delete"}
"""Config of the append-only topics: nothing is ever deleted."""

RAW_RETENTION_MS = 7 * 24 * 3600 * 1000
"""How long the raw touchpoints topic keeps a record: 7 days. It holds personal data in clear
(before the door seals it), and nothing reads it after ingest (replay and rebuild read the
events topic), so it is kept only long enough to re-run ingest after an outage."""

RAW = {"retention.ms": str(RAW_RETENTION_MS), "cleanup.policy": "delete"}
"""Config of the raw touchpoints topic."""

COMPACTED = {"cleanup.policy": "compact"}
"""Config of the state changelogs: the latest value per key is kept."""


def dead_letter_config(settings: KafkaSettings, compacted: bool = False) -> dict[str, str]:
    """Config of the dead-letter topics: kept `dead_letter_retention_days`, then deleted; the
    stages' topic (`compacted`) is compacted too, so erasure's tombstone supersedes a dead
    letter (each has its own key) before its days are up."""
    days = settings.dead_letter_retention_days
    policy = "compact,delete" if compacted else "delete"
    return {"retention.ms": str(days * 24 * 3600 * 1000), "cleanup.policy": policy}


def ledger_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """The nine topics of the ledger, with partition counts and configs from `settings`."""
    names = settings.names()
    count = settings.partitions
    dead = dead_letter_config(settings)
    erasable = dead_letter_config(settings, compacted=True)
    return [
        TopicSpec(names.touchpoints, count, dict(RAW)),
        TopicSpec(names.validated, count, dict(RAW)),  # clear text too: kept as briefly
        TopicSpec(names.dead_letters, count, dict(erasable)),
        TopicSpec(names.events, count, dict(KEEP_FOREVER)),
        TopicSpec(names.flags, count, dict(KEEP_FOREVER)),
        TopicSpec(names.identity_changelog, count, dict(COMPACTED)),
        TopicSpec(names.journey_changelog, count, dict(COMPACTED)),
        TopicSpec(names.members, 1, dict(COMPACTED)),
        TopicSpec(names.notification_dead_letters, count, dict(dead)),
    ]


async def create_topics(settings: KafkaSettings, *, timeout_s: float = 30.0) -> list[TopicSpec]:
    """Create the ledger's topics that do not exist yet (idempotent); returns their specs.

    Raises `streams.admin.TopicCreationError` when the broker cannot be reached in
    `timeout_s` or refuses, and `TopicMismatchError` when a topic exists with another
    partition count. TLS and SASL settings apply to the admin client as to every other client.
    """
    specs = ledger_topics(settings)
    await ensure_topics(
        settings.bootstrap_servers,
        specs,
        replication_factor=settings.replication_factor,
        timeout_s=timeout_s,
        client_options=settings.client_options(),
    )
    return specs
