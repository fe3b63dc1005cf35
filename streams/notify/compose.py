"""The pure decisions of notifying: who wants a change, what they get, when to try again.

Nothing here does I/O or reads a clock: times come in as arguments, so every rule is tested
on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from schemas.outputs import FlagChange, FlagSnapshot
from schemas.printable import printable
from streams.notify.config import ANY_SITE, SEVERITIES, EmailTarget, Filter, RetryPolicy

NO_SITE = "no site"
"""How an e-mail names the site of a flag that has none."""


def severity_rank(severity: str) -> int:
    """0 for low, 1 medium, 2 high; an unknown severity ranks as low."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def matches(wanted: Filter, change: FlagChange) -> bool:
    """Whether a receiver with this filter is notified of `change`.

    A filter that leaves out tenants, rules or sites covers all of them. A change that carries
    no flag details (a withdrawn flag) matches only a filter restricting neither rules, sites
    nor severity.
    """
    if change.change not in wanted.changes:
        return False
    if wanted.tenants is not None and change.tenant not in wanted.tenants:
        return False
    flag = change.flag
    if not isinstance(flag, FlagSnapshot):
        return wanted.rules is None and wanted.sites is None and wanted.min_severity == "low"
    if wanted.rules is not None and flag.rule not in wanted.rules:
        return False
    if wanted.sites is not None and not wanted.sites.intersection(flag.sites):
        return False
    return severity_rank(flag.severity) >= severity_rank(wanted.min_severity)


def journey_link(base: str | None, change: FlagChange) -> str | None:
    """The journey page of the change's customer, at its flag, under the API's URL (if any)."""
    if not base:
        return None
    customer = quote(change.customer_id, safe="")
    return f"{base.rstrip('/')}/ui/journey?customer_id={customer}#flag={quote(change.flag_id)}"


def webhook_document(change: FlagChange, base: str | None) -> dict[str, object]:
    """What a webhook receives: the event type, the flag change whole, the journey's link."""
    document: dict[str, object] = {"type": f"flag.{change.change}", **change.to_document()}
    link = journey_link(base, change)
    if link is not None:
        document["journey_url"] = link
    return document


def webhook_body(change: FlagChange, base: str | None) -> bytes:
    """The webhook's JSON body (UTF-8), the bytes that are signed."""
    return orjson.dumps(webhook_document(change, base))


def email_sites(target: EmailTarget, change: FlagChange) -> dict[str, tuple[str, ...]]:
    """Site -> who gets the e-mail about `change` for that site (one e-mail per site).

    Each of the flag's sites goes to its own recipients and to those of "*"; a flag without a
    site goes to the "*" recipients only. A site nobody receives is left out.
    """
    flag = change.flag
    sites = flag.sites if isinstance(flag, FlagSnapshot) and flag.sites else (NO_SITE,)
    everywhere = target.recipients.get(ANY_SITE, ())
    found: dict[str, tuple[str, ...]] = {}
    for site in sites:
        own = target.recipients.get(site, ()) if site != NO_SITE else ()
        recipients = tuple(dict.fromkeys((*own, *everywhere)))
        if recipients:
            found[site] = recipients
    return found


def email_subject(change: FlagChange, site: str) -> str:
    """`[HIGH] duplicate-order at leeds: flag opened (acme-motors)`, control characters escaped."""
    flag = change.flag
    if isinstance(flag, FlagSnapshot):
        head = f"[{flag.severity.upper()}] {flag.rule} at {site}"
    else:
        head = f"flag {flag.flag_id}"
    return printable(f"{head}: flag {change.change} ({change.tenant})")


def email_text(change: FlagChange, site: str, base: str | None) -> str:
    """The plain-text body: the flag's message and facts, each line escaped."""
    flag = change.flag
    lines = [f"A flag was {change.change} for customer {change.customer_id} of {change.tenant}."]
    if isinstance(flag, FlagSnapshot):
        lines += [
            "",
            flag.message,
            "",
            f"Rule:      {flag.rule}",
            f"Severity:  {flag.severity}",
            f"Site:      {site}",
            f"Systems:   {', '.join(flag.systems) or '-'}",
            f"Opened at: {flag.opened_at}",
            f"Events:    {', '.join(flag.event_ids)}",
        ]
    lines += ["", f"Flag id:   {change.flag_id}", f"Change id: {change.change_id}"]
    link = journey_link(base, change)
    if link is not None:
        lines += ["", f"Journey:   {link}"]
    return "\n".join(printable(line) for line in lines) + "\n"


