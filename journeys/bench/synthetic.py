"""Synthetic load: the bundled demo journeys copied many times with fresh identifiers.

Every copy keeps the demo's stories (and so fires every rule) but gets its own event ids,
emails, phones, plates, VINs and business ids, so copies never stitch to each other. Used by
the crash tests and the benchmark; deterministic for a given number of copies.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from journeys.demo import demo_lines

_SUFFIXED = frozenset(
    {
        "anonymous_id",
        "booking_id",
        "card_token",
        "correlation_id",
        "membership_id",
        "order_id",
        "payment_id",
    }
)
_DIGIT = re.compile(r"\d")


def demo_documents() -> list[dict[str, Any]]:
    """The bundled demo events as JSON objects, in file order."""
    return [orjson.loads(line) for line in demo_lines()]


def _phone(value: str, copy: int) -> str:
    # Keep the formatting and the number plan; replace the last six digits so the same phone
    # written differently in one copy stays the same number.
    positions = [m.start() for m in _DIGIT.finditer(value)][-6:]
    digits = f"{copy % 1000:03d}" + "".join(value[p] for p in positions[-3:])
    chars = list(value)
    for position, digit in zip(positions, digits, strict=True):
        chars[position] = digit
    return "".join(chars)


def _rewrite(key: str, value: Any, copy: int) -> Any:
    if not isinstance(value, str):
        return value
    if key == "email":
        local, _, domain = value.partition("@")
        return f"{local}+c{copy}@{domain}"
    if key == "phone":
        return _phone(value, copy)
    if key == "plate":
        return f"{value}{copy:x}".upper() if value.isupper() else f"{value}{copy:x}"
    if key == "vin":
        return value[:11] + f"{copy:06d}"
    if key in _SUFFIXED:
        return f"{value}-{copy}"
    return value


def copy_document(document: dict[str, Any], copy: int) -> dict[str, Any]:
    """One demo event rewritten for copy number `copy` (0 up to 999 keeps phones unique)."""
    result = dict(document)
    result["event_id"] = f"{document['event_id']}-{copy}"
    result["customer"] = {k: _rewrite(k, v, copy) for k, v in document["customer"].items()}
    result["payload"] = {k: _rewrite(k, v, copy) for k, v in document["payload"].items()}
    if "correlation_id" in document:
        result["correlation_id"] = _rewrite("correlation_id", document["correlation_id"], copy)
    return result


def synthetic_lines(copies: int) -> Iterator[bytes]:
    """`copies` copies of the demo journeys as JSON lines, copy by copy."""
    documents = demo_documents()
    for copy in range(copies):
        for document in documents:
            yield orjson.dumps(copy_document(document, copy))


# --- Skewed load for the benchmark -----------------------------------------------------------
#
# Many customers with a heavy-tailed number of events each (most have a few, some hundreds),
# spread over several tenants. Customers with room for one play a story that uses the whole
# type catalogue across systems that share no keys (chat, booking, SMS, web shop, card
# processor, roadside partner, recalls, inbox); a share of the stories is contradictory and
# fires a rule. Identifiers are written the way each system writes them (phones national or
# international, plates with spaces or dashes, e-mails in odd case), and most customers can
# only be stitched transitively; some arrive in an order that creates two journeys first and
# merges them later. The output is sorted by `occurred_at` and depends only on the arguments.

BENCH_TENANTS: tuple[str, ...] = (
    "acme-motors",
    "northwind",
    "globex-auto",
    "umbrella-cars",
    "initech-retail",
    "massive-dynamic",
    "tyrell-cars",
    "hooli-store",
)
"""The tenants of the skewed load: customers are spread evenly over them, and their keys
spread evenly over 4 partitions (two tenants each)."""

STORIES: tuple[str, ...] = ("service", "orders", "roadside", "recall", "enquiry", "ask")
"""The story kinds a customer with enough events plays."""

_STORY_WEIGHTS = (0.25, 0.2, 0.15, 0.1, 0.2, 0.1)
_BASE = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
_SPAN_DAYS = 90
_FIRST = ("Priya", "Tom", "Grace", "Marek", "Aisha", "Ben", "Chloe", "Omar", "Lena", "Kofi")
_LAST = ("Shah", "Becker", "Okafor", "Nowak", "Khan", "Hughes", "Martin", "Haddad", "Berg")
_SITES = ("leeds", "york", "hull", "bradford", "sheffield")
_SKUS = ("LAPTOP-14-PRO", "PHONE-X2", "HEADSET-7", "DOCK-USB4", "MONITOR-27", "TABLET-S")


@dataclass(frozen=True, slots=True)
class PlannedCustomer:
    """One synthetic customer: where, how many events, and what their story is."""

    index: int
    tenant: str
    events: int
    story: str | None
    """The story played (None: too few events for one; only everyday events)."""
    contradictory: bool
    """The story contains a contradiction a rule flags."""
    anchored: bool
    """Every event carries the customer's account number (no stitching needed)."""
    merges: bool
    """An early event carries only an identifier seen later: two journeys that merge."""


