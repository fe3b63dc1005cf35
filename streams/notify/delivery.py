"""Sending one notification, and the log of what was sent.

A receiver is a webhook URL or the SMTP server; each attempt either returns or raises
`DeliveryError` saying why (an HTTP status, a timeout, the SMTP server's refusal). The
`DeliveryLog` keeps the latest deliveries of this worker and the counts `/metrics` shows.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol

import aiohttp
import aiosmtplib

from schemas.printable import printable
from streams.notify.compose import receiver_label
from streams.notify.config import EmailTarget, WebhookTarget
from streams.notify.signing import signed_headers

USER_AGENT = "journey-ledger-notifier"


class DeliveryError(Exception):
    """One attempt failed; the text says why (no secret in it)."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing to send to one receiver: a webhook body or an e-mail, about one change."""

    change_id: str
    tenant: str
    body: bytes = b""
    """The webhook's JSON body."""
    email: EmailMessage | None = None
    site: str | None = None
    """The site an e-mail is about (one e-mail per site)."""

    @property
    def delivery_id(self) -> str:
        """The change id, and for an e-mail the site too (each site has its own e-mail)."""
        return self.change_id if self.site is None else f"{self.change_id}/{self.site}"


class Receiver(Protocol):
    """Where notifications go: one webhook, or the SMTP server."""

    kind: str
    key: str
    """What rate limits and in-flight caps are kept per (the URL, or host:port)."""
    label: str
    """How the delivery log shows it (no credentials, no query)."""

    async def send(self, notification: Notification, timeout_s: float) -> None:
        """Deliver it once; `DeliveryError` when that failed."""


class WebhookReceiver:
    """POSTs signed JSON to one URL; any 2xx answer is a delivery, anything else a failure."""

    kind = "webhook"

    def __init__(self, target: WebhookTarget, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.session = session
        self.key = target.url
        self.label = receiver_label(target.url)

    async def send(self, notification: Notification, timeout_s: float) -> None:
        """POST the body, signed now, with the change id as `webhook-id`."""
        headers = signed_headers(
            self.target.secret, notification.change_id, notification.body, datetime.now(UTC)
        )
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = USER_AGENT
        try:
            async with self.session.post(
                self.target.url,
                data=notification.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"HTTP {response.status}")
        except TimeoutError:
            raise DeliveryError(f"no answer within {timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(_said(exc)) from None


class EmailReceiver:
    """Sends each e-mail through the configured SMTP server (STARTTLS or TLS, optional login)."""

    kind = "email"

    def __init__(self, target: EmailTarget) -> None:
        self.target = target
        self.key = f"smtp://{target.host}:{target.port}"
        self.label = self.key

    async def send(self, notification: Notification, timeout_s: float) -> None:
        """Hand the e-mail to the server; a refusal or a timeout is a failure."""
        assert notification.email is not None
        target = self.target
        try:
            await aiosmtplib.send(
                notification.email,
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                start_tls=target.starttls and not target.tls,
                use_tls=target.tls,
                timeout=timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(_said(exc)) from None


def _said(error: BaseException) -> str:
    return printable(f"{type(error).__name__}: {str(error)[:200]}")


@dataclass
class DeliveryRecord:
    """One notification to one receiver, as the delivery log shows it."""

    id: str
    kind: str
    receiver: str
    tenant: str
    status: str = "pending"
    """`pending`, `retrying`, `delivered` or `dead-lettered`."""
    attempts: int = 0
    last_error: str | None = None
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """What `GET /v1/notifications/deliveries` shows of it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "receiver": self.receiver,
            "tenant": self.tenant,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "first_attempt_at": _iso(self.first_attempt_at),
            "last_attempt_at": _iso(self.last_attempt_at),
            "finished_at": _iso(self.finished_at),
        }


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


@dataclass
class DeliveryLog:
    """This worker's latest deliveries (the oldest forgotten past `size`) and its counts."""

    size: int = 500
    records: deque[DeliveryRecord] = field(default_factory=deque)
    delivered: Counter[str] = field(default_factory=Counter)
    """Deliveries that succeeded, by receiver kind."""
    retried: Counter[str] = field(default_factory=Counter)
    """Failed attempts that were tried again, by receiver kind."""
    dead_lettered: Counter[str] = field(default_factory=Counter)
    """Notifications given up on and written to the dead-letter topic, by receiver kind."""
    pending: int = 0
    """Flag changes read whose notifications are not all settled (set by the notifier)."""

    def start(self, notification: Notification, receiver: Receiver) -> DeliveryRecord:
        """A new entry for a notification about to be tried."""
        record = DeliveryRecord(
            notification.delivery_id, receiver.kind, receiver.label, notification.tenant
        )
        self.records.append(record)
        while len(self.records) > self.size:
            self.records.popleft()
        return record

    def attempt(self, record: DeliveryRecord, now: float) -> None:
        """An attempt begins."""
        record.attempts += 1
        record.first_attempt_at = record.first_attempt_at or now
        record.last_attempt_at = now

    def succeeded(self, record: DeliveryRecord, now: float) -> None:
        """The receiver took it."""
        record.status, record.finished_at = "delivered", now
        self.delivered[record.kind] += 1

    def failed(self, record: DeliveryRecord, error: str, *, final: bool, now: float) -> None:
        """An attempt failed; `final`: it was the last, the notification is dead-lettered."""
        record.last_error = error
        if final:
            record.status, record.finished_at = "dead-lettered", now
            self.dead_lettered[record.kind] += 1
        else:
            record.status = "retrying"
            self.retried[record.kind] += 1

    def entries(self, tenants: frozenset[str] | None, limit: int) -> list[dict[str, Any]]:
        """The latest deliveries first, only those of `tenants` (None: every tenant)."""
        found = []
        for record in reversed(self.records):
            if tenants is None or record.tenant in tenants:
                found.append(record.to_dict())
                if len(found) >= limit:
                    break
        return found


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until `stop`; True when stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