def email_message(
    target: EmailTarget,
    change: FlagChange,
    site: str,
    recipients: tuple[str, ...],
    base: str | None,
) -> EmailMessage:
    """The e-mail about `change` for one site; its Message-ID repeats for a repeated change."""
    message = EmailMessage()
    message["Subject"] = email_subject(change, site)
    message["From"] = target.sender
    message["To"] = ", ".join(recipients)
    domain = target.sender.rpartition("@")[2] or "journey-ledger"
    message["Message-ID"] = f"<{quote(change.change_id, safe='')}.{quote(site, safe='')}@{domain}>"
    message["X-Journeys-Change-Id"] = printable(change.change_id)
    message.set_content(email_text(change, site, base))
    return message


def retry_delays(policy: RetryPolicy) -> tuple[float, ...]:
    """The waits between attempts: `first_delay_s`, doubling, capped at `max_delay_s`.

    One fewer than `attempts`; after the last attempt fails the notification is dead-lettered.
    """
    return tuple(
        min(policy.first_delay_s * 2**n, policy.max_delay_s) for n in range(policy.attempts - 1)
    )


def retry_window_s(policy: RetryPolicy) -> float:
    """The longest a notification is retried before it is dead-lettered: every wait and every
    attempt timing out. This bounds how long a receiver that is down holds anything up."""
    return sum(retry_delays(policy)) + policy.attempts * policy.timeout_s


def receiver_label(url: str) -> str:
    """A URL as logs and the delivery log show it: no credentials, no query, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class RateLimit:
    """A token bucket: `rate_per_s` deliveries a second, `burst` at once."""

    rate_per_s: float
    burst: int
    _tokens: float | None = None
    _at: float = 0.0

    def reserve(self, now: float) -> float:
        """Take a token; the seconds to wait before using it (0: go now)."""
        if self._tokens is None:
            self._tokens, self._at = float(self.burst), now
        elapsed = max(0.0, now - self._at)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s


@dataclass
class OffsetTracker:
    """Which offsets of the flag topic may be committed: all before the oldest unsettled one.

    A record is settled when each of its notifications was delivered or dead-lettered.
    """

    _pending: dict[int, dict[int, int]] = field(default_factory=dict)
    """partition -> offset -> notifications not settled yet."""
    _next: dict[int, int] = field(default_factory=dict)
    """partition -> the offset after the last record read."""
    _epochs: dict[int, int] = field(default_factory=dict)
    """partition -> how often it was given away: a settlement from before then is ignored."""

    def epoch(self, partition: int) -> int:
        """The partition's current epoch, to hand back to `settle`."""
        return self._epochs.get(partition, 0)

    def read(self, partition: int, offset: int, notifications: int) -> None:
        """A record was read that gives `notifications` notifications (0: settled at once)."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        if notifications > 0:
            self._pending.setdefault(partition, {})[offset] = notifications

    def settle(self, partition: int, offset: int, epoch: int) -> None:
        """One notification of the record at `offset` (read in `epoch`) was delivered or
        dead-lettered."""
        waiting = self._pending.get(partition)
        if epoch != self.epoch(partition) or waiting is None or offset not in waiting:
            return  # the partition was given away meanwhile
        waiting[offset] -= 1
        if waiting[offset] <= 0:
            del waiting[offset]

    def committable(self) -> Mapping[int, int]:
        """partition -> the offset to commit (the next record to read after a restart)."""
        return {
            partition: min(self._pending.get(partition) or {end: 0})
            for partition, end in self._next.items()
        }

    def pending(self) -> int:
        """Records read whose notifications are not all settled."""
        return sum(len(waiting) for waiting in self._pending.values())

    def forget(self, partitions: set[int]) -> None:
        """Partitions given to another notifier: their records are its business now."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._next.pop(partition, None)
            self._epochs[partition] = self.epoch(partition) + 1
