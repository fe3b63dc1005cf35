"""Settings, read once at the entry point into a frozen object; nothing else reads the environment."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from journeys.privacy_settings import (
    MASTER_KEY_VARIABLES,
    PrivacySection,
    TenantPrivacySection,
    retention_days,
    suppression,
    suppression_problem,
)
from projections.identifiers import GraphHasher, normalise
from projections.identity import DEFAULT_LIMITS, PRIORITY, IdentityPolicy, blocked_key
from projections.settings import RULES, FoldSettings, RuleSettings
from schemas.errors import JourneyLedgerError
from schemas.privacy.personal import tenant_path_problem
from streams.config import KafkaSettings
from streams.crypto.keys import LocalKeyProvider, master_key_problem
from streams.crypto.sealing import Sealer
from streams.crypto.suppression import Suppression
from streams.notify.config import (
    CHANGE_KINDS,
    NOTIFIED_BY_DEFAULT,
    EmailTarget,
    Filter,
    NotifySettings,
    RetryPolicy,
    WebhookTarget,
)
from streams.notify.signing import secret_problem

CONFIG_ENV = "JOURNEYS_CONFIG"
"""The environment variable naming the TOML settings file."""

BOOTSTRAP_ENV = "JOURNEYS_BOOTSTRAP_SERVERS"
"""The environment variable overriding `[kafka] bootstrap_servers`."""

API_ENV = "JOURNEYS_API"
"""The environment variable overriding `[client] api`: the query API's base URL."""

TOKEN_ENV = "JOURNEYS_TOKEN"
"""The environment variable overriding `[client] token`: the bearer token for the query API."""

TOKENS_ENV = "JOURNEYS_API_TOKENS"
"""The environment variable adding API tokens: `token=tenant,tenant[@role[/user]];token2=*`."""

PEER_SECRET_ENV = "JOURNEYS_PEER_SECRET"
"""The environment variable overriding `[api] peer_secret`: the workers' shared secret."""

CHECK_BROKER = (
    f"check --bootstrap-servers, {BOOTSTRAP_ENV} or [kafka] bootstrap_servers, "
    "and that the broker is running"
)
"""What to look at when the broker cannot be reached."""


