"""The stories a synthetic customer of the skewed load plays, and the customer who plays them.

Each story uses part of the type catalogue across systems that share no keys (chat, booking,
SMS, web shop, card processor, roadside partner, recalls, inbox); a contradictory one fires a
rule. Identifiers are written the way each system writes them (phones national or
international, plates with spaces or dashes, e-mails in odd case).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

FIRST_NAMES = ("Priya", "Tom", "Grace", "Marek", "Aisha", "Ben", "Chloe", "Omar", "Lena", "Kofi")
"""First names customers are given."""

LAST_NAMES = ("Shah", "Becker", "Okafor", "Nowak", "Khan", "Hughes", "Martin", "Haddad", "Berg")
"""Last names customers are given."""

SITES = ("leeds", "york", "hull", "bradford", "sheffield")
"""Sites (dealers, stores) customers use."""

SKUS = ("LAPTOP-14-PRO", "PHONE-X2", "HEADSET-7", "DOCK-USB4", "MONITOR-27", "TABLET-S")
"""Products the web shop sells."""


class Person:
    """One customer's identifiers as the different systems write them, and their events."""

    def __init__(self, index: int, tenant: str, rng: random.Random, seed: int) -> None:
        self.index = index
        self.tenant = tenant
        self.rng = rng
        self.seed = seed
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
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
        self.site = rng.choice(SITES)
        self.count = 0
        self.orders = 0
        self.documents: list[dict[str, Any]] = []
        self.anchored = False

    def phone(self) -> str:
        """The phone number, written one of the ways systems write it."""
        d = self.phone_digits
        return self.rng.choice((f"+44 {d[:4]} {d[4:]}", f"0{d[:4]} {d[4:]}", f"0{d}"))

    def plate_as_written(self) -> str:
        """The plate, written one of the ways systems write it."""
        compact = self.plate.replace(" ", "")
        return self.rng.choice((self.plate, compact, compact.lower(), self.plate.replace(" ", "-")))

    def email_as_written(self) -> str:
        """The e-mail address, written one of the ways people type it."""
        return self.rng.choice((self.email, self.email.title(), f" {self.email}"))

    def order_id(self) -> str:
        """A new order id of this customer."""
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


def _story_service(p: Person, at: datetime, contradictory: bool) -> None:
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


def _story_orders(p: Person, at: datetime, contradictory: bool) -> None:
    # A checkout that errors, an order, its card authorisation; contradictory: the customer
    # orders again, both are authorised, both cancelled, and both authorisations stand.
    minute = timedelta(minutes=1)
    sku = p.rng.choice(SKUS)
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


def _story_roadside(p: Person, at: datetime, contradictory: bool) -> None:
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


def _story_recall(p: Person, at: datetime, contradictory: bool) -> None:
    # Head office notifies a recall by VIN; the service centre cannot see it (contradictory:
    # it finds it two days later, once the customer has chased head office, and the customer
    # scores the visit 3/10). Both branches write five events and draw the same randomness.
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
    if contradictory:
        _recall_unseen_then_scored(p, at)
        return
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
        {"recall_code": "RC-2026-014", "found": True},
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


def _recall_unseen_then_scored(p: Person, at: datetime) -> None:
    # RECALL_NOT_VISIBLE, resolved after two days; then LOW_SCORE_AFTER_FLAGS on the 3/10.
    for days, found in ((7, False), (9, True)):
        p.add(
            at + timedelta(days=days, hours=1),
            "recall.lookup",
            "service-centre",
            "in_person",
            {"vin": p.vin.lower()},
            {"recall_code": "RC-2026-014", "found": found},
            site=p.site,
        )
    p.add(
        at + timedelta(days=10),
        "survey.responded",
        "survey-tool",
        "email",
        {"email": p.email, "vin": p.vin},
        {"score": 3, "scale": 10, "comment": "I had to chase the recall myself."},
    )


def _story_enquiry(p: Person, at: datetime, contradictory: bool) -> None:
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


def _story_ask(p: Person, at: datetime, contradictory: bool) -> None:
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


STORY_PLAYS = {
    "service": (_story_service, 7),
    "orders": (_story_orders, 9),
    "roadside": (_story_roadside, 5),
    "recall": (_story_recall, 5),
    "enquiry": (_story_enquiry, 4),
    "ask": (_story_ask, 3),
}
"""Each story and the most events it writes (a customer plays one only with that many)."""
