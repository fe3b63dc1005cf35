"""The notifier's settings as it sees them: frozen values built by the entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import get_args

from schemas.outputs import FlagChangeKind

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
"""Flag severities, least severe first."""

CHANGE_KINDS: tuple[str, ...] = tuple(get_args(FlagChangeKind))
"""The kinds of flag change the flag topic carries (a subscription may name any of them)."""

NOTIFIED_BY_DEFAULT: tuple[str, ...] = ("opened", "reopened")
"""The changes a subscription is notified of unless it names others (`updated`, a flag whose
content late events rewrote, is opt-in like `resolved`, `withdrawn` and `handled`)."""

ANY_SITE = "*"
"""The recipients key of e-mail that goes out whatever the flag's site."""


@dataclass(frozen=True, slots=True)
class Filter:
    """Which flag changes a receiver wants; None covers every tenant, rule or site."""

    tenants: frozenset[str] | None = None
    rules: frozenset[str] | None = None
    sites: frozenset[str] | None = None
    min_severity: str = "low"
    changes: frozenset[str] = frozenset(NOTIFIED_BY_DEFAULT)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One webhook subscription: where to POST, the signing secret, what it covers."""

    url: str
    secret: str = field(repr=False)
    """`whsec_` and the base64 of the key; kept out of `repr`, so no log line shows it."""
    filter: Filter = Filter()


@dataclass(frozen=True, slots=True)
class EmailTarget:
    """The SMTP server e-mail goes through, who gets it for each site, and what it covers."""

    host: str
    port: int = 587
    starttls: bool = True
    tls: bool = False
    """Implicit TLS from the first byte (port 465), instead of STARTTLS."""
    sender: str = "journeys@localhost"
    recipients: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """Site -> addresses; `ANY_SITE` ("*") receives every site's e-mail (and flags without one)."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    filter: Filter = Filter()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one notification is tried before it is dead-lettered."""

    attempts: int = 5
    first_delay_s: float = 1.0
    """The wait after the first failure; it doubles after each further one, up to the cap."""
    max_delay_s: float = 60.0
    timeout_s: float = 10.0
    """How long one attempt may take (connect, send, answer)."""


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Every receiver, and how deliveries are retried, limited and remembered."""

    webhooks: tuple[WebhookTarget, ...] = ()
    email: EmailTarget | None = None
    retry: RetryPolicy = RetryPolicy()
    rate_per_s: float = 5.0
    """Deliveries started per second to one receiver (a token bucket of `burst`)."""
    burst: int = 5
    max_in_flight: int = 4
    """Attempts under way at once to one receiver."""
    max_pending: int = 1_000
    """Flag changes read but not yet delivered or dead-lettered before the notifier stops
    reading: the only thing a receiver that is down shares with the others."""
    start_from: str = "earliest"
    """Where a new notifier group starts on the flag topic: `earliest` or `latest`."""
    journey_url: str | None = None
    """The API's advertised URL: each notification links to the journey page under it."""
    log_size: int = 500
    """Deliveries each worker remembers for `GET /v1/notifications/deliveries`."""

    @property
    def active(self) -> bool:
        """Whether there is anyone to notify."""
        return bool(self.webhooks) or self.email is not None