class ConfigError(JourneyLedgerError):
    """A setting is missing or malformed."""

    hint = "check the settings file given by --config or JOURNEYS_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IdentitySection(_Section):
    """`[tenants.<name>.identity]`: values that never link, limits per customer, priority."""

    blocked: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    blocked_patterns: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    limits: dict[str, int] = Field(default_factory=dict)
    """Distinct identifiers of a kind a merge may give one customer, over `DEFAULT_LIMITS` kind
    by kind (0: no limit)."""
    priority: tuple[str, ...] = PRIORITY

    @field_validator("blocked", "blocked_patterns", "limits")
    @classmethod
    def _known_kinds(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(PRIORITY))
        if unknown:
            raise ValueError(f"unknown identifier kind(s) {', '.join(unknown)}")
        return value

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for kind, patterns in value.items():
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{kind}: {pattern!r} is not a regular expression: {exc}"
                    ) from None
        return value

    @field_validator("limits")
    @classmethod
    def _limits_not_negative(cls, value: dict[str, int]) -> dict[str, int]:
        if any(limit < 0 for limit in value.values()):
            raise ValueError("a limit is 1 or more, or 0 for no limit")
        return value

    @field_validator("priority")
    @classmethod
    def _priority_complete(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if sorted(value) != sorted(PRIORITY):
            raise ValueError(f"name every identifier kind once: {', '.join(PRIORITY)}")
        return value

    def policy(self, region: str | None, hasher: GraphHasher | None = None) -> IdentityPolicy:
        """The pure identity rules, blocked values normalised (and hashed) as events are."""
        blocked = frozenset(
            blocked_key(normalise(kind, value, region, hasher))
            for kind, values in self.blocked.items()
            for value in values
        )
        patterns = tuple(
            (kind, re.compile(pattern))
            for kind, texts in sorted(self.blocked_patterns.items())
            for pattern in texts
        )
        limits = {**DEFAULT_LIMITS, **self.limits}
        return IdentityPolicy(
            blocked=blocked,
            blocked_patterns=patterns,
            limits=MappingProxyType({k: v for k, v in limits.items() if v > 0}),
            priority=self.priority,
        )


class TenantSettings(_Section):
    """Per-tenant settings."""

    default_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    identity: IdentitySection = IdentitySection()
    personal: tuple[str, ...] = ()
    """More fields this tenant's events hold personal data in: `payload.<field>`, `source.actor`."""
    privacy: TenantPrivacySection = TenantPrivacySection()

    @field_validator("personal")
    @classmethod
    def _markable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [p for path in value if (p := tenant_path_problem(path))]
        if problems:
            raise ValueError("; ".join(problems))
        return value


class RuleThresholds(_Section):
    """Rule thresholds as written in the settings file."""

    duplicate_order_window_hours: float = Field(default=24, gt=0)
    enquiry_response_hours: float = Field(default=24, gt=0)
    referral_window_hours: float = Field(default=72, gt=0)
    referral_count: int = Field(default=3, ge=2)
    # At most ten years: a bound keeps the window a representable timedelta (no inf, no 1e300).
    low_score_window_days: float = Field(default=30, gt=0, le=3650)
    disabled: tuple[str, ...] = ()

    @field_validator("disabled")
    @classmethod
    def _known_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
        return value


class KafkaSection(_Section):
    """The `[kafka]` section: how to reach the brokers and lay out the topics."""

    bootstrap_servers: str = Field(default="localhost:9092", min_length=1)
    topic_prefix: str = Field(default="journeys", pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=4, ge=1)
    security_protocol: str = Field(
        default="PLAINTEXT", pattern=r"^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$"
    )
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    dead_letter_retention_days: int = Field(default=30, ge=1)
    """How long the dead-letter topics keep a record (`retention.ms`, set when created)."""
    max_record_bytes: int = Field(default=1_048_576, ge=300 * 1024)
    """The brokers' record size limit (`max.message.bytes`; Kafka's default is 1 MiB)."""


class WorkerSection(_Section):
    """The `[worker]` section: where a worker keeps its local state."""

    data_dir: Path = Path("journeys-data")
    max_batch_records: int = Field(default=2_000, ge=1)
    journey_generation: int = Field(default=0, ge=0)
    """The journey projection served; `journeys rebuild` builds the next one beside it."""


class ClientSection(_Section):
    """The `[client]` section: the query API that `journeys journey` and `journeys flags` ask."""

    api: str | None = Field(default=None, min_length=1)
    token: str | None = Field(default=None, min_length=1, repr=False)


Role = Literal["viewer", "manager", "admin"]
"""What a token may do: `viewer` reads, `manager` also acts on flags, `admin` also decides
identity (and, later, manages notifications)."""

ROLES: tuple[Role, ...] = ("viewer", "manager", "admin")
"""The roles, each allowed everything the ones before it are."""

DEFAULT_ROLE: Role = "viewer"
"""The role of a token written without one: it reads (and writes touchpoints), never acts."""

_USER = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]{1,200}$"


class TokenEntry(_Section):
    """One API token: the tenants it may read and write ("*": every tenant), who holds it and
    their role."""

    token: str = Field(min_length=16, repr=False)
    tenants: tuple[str, ...] = Field(min_length=1)
    user: str | None = Field(default=None, pattern=_USER)
    """Who acts with this token (recorded on every action); None: `token-` and 4 hex digits."""
    role: Role = DEFAULT_ROLE

    @field_validator("user")
    @classmethod
    def _user_trimmed(cls, value: str | None) -> str | None:
        if value is not None and value != value.strip():
            raise ValueError("a user neither starts nor ends with a space")
        return value

    @property
    def who(self) -> str:
        """The user this token acts as: its `user`, else a name derived from (not showing) it."""
        if self.user is not None:
            return self.user
        return "token-" + hashlib.sha256(self.token.encode()).hexdigest()[:4]

    def may(self, role: Role) -> bool:
        """Whether this token's role allows what `role` may do."""
        return ROLES.index(self.role) >= ROLES.index(role)


