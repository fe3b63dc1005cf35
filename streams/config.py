"""Broker and worker settings as the worker sees them: a frozen value built by the entry point."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach the brokers and how the ledger's topics are laid out."""

    bootstrap_servers: str = "localhost:9092"
    client_id: str = "journey-ledger"
    topic_prefix: str = "journeys"
    partitions: int = 4
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    """Kept out of `repr`, so no log line or traceback shows it."""
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    request_timeout_ms: int = 30_000
    session_timeout_ms: int = 6_000
    rebalance_timeout_ms: int = 3_000
    heartbeat_interval_ms: int = 1_500
    max_batch_records: int = 2_000
    fetch_max_wait_ms: int = 50
    """How long a fetch waits for data: low, so a flag follows its event quickly."""
    journey_generation: int = 0
    """Which generation of the journey projection this worker serves (see `journeys rebuild`)."""
    dead_letter_retention_days: int = 30
    """How long the dead-letter topics keep a record: long enough to repair and re-send it;
    they hold the refused bytes (card numbers masked, other personal data in clear)."""
    max_record_bytes: int = 1_048_576
    """The largest record the ledger produces (Kafka's default `max.message.bytes`): a journey
    whose state record would grow past it keeps what it had, the rest goes to dead letters."""

    def names(self) -> TopicNames:
        """The topics of this ledger, for the journey generation served."""
        return TopicNames(self.topic_prefix, self.journey_generation)

    def client_options(self) -> dict[str, Any]:
        """Connection options shared by every aiokafka client (TLS and SASL passed through)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL, from the CA, certificate and key files."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        if self.ssl_certfile:
            context.load_cert_chain(
                str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
            )
        return context


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The ledger's topics; names carry a version so a new layout never reuses an old topic."""

    prefix: str = "journeys"
    generation: int = 0
    """The journey projection's generation: a rebuild writes a new one beside the live one."""

    def _generation(self, name: str) -> str:
        return name if self.generation == 0 else f"{name}.g{self.generation}"

    @property
    def touchpoints(self) -> str:
        """Raw touchpoints as producers send them, keyed by anything (the SDK: event id)."""
        return f"{self.prefix}.touchpoints.v1"

    @property
    def validated(self) -> str:
        """Touchpoints the validate stage accepted, canonical and masked, keyed by tenant."""
        return f"{self.prefix}.validated.v1"

    @property
    def dead_letters(self) -> str:
        """Rejected records with their reason, origin and (masked) original bytes."""
        return f"{self.prefix}.dead-letters.v1"

    @property
    def events(self) -> str:
        """Validated events and identity merges, keyed by tenant and customer."""
        return f"{self.prefix}.events.v1"

    @property
    def flags(self) -> str:
        """Flag changes: opened and resolved."""
        return self._generation(f"{self.prefix}.flags.v1")

    @property
    def journey_group(self) -> str:
        """The consumer group of the journey stage."""
        return self._generation(f"{self.prefix}.journeys")

    def stage_group(self, stage: str) -> str:
        """The consumer group of a stage that does not name its own (validate, ingest)."""
        return f"{self.prefix}.{stage}"

    @property
    def worker_groups(self) -> tuple[str, ...]:
        """The consumer groups a running worker is a member of, one per stage."""
        return (self.stage_group("validate"), self.stage_group("ingest"), self.journey_group)

    @property
    def notification_dead_letters(self) -> str:
        """Notifications given up on after the last retry, with the receiver and the reason."""
        return f"{self.prefix}.notify-dead-letters.v1"

    @property
    def notifier_group(self) -> str:
        """The consumer group of the notifiers: each flag change is notified by one of them."""
        return self._generation(f"{self.prefix}.notifier")

    @property
    def members(self) -> str:
        """Which worker owns which partitions and where its API answers (compacted)."""
        return f"{self.prefix}.members.v1"

    @property
    def identity_changelog(self) -> str:
        """Compacted state of the identity processor, to restore it anywhere."""
        return f"{self.prefix}.identity-state.v1"

    @property
    def journey_changelog(self) -> str:
        """Compacted state of the journey processor, to restore it anywhere."""
        return self._generation(f"{self.prefix}.journey-state.v1")
