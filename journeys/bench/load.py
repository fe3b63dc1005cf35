"""The benchmark's skewed load: many customers, heavy-tailed events per customer.

Many customers with a heavy-tailed number of events each (most have a few, some hundreds),
spread over several tenants. Customers with room for one play a story that uses the whole
type catalogue across systems that share no keys (chat, booking, SMS, web shop, card
processor, roadside partner, recalls, inbox); a share of the stories is contradictory and
fires a rule. Identifiers are written the way each system writes them (phones national or
international, plates with spaces or dashes, e-mails in odd case), and most customers can
only be stitched transitively; some arrive in an order that creates two journeys first and
merges them later. The output is sorted by `occurred_at` and depends only on the arguments.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from journeys.bench.stories import STORY_PLAYS, Person

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


def _known(p: Person) -> dict[str, str]:
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


def everyday(p: Person, at: datetime, budget: int) -> tuple[datetime, int]:
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


def merge_insert(p: Person, start: int) -> bool:
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
    tenants: Sequence[str] = BENCH_TENANTS,
) -> SyntheticLoad:
    """`events` events of `customers` customers, heavy-tailed, deterministic for the arguments.

    A customer with enough events plays one story (`STORIES`), contradictory with probability
    `contradictory_share`; `anchored_share` of customers carry an account number on every
    event (no stitching needed); of the others, `merge_share` first appear as two journeys
    that a later event merges. Customers are spread evenly over `tenants`. The rest of each customer's events are everyday exchanges
    (surveys, newsletters, answered questions, small orders) spread over the following weeks.
    """
    rng = random.Random(seed)
    counts = event_counts(events, customers, rng, skew)
    plans: list[PlannedCustomer] = []
    documents: list[tuple[str, str, int, dict[str, Any]]] = []
    stories = list(STORY_PLAYS)
    for index, count in enumerate(counts):
        tenant = tenants[index % len(tenants)]
        p = Person(index, tenant, rng, seed)
        p.anchored = rng.random() < anchored_share
        at = _BASE + timedelta(seconds=rng.randrange(_SPAN_DAYS * 86_400))
        chosen = rng.choices(stories, _STORY_WEIGHTS)[0]
        play, longest = STORY_PLAYS[chosen]
        contradictory = rng.random() < contradictory_share
        merges = False
        story: str | None = chosen
        if count >= longest + 1:
            play(p, at, contradictory)
            if not p.anchored and rng.random() < merge_share:
                merges = merge_insert(p, 0)
            at = max(datetime.fromisoformat(d["occurred_at"]) for d in p.documents)
            at += timedelta(minutes=rng.randrange(30, 12 * 60))
        else:
            story, contradictory = None, False
        while p.count < count:
            at, _size = everyday(p, at, count - p.count)
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