class ApiSection(_Section):
    """The `[api]` section: where a worker serves the query API and who may use it."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)
    advertised_url: str | None = None
    tokens: tuple[TokenEntry, ...] = ()
    peer_secret: str | None = Field(default=None, min_length=32, repr=False)
    """The workers' shared secret: signs forwarded requests and seals members records. Every
    worker of a deployment with more than one API needs the same one."""


Severity = Literal["low", "medium", "high"]


class _Subscription(_Section):
    """What a receiver covers: a field left out covers every tenant, rule or site."""

    tenants: tuple[str, ...] | None = None
    rules: tuple[str, ...] | None = None
    min_severity: Severity = "low"
    changes: tuple[str, ...] = NOTIFIED_BY_DEFAULT
    """The kinds of flag change notified (opened and reopened unless named)."""

    @field_validator("changes")
    @classmethod
    def _known_changes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(CHANGE_KINDS))
        if unknown or not value:
            raise ValueError(
                f"unknown change kind(s) {', '.join(unknown) or '(none given)'}; "
                f"known: {', '.join(CHANGE_KINDS)}"
            )
        return value

    def _filter(self, sites: tuple[str, ...] | None) -> Filter:
        return Filter(
            tenants=frozenset(self.tenants) if self.tenants is not None else None,
            rules=frozenset(self.rules) if self.rules is not None else None,
            sites=frozenset(sites) if sites is not None else None,
            min_severity=self.min_severity,
            changes=frozenset(self.changes),
        )


class WebhookSection(_Subscription):
    """One `[[notify.webhooks]]` subscription: where, the `whsec_` secret, what it covers."""

    url: str
    secret: str = Field(repr=False)
    sites: tuple[str, ...] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: str) -> str:
        problem = secret_problem(value)
        if problem is not None:
            raise ValueError(problem)  # pydantic shows the input: see _load_file
        return value

    def target(self) -> WebhookTarget:
        """What the notifier needs."""
        return WebhookTarget(self.url, self.secret, self._filter(self.sites))


class EmailSection(_Subscription):
    """`[notify.email]`: the SMTP server, the sender, and who gets each site's e-mail."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False
    from_: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    recipients: dict[str, tuple[str, ...]] = Field(min_length=1)
    """Site -> addresses; "*" gets every site's e-mail (and that of flags without a site)."""

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for site, addresses in value.items():
            if not addresses:
                raise ValueError(f"{site}: name at least one address")
            for address in addresses:
                if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+", address):
                    raise ValueError(f"{site}: {address!r} is not an e-mail address")
        return value

    def target(self) -> EmailTarget:
        """What the notifier needs (the recipients' sites double as its sites)."""
        return EmailTarget(
            host=self.host,
            port=self.port,
            starttls=self.starttls,
            tls=self.tls,
            sender=self.from_,
            recipients=MappingProxyType(dict(self.recipients)),
            username=self.username,
            password=self.password,
            filter=self._filter(None),
        )


class NotifySection(_Section):
    """The `[notify]` section: webhooks, e-mail, and how deliveries are retried and limited."""

    webhooks: tuple[WebhookSection, ...] = ()
    email: EmailSection | None = None
    attempts: int = Field(default=5, ge=1, le=30)
    first_retry_s: float = Field(default=1.0, ge=0)
    max_retry_s: float = Field(default=60.0, ge=0)
    timeout_s: float = Field(default=10.0, gt=0)
    rate_per_s: float = Field(default=5.0, gt=0)
    burst: int = Field(default=5, ge=1)
    max_in_flight: int = Field(default=4, ge=1)
    max_pending: int = Field(default=1_000, ge=1)
    start_from: Literal["earliest", "latest"] = "earliest"
    log_size: int = Field(default=500, ge=1, le=100_000)