@dataclass(frozen=True, slots=True)
class SyntheticLoad:
    """The events of a skewed load as JSON lines (in `occurred_at` order) and the plan."""

    lines: list[bytes]
    customers: list[PlannedCustomer]
    customer_of_line: list[int]
    """For each line, the index of the planned customer it belongs to."""


def event_counts(events: int, customers: int, rng: random.Random, skew: float = 1.3) -> list[int]:
    """A heavy-tailed split of `events` over `customers` (each at least one, summing exactly).

    Weights follow a Pareto law with shape `skew` (smaller is more skewed); a customer is
    capped at 2% of the events (at least 50) so one journey cannot be the whole load.
    """
    if customers < 1 or events < customers:
        raise ValueError("need at least one customer and at least one event per customer")
    spare = events - customers
    weights = [rng.paretovariate(skew) for _ in range(customers)]
    total = sum(weights)
    cap = max(50, events // 50)
    counts = [min(cap, 1 + int(spare * w / total)) for w in weights]
    # Hand out (or take back) the rounding remainder, largest weights first.
    order = sorted(range(customers), key=lambda i: -weights[i])
    missing = events - sum(counts)
    step = 1 if missing > 0 else -1
    while missing:
        moved = False
        for i in order:
            if missing == 0:
                break
            if (step > 0 and counts[i] < cap) or (step < 0 and counts[i] > 1):
                counts[i] += step
                missing -= step
                moved = True
        if not moved:
            cap += 1  # only when events > cap * customers: let the cap give
    return counts


class _Person:
    """One customer's identifiers as the different systems write them, and their events."""

    def __init__(self, index: int, tenant: str, rng: random.Random, seed: int) -> None:
        self.index = index
        self.tenant = tenant
        self.rng = rng
        self.seed = seed
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        self.name = f"{first} {last}"
        self.email = f"{first}.{last}.{index}@example.{('com', 'org', 'net')[index % 3]}".lower()
        digits = f"7{(123_456_789 + index * 7_919) % 10**9:09d}"
        self.phone_digits = digits
        rest, number = divmod(index, 100)
        letters = "".join(chr(65 + (rest // 26**k) % 26) for k in range(5))
        self.plate = f"{letters[:2]}{number:02d} {letters[2:]}"
        self.vin = f"WVWZZZ1KZ{index:08d}"
        self.anonymous_id = f"chat-{seed}-{index}"
        self.card_token = f"tok_{seed}_{index:x}"
        self.membership_id = f"RSA-{index}"
        self.customer_ref = f"CR-{index:07d}"
        self.site = rng.choice(_SITES)
        self.count = 0
        self.orders = 0
        self.documents: list[dict[str, Any]] = []
        self.anchored = False

    def phone(self) -> str:
        d = self.phone_digits
        return self.rng.choice((f"+44 {d[:4]} {d[4:]}", f"0{d[:4]} {d[4:]}", f"0{d}"))

    def plate_as_written(self) -> str:
        compact = self.plate.replace(" ", "")
        return self.rng.choice((self.plate, compact, compact.lower(), self.plate.replace(" ", "-")))

    def email_as_written(self) -> str:
        return self.rng.choice((self.email, self.email.title(), f" {self.email}"))

    def order_id(self) -> str:
        self.orders += 1
        return f"ORD-{self.seed}-{self.index}-{self.orders}"

    def add(
        self,
        at: datetime,
        kind: str,
        system: str,
        channel: str,
        customer: dict[str, str],
        payload: dict[str, Any],
        **extra: Any,
    ) -> str:
        """Append an event; returns its id."""
        self.count += 1
        event_id = f"bx{self.seed}-{self.index}-{self.count}"
        who = dict(customer)
        if self.anchored:
            who["customer_ref"] = self.customer_ref
        document: dict[str, Any] = {
            "event_id": event_id,
            "type": kind,
            "occurred_at": at.isoformat(),
            "tenant": self.tenant,
            "source": {"system": system, "channel": channel, **extra},
            "customer": who,
            "payload": payload,
        }
        self.documents.append(document)
        return event_id


def _slot(at: datetime, days: int) -> str:
    return (at + timedelta(days=days)).replace(hour=10, minute=30, second=0).isoformat()


def _story_service(p: _Person, at: datetime, contradictory: bool) -> None:
    # Chat (session id only), then plate and phone, a booking, an SMS stating the slot.
    slot = _slot(at, 4)
    minute = timedelta(minutes=1)
    anon = {"anonymous_id": p.anonymous_id}
    site = {"site": p.site}
    text = "Could I bring my car in for a service?"
    p.add(
        at,
        "chat.message",
        "chat-vendor",
        "chat",
        anon,
        {"speaker": "customer", "text": text, "requested_slot": slot},
        **site,
    )
    p.add(
        at + minute,
        "chat.message",
        "chat-vendor",
        "chat",
        anon,
        {"speaker": "agent", "asked_for": ["registration", "mobile"]},
        **site,
    )
    p.add(
        at + 2 * minute,
        "chat.message",
        "chat-vendor",
        "chat",
        {**anon, "plate": p.plate_as_written(), "phone": p.phone()},
        {"speaker": "customer", "provided": ["plate", "phone"]},
        **site,
    )
    booking = f"BK-{p.seed}-{p.index}"
    p.add(
        at + 5 * minute,
        "booking.created",
        "dealer-booking",
        "system",
        {"plate": p.plate_as_written(), "phone": p.phone(), "name": p.name},
        {"booking_id": booking, "slot": slot, "service": "annual service"},
        **site,
    )
    if p.index % 3 == 0:  # rebooked: cancelled, then booked again for the same slot
        p.add(
            at + 8 * minute,
            "booking.cancelled",
            "dealer-booking",
            "system",
            {"plate": p.plate_as_written()},
            {"booking_id": booking},
            **site,
        )
        booking = booking + "b"
        p.add(
            at + 9 * minute,
            "booking.created",
            "dealer-booking",
            "system",
            {"plate": p.plate_as_written(), "phone": p.phone()},
            {"booking_id": booking, "slot": slot, "service": "annual service"},
            **site,
        )
    stated = _slot(at, 6) if contradictory else slot
    p.add(
        at + 30 * minute,
        "message.sent",
        "sms-gateway",
        "sms",
        {"phone": p.phone()},
        {
            "medium": "sms",
            "stated_slot": stated,
            "booking_id": booking,
            "template": "booking-confirmation",
        },
    )


def _story_orders(p: _Person, at: datetime, contradictory: bool) -> None:
    # A checkout that errors, an order, its card authorisation; contradictory: the customer
    # orders again, both are authorised, both cancelled, and both authorisations stand.
    minute = timedelta(minutes=1)
    sku = p.rng.choice(_SKUS)
    amount = float(100 + p.index % 900)
    basket = {"items": [sku], "amount": amount, "currency": "GBP"}
    p.add(
        at,
        "form.failed",
        "web-shop",
        "web",
        {"email": p.email_as_written(), "anonymous_id": p.anonymous_id},
        {"form": "checkout", "error": "HTTP 502 from payment page"},
    )
    first = p.order_id()
    p.add(
        at + minute,
        "order.placed",
        "web-shop",
        "web",
        {"email": p.email_as_written(), "order_id": first},
        {"order_id": first, **basket},
    )
    p.add(
        at + 2 * minute,
        "payment.authorised",
        "card-processor",
        "system",
        {"card_token": p.card_token, "order_id": first},
        {"payment_id": f"PAY-{first}", "order_id": first, "amount": amount, "currency": "GBP"},
    )
    p.add(
        at + 3 * minute,
        "message.sent",
        "web-shop",
        "email",
        {"email": p.email},
        {"medium": "email", "template": "order-received"},
    )
    if contradictory:
        second = p.order_id()
        p.add(
            at + 5 * minute,
            "order.placed",
            "web-shop",
            "web",
            {"email": p.email, "order_id": second, "card_token": p.card_token},
            {"order_id": second, **basket},
        )
        p.add(
            at + 6 * minute,
            "payment.authorised",
            "card-processor",
            "system",
            {"card_token": p.card_token, "order_id": second},
            {
                "payment_id": f"PAY-{second}",
                "order_id": second,
                "amount": amount,
                "currency": "GBP",
            },
        )
        p.add(
            at + 12 * 60 * minute,
            "call.logged",
            "call-centre",
            "phone",
            {"email": p.email, "phone": p.phone()},
            {
                "direction": "inbound",
                "reason": "ordered twice after an error",
                "outcome": "both orders cancelled",
            },
        )
        for n, order in enumerate((first, second)):
            p.add(
                at + (12 * 60 + 3 + n) * minute,
                "order.cancelled",
                "order-system",
                "system",
                {"order_id": order},
                {"order_id": order, "reason": "customer request"},
            )
    elif p.index % 4 == 0:  # cancelled: the authorisation is voided first
        p.add(
            at + 25 * minute,
            "order.cancelled",
            "order-system",
            "system",
            {"order_id": first},
            {"order_id": first, "reason": "customer request"},
        )
        p.add(
            at + 20 * minute,
            "payment.voided",
            "card-processor",
            "system",
            {"card_token": p.card_token, "order_id": first},
            {"payment_id": f"PAY-{first}", "order_id": first},
        )
    else:
        p.add(
            at + 20 * minute,
            "order.confirmed",
            "order-system",
            "system",
            {"order_id": first},
            {"order_id": first},
        )
        p.add(
            at + 25 * minute,
            "payment.captured",
            "card-processor",
            "system",
            {"card_token": p.card_token, "order_id": first},
            {"payment_id": f"PAY-{first}", "order_id": first, "amount": amount, "currency": "GBP"},
        )


def _story_roadside(p: _Person, at: datetime, contradictory: bool) -> None:
    # Enrolled at the dealer; the partner looks the customer up by plate and phone.
    p.add(
        at,
        "enrolment.confirmed",
        "dealer-sales",
        "in_person",
        {
            "membership_id": p.membership_id,
            "plate": p.plate,
            "name": p.name,
            "email": p.email_as_written(),
        },
        {
            "programme": "Roadside Assist",
            "effective_from": (at + timedelta(days=1)).date().isoformat(),
        },
        site=p.site,
    )
    later = at + timedelta(days=14)
    minute = timedelta(minutes=1)
    who = {"plate": p.plate_as_written(), "phone": p.phone()}
    if contradictory:
        p.add(
            later,
            "enrolment.lookup",
            "roadside-partner",
            "phone",
            who,
            {"programme": "roadside-assist", "found": False},
        )
        p.add(
            later + 2 * minute,
            "referral.made",
            "roadside-partner",
            "phone",
            who,
            {"to": "dealer-sales", "reason": "not in our system; ask your dealer"},
        )
        p.add(
            later + 15 * minute,
            "call.logged",
            "dealer-sales",
            "phone",
            {"phone": p.phone()},
            {
                "direction": "inbound",
                "reason": "partner cannot find membership",
                "transferred_to": "roadside-partner",
                "asked_for": ["membership number"],
            },
            site=p.site,
        )
        p.add(
            later + 30 * minute,
            "referral.made",
            "roadside-partner",
            "phone",
            {"phone": p.phone()},
            {"to": "dealer-sales", "reason": "still not found"},
        )
    else:
        p.add(
            later,
            "enrolment.lookup",
            "roadside-partner",
            "phone",
            who,
            {"programme": "roadside-assist", "found": True},
        )
        p.add(
            later + 40 * minute,
            "call.logged",
            "roadside-partner",
            "phone",
            {"phone": p.phone()},
            {"direction": "outbound", "outcome": "recovered"},
        )


def _story_recall(p: _Person, at: datetime, contradictory: bool) -> None:
    # Head office notifies a recall by VIN; the service centre cannot see it.
    slot = _slot(at, 7)
    booking = f"BK-{p.seed}-{p.index}"
    p.add(
        at,
        "recall.notified",
        "head-office-recalls",
        "system",
        {"vin": p.vin, "name": p.name},
        {"recall_code": "RC-2026-014"},
    )
    p.add(
        at + timedelta(days=2),
        "booking.created",
        "dealer-booking",
        "phone",
        {"vin": p.vin, "email": p.email_as_written()},
        {"booking_id": booking, "slot": slot, "service": "brake noise"},
        site=p.site,
    )
    slot = _slot(at, 8)
    p.add(
        at + timedelta(days=3),
        "booking.changed",
        "dealer-booking",
        "phone",
        {"vin": p.vin, "email": p.email},
        {"booking_id": booking, "slot": slot, "service": "brake noise"},
        site=p.site,
    )
    p.add(
        at + timedelta(days=7, hours=1),
        "recall.lookup",
        "service-centre",
        "in_person",
        {"vin": p.vin.lower()},
        {"recall_code": "RC-2026-014", "found": not contradictory},
        site=p.site,
    )
    p.add(
        at + timedelta(days=3, minutes=5),
        "message.sent",
        "dealer-booking",
        "email",
        {"email": p.email},
        {"medium": "email", "stated_slot": slot, "booking_id": booking},
    )


def _story_enquiry(p: _Person, at: datetime, contradictory: bool) -> None:
    # A contact form and an e-mail; answered in time, or never.
    p.add(
        at,
        "form.submitted",
        "website",
        "web",
        {"email": p.email_as_written(), "name": p.name},
        {"form": "contact-us", "message": "Please call me back."},
    )
    received = p.add(
        at + timedelta(hours=2),
        "message.received",
        "customer-inbox",
        "email",
        {"email": p.email},
        {"medium": "email", "text": "Any news?"},
    )
    if not contradictory:
        p.add(
            at + timedelta(hours=5),
            "enquiry.responded",
            "customer-inbox",
            "email",
            {"email": p.email},
            {"in_reply_to": received, "via": "email"},
        )
    p.add(
        at + timedelta(days=3),
        "call.logged",
        "sales-desk",
        "phone",
        {"email": p.email, "phone": p.phone()},
        {"direction": "outbound", "reason": "follow-up", "outcome": "valuation booked"},
        site=p.site,
    )


def _story_ask(p: _Person, at: datetime, contradictory: bool) -> None:
    # The customer gives a phone number in chat; the agent asks for it again (or not).
    anon = {"anonymous_id": p.anonymous_id}
    p.add(
        at,
        "chat.message",
        "chat-vendor",
        "chat",
        {**anon, "phone": p.phone()},
        {"speaker": "customer", "text": "Please call me", "provided": ["phone"]},
    )
    p.add(
        at + timedelta(minutes=1),
        "chat.message",
        "chat-vendor",
        "chat",
        anon,
        {"speaker": "agent", "asked_for": ["mobile"] if contradictory else ["order number"]},
    )
    p.add(
        at + timedelta(hours=1),
        "call.logged",
        "call-centre",
        "phone",
        {"phone": p.phone(), "email": p.email_as_written()},
        {"direction": "outbound", "outcome": "resolved"},
    )


_STORY = {
    "service": (_story_service, 7),
    "orders": (_story_orders, 9),
    "roadside": (_story_roadside, 5),
    "recall": (_story_recall, 5),
    "enquiry": (_story_enquiry, 4),
    "ask": (_story_ask, 3),
}
"""Each story and the most events it writes (a customer plays one only with that many)."""


def _known(p: _Person) -> dict[str, str]:
    """Identifiers the customer's events used so far, canonical form."""
    canonical = {
        "email": p.email,
        "phone": "+" + "44" + p.phone_digits,
        "plate": p.plate,
        "vin": p.vin,
        "anonymous_id": p.anonymous_id,
        "card_token": p.card_token,
        "membership_id": p.membership_id,
    }
    used = {k for d in p.documents for k in d["customer"] if k in canonical}
    return {k: canonical[k] for k in sorted(used)} or {"email": p.email}


def _everyday(p: _Person, at: datetime, budget: int) -> tuple[datetime, int]:
    """One benign exchange of at most `budget` events; returns the time after it and its size."""
    known = _known(p)
    kinds = sorted(known)
    first = p.rng.choice(kinds)
    who = {first: known[first]}
    if len(kinds) > 1 and p.rng.random() < 0.5:
        second = p.rng.choice(kinds)
        who[second] = known[second]
    minute = timedelta(minutes=1)
    options = [1] + [n for n in (2, 3, 4) if n <= budget]
    size = p.rng.choice(options)
    if size == 1:
        choice = p.rng.randrange(4)
        if choice == 0:
            p.add(
                at,
                "survey.responded",
                "survey-tool",
                "email",
                who,
                {"score": p.rng.randrange(11), "scale": 10, "comment": "ok"},
            )
        elif choice == 1:
            p.add(
                at,
                "message.sent",
                "crm",
                "email",
                who,
                {"medium": "email", "template": "newsletter"},
            )
        elif choice == 2:
            p.add(
                at,
                "call.logged",
                "call-centre",
                "phone",
                who,
                {"direction": "outbound", "outcome": "courtesy call"},
            )
        else:
            p.add(
                at,
                "payment.declined",
                "card-processor",
                "system",
                {**who, "card_token": p.card_token},
                {
                    "payment_id": f"PAYD-{p.seed}-{p.index}-{p.count}",
                    "amount": 9.99,
                    "currency": "GBP",
                },
            )
    elif size == 2:
        if p.rng.random() < 0.5:
            received = p.add(
                at,
                "message.received",
                "customer-inbox",
                "email",
                who,
                {"medium": "email", "text": "A question"},
            )
            p.add(
                at + 45 * minute,
                "enquiry.responded",
                "customer-inbox",
                "email",
                who,
                {"in_reply_to": received, "via": "email"},
            )
        else:
            p.add(
                at,
                "chat.message",
                "chat-vendor",
                "chat",
                who,
                {"speaker": "customer", "text": "Opening hours?"},
            )
            p.add(
                at + minute,
                "chat.message",
                "chat-vendor",
                "chat",
                who,
                {"speaker": "agent", "text": "9 to 5"},
            )
    else:
        order = p.order_id()
        amount = float(10 + p.count)
        p.add(
            at,
            "order.placed",
            "web-shop",
            "web",
            {**who, "order_id": order},
            {"order_id": order, "items": [f"SKU-{p.count}"], "amount": amount, "currency": "GBP"},
        )
        p.add(
            at + minute,
            "order.confirmed",
            "order-system",
            "system",
            {"order_id": order},
            {"order_id": order},
        )
        if size >= 3:
            p.add(
                at + 2 * minute,
                "payment.captured",
                "card-processor",
                "system",
                {"order_id": order, "card_token": p.card_token},
                {
                    "payment_id": f"PAY-{order}",
                    "order_id": order,
                    "amount": amount,
                    "currency": "GBP",
                },
            )
        if size == 4:
            p.add(
                at + timedelta(days=2),
                "payment.refunded",
                "card-processor",
                "system",
                {"order_id": order},
                {
                    "payment_id": f"PAY-{order}",
                    "order_id": order,
                    "amount": amount,
                    "currency": "GBP",
                },
            )
    return at + timedelta(minutes=p.rng.randrange(30, 30 * 60)), size


def _merge_insert(p: _Person, start: int) -> bool:
    """Add an early event carrying only an identifier the story links later (two journeys)."""
    story = p.documents[start:]
    seen: set[str] = set()
    for position, document in enumerate(story):
        kinds = set(document["customer"]) - {"name", "customer_ref"}
        new = sorted(kinds - seen)
        if position > 0 and new and kinds & seen:
            kind = new[0]
            before = datetime.fromisoformat(story[0]["occurred_at"])
            after = datetime.fromisoformat(document["occurred_at"])
            p.add(
                before + (after - before) / 2,
                "call.logged",
                "switchboard",
                "phone",
                {kind: document["customer"][kind]},
                {"direction": "inbound", "reason": "asked to be put through"},
            )
            return True
        seen |= kinds
    return False


def skewed_load(
    events: int,
    customers: int,
    seed: int = 1,
    *,
    contradictory_share: float = 0.4,
    anchored_share: float = 0.25,
    merge_share: float = 0.3,
    skew: float = 1.3,
) -> SyntheticLoad:
    """`events` events of `customers` customers, heavy-tailed, deterministic for the arguments.

    A customer with enough events plays one story (`STORIES`), contradictory with probability
    `contradictory_share`; `anchored_share` of customers carry an account number on every
    event (no stitching needed); of the others, `merge_share` first appear as two journeys
    that a later event merges. The rest of each customer's events are everyday exchanges
    (surveys, newsletters, answered questions, small orders) spread over the following weeks.
    """
    rng = random.Random(seed)
    counts = event_counts(events, customers, rng, skew)
    plans: list[PlannedCustomer] = []
    documents: list[tuple[str, str, int, dict[str, Any]]] = []
    stories = list(_STORY)
    for index, count in enumerate(counts):
        tenant = BENCH_TENANTS[index % len(BENCH_TENANTS)]
        p = _Person(index, tenant, rng, seed)
        p.anchored = rng.random() < anchored_share
        at = _BASE + timedelta(seconds=rng.randrange(_SPAN_DAYS * 86_400))
        chosen = rng.choices(stories, _STORY_WEIGHTS)[0]
        play, longest = _STORY[chosen]
        contradictory = rng.random() < contradictory_share
        merges = False
        story: str | None = chosen
        if count >= longest + 1:
            play(p, at, contradictory)
            if not p.anchored and rng.random() < merge_share:
                merges = _merge_insert(p, 0)
            at = max(datetime.fromisoformat(d["occurred_at"]) for d in p.documents)
            at += timedelta(minutes=rng.randrange(30, 12 * 60))
        else:
            story, contradictory = None, False
        while p.count < count:
            at, _size = _everyday(p, at, count - p.count)
        plans.append(
            PlannedCustomer(index, tenant, p.count, story, contradictory, p.anchored, merges)
        )
        documents.extend((d["occurred_at"], d["event_id"], index, d) for d in p.documents)
    documents.sort(key=lambda item: (item[0], item[1]))
    return SyntheticLoad(
        [orjson.dumps(d) for _, _, _, d in documents], plans, [i for _, _, i, _ in documents]
    )


def skewed_lines(events: int, customers: int, seed: int = 1) -> list[bytes]:
    """The JSON lines of `skewed_load(events, customers, seed)`, in `occurred_at` order."""
    return skewed_load(events, customers, seed).lines