def parse_tokens(text: str) -> tuple[TokenEntry, ...]:
    """Read `JOURNEYS_API_TOKENS`: `token=tenant,tenant;token2=*@admin/sam@acme` (ConfigError
    when malformed). After the tenants, `@role` and then `/user` are optional."""
    entries = []
    for number, part in enumerate(p for p in text.split(";") if p.strip()):
        token, equals, rest = part.strip().partition("=")
        tenants, at, who = rest.partition("@")
        role, _, user = who.partition("/")
        names = tuple(t.strip() for t in tenants.split(",") if t.strip())
        if not equals or not names:
            raise ConfigError(
                f"{TOKENS_ENV}: entry {number + 1} is not TOKEN=TENANT[,TENANT…][@ROLE[/USER]] "
                "or TOKEN=*[@ROLE[/USER]]"
            )
        if at and role.strip() not in ROLES:
            raise ConfigError(
                f"{TOKENS_ENV}: entry {number + 1}: the role after @ is one of {', '.join(ROLES)}"
            )
        fields: dict[str, Any] = {"token": token.strip(), "tenants": names}
        if at:
            fields["role"] = role.strip()
        if user.strip():
            fields["user"] = user.strip()
        try:
            entries.append(TokenEntry(**fields))
        except ValidationError as exc:
            wrong = sorted({str(err["loc"][0]) for err in exc.errors()})
            reason = (
                "a token needs at least 16 characters"
                if wrong == ["token"]
                else f"malformed {', '.join(wrong)} (a user has no control characters)"
            )
            raise ConfigError(f"{TOKENS_ENV}: entry {number + 1}: {reason}") from None
    return tuple(entries)


class Settings(_Section):
    """Everything journey-ledger is configured by."""

    tenants: dict[str, TenantSettings] = Field(default_factory=dict)
    rules: RuleThresholds = RuleThresholds()
    kafka: KafkaSection = KafkaSection()
    worker: WorkerSection = WorkerSection()
    client: ClientSection = ClientSection()
    api: ApiSection = ApiSection()
    notify: NotifySection = NotifySection()
    privacy: PrivacySection = PrivacySection()
    source: str | None = None

    @property
    def bootstrap_configured(self) -> bool:
        """Whether a broker was named (file, environment or option) rather than defaulted."""
        return "bootstrap_servers" in self.kafka.model_fields_set

    def with_bootstrap_servers(self, bootstrap_servers: str) -> Settings:
        """A copy whose `[kafka] bootstrap_servers` is replaced (the CLI option wins)."""
        kafka = self.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        return self.model_copy(update={"kafka": kafka})

    def kafka_settings(self) -> KafkaSettings:
        """What the Kafka clients need."""
        # Each [kafka] field is the KafkaSettings field of the same name (a unit test holds it).
        return KafkaSettings(
            **dict(self.kafka),
            max_batch_records=self.worker.max_batch_records,
            journey_generation=self.worker.journey_generation,
        )

    def notify_settings(self) -> NotifySettings:
        """What the notifier needs; `.active` is False when nobody is to be notified."""
        notify = self.notify
        return NotifySettings(
            webhooks=tuple(w.target() for w in notify.webhooks),
            email=notify.email.target() if notify.email is not None else None,
            retry=RetryPolicy(
                attempts=notify.attempts,
                first_delay_s=notify.first_retry_s,
                max_delay_s=notify.max_retry_s,
                timeout_s=notify.timeout_s,
            ),
            rate_per_s=notify.rate_per_s,
            burst=notify.burst,
            max_in_flight=notify.max_in_flight,
            max_pending=notify.max_pending,
            start_from=notify.start_from,
            journey_url=self.api.advertised_url,
            log_size=notify.log_size,
        )

    def key_provider(self) -> LocalKeyProvider | None:
        """The master key's provider, or None when no master key is set (nothing encrypted)."""
        return self.privacy.provider()

    def retention_days(self) -> Mapping[str, int]:
        """Tenant -> days a silent customer is kept, for the tenants with a retention."""
        return retention_days({t: s.privacy for t, s in self.tenants.items()})

    def suppression(self) -> Suppression | None:
        """What drops events carrying an erased customer's identifier (tenants that ask)."""
        return suppression(self.privacy, {t: s.privacy for t, s in self.tenants.items()})

    def sealer(self) -> Sealer | None:
        """What encrypts events' personal fields at ingest; None when no master key is set."""
        provider = self.key_provider()
        if provider is None:
            return None
        return Sealer(
            provider,
            {t: s.personal for t, s in self.tenants.items() if s.personal},
            peer_rings=self.privacy.ring_cache(),
        )

    def fold_settings(self) -> FoldSettings:
        """What the pure folds need."""
        rules = RuleSettings(
            duplicate_order_window=timedelta(hours=self.rules.duplicate_order_window_hours),
            enquiry_response_window=timedelta(hours=self.rules.enquiry_response_hours),
            referral_window=timedelta(hours=self.rules.referral_window_hours),
            referral_count=self.rules.referral_count,
            low_score_window=timedelta(days=self.rules.low_score_window_days),
            enabled=frozenset(RULES) - frozenset(self.rules.disabled),
        )
        regions = {t: s.default_region for t, s in self.tenants.items() if s.default_region}
        provider = self.key_provider()  # sealing on: the identity graph holds keyed hashes
        hashing = FoldSettings(identity_secret=provider.identity_secret if provider else None)
        identity = {
            t: s.identity.policy(s.default_region, hashing.hasher_for(t))
            for t, s in self.tenants.items()
        }
        return replace(
            hashing,
            rules=rules,
            default_regions=MappingProxyType(regions),
            identity=MappingProxyType(identity),
        )


def load_settings(config: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read the settings file given by `--config` or `JOURNEYS_CONFIG` (defaults without one).

    `JOURNEYS_BOOTSTRAP_SERVERS`, when set, overrides `[kafka] bootstrap_servers`;
    `JOURNEYS_API` and `JOURNEYS_TOKEN` override `[client] api` and `token`;
    `JOURNEYS_PEER_SECRET` overrides `[api] peer_secret`; `JOURNEYS_MASTER_KEY`,
    `JOURNEYS_NEW_MASTER_KEY` and `JOURNEYS_IDENTITY_KEY` override `[privacy] master_key`,
    `new_master_key` and `identity_key`.
    """
    settings = _load_file(config, environ)
    bootstrap = environ.get(BOOTSTRAP_ENV, "").strip()
    settings = settings.with_bootstrap_servers(bootstrap) if bootstrap else settings
    client = {
        field: value
        for field, env in (("api", API_ENV), ("token", TOKEN_ENV))
        if (value := environ.get(env, "").strip())
    }
    if client:
        section = settings.client.model_copy(update=client)
        settings = settings.model_copy(update={"client": section})
    peer_secret = environ.get(PEER_SECRET_ENV, "").strip()
    if peer_secret:
        if len(peer_secret) < 32:
            raise ConfigError(f"{PEER_SECRET_ENV}: the peer secret needs at least 32 characters")
        api = settings.api.model_copy(update={"peer_secret": peer_secret})
        settings = settings.model_copy(update={"api": api})
    for name, variable in MASTER_KEY_VARIABLES.items():
        key = environ.get(variable, "").strip()
        if key:
            what = name.removeprefix("new_").replace("_", " ")  # "master key", "identity key"
            problem = master_key_problem(key, what)
            if problem is not None:
                raise ConfigError(
                    f"{variable}: the {name.replace('_', ' ')} {problem}",
                    hint=f"set {variable} to the deployment's {what}, or unset it",
                )
            privacy = settings.privacy.model_copy(update={name: key})
            settings = settings.model_copy(update={"privacy": privacy})
    problem = suppression_problem(
        settings.privacy, {t: s.privacy for t, s in settings.tenants.items()}
    )
    if problem is not None:
        raise ConfigError(problem)
    tokens = environ.get(TOKENS_ENV, "").strip()
    if tokens:
        api = settings.api.model_copy(update={"tokens": settings.api.tokens + parse_tokens(tokens)})
        settings = settings.model_copy(update={"api": api})
    return settings


def _load_file(config: Path | None, environ: Mapping[str, str]) -> Settings:
    path = config or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    if path is None:
        return Settings()
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from None
    try:
        return Settings.model_validate({**document, "source": str(path)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"settings file {path}: {problems}") from None
