"""Phases of the benchmark that need no broker: `journeys check`, the per-event fold cost, the
cost of reading the ledger's own events back (trusted reader and pydantic validation) and the
share of CPU that encrypting personal fields adds."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from journeys.bench.load import skewed_lines
from journeys.cli.check import check_lines
from projections.evaluation import Evaluation
from projections.ledger import Ledger
from projections.settings import FoldSettings
from schemas.codec import EVENT_ADAPTER, decode_event, encode_event
from schemas.events import Event
from schemas.trusted import read_event
from streams.crypto.fields import decrypt_personal, encrypt_personal
from streams.crypto.keys import DataKey, new_data_key

CHECK_EVENTS = 50_000
"""Events of the generated file `check_events_per_s` checks (the issue's size)."""

HOT_EVENTS = 10_000
"""Events the hot customer holds before its cost per event is measured."""

DECODE_EVENTS = 20_000
"""Events of the load read back by each decoder in `decode_rates`."""
CRYPTO_EVENTS = 10_000
"""Events of the generated load `encryption_share_of_event_cpu` is measured on."""


@dataclass(frozen=True, slots=True)
class CheckRate:
    """How fast `journeys check` folded a generated file."""

    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Events checked per second of wall time."""
        return self.events / max(self.seconds, 1e-9)


def check_rate(events: int = CHECK_EVENTS, seed: int = 1) -> CheckRate:
    """Time `check_lines` (decode, validate, fold, rules, views) over a generated file."""
    lines = skewed_lines(events, max(1, events // 5), seed)
    started = time.perf_counter()
    report = check_lines(lines, FoldSettings())
    seconds = time.perf_counter() - started
    return CheckRate(report.accepted, seconds)


def hot_events(lines: Sequence[bytes], email: str = "hot.customer@example.org") -> list[Event]:
    """The load's events all made one customer's: one shared e-mail, one tenant, new ids.

    Their references, memberships and phones are left out: many of them on one customer
    would be past the default identity limits, and the customer would not be one."""
    events = []
    for number, line in enumerate(lines):
        document = orjson.loads(line)
        customer = document["customer"]
        for kind in ("customer_ref", "membership_id", "phone"):
            customer.pop(kind, None)
        customer["email"] = email
        document["tenant"] = "hot-tenant"
        document["event_id"] = f"hot-{number}"
        events.append(decode_event(orjson.dumps(document)))
    return events


def _cost_per_event(
    ledger: Ledger,
    events: Sequence[Event],
    settings: FoldSettings,
    evaluations: dict[tuple[str, str], Evaluation],
) -> float:
    """CPU seconds per event of what the journey stage does per event: fold it, then evaluate
    the rules incrementally (`projections.evaluation`) and read what changed in the flags
    and the next deadline."""
    started = time.process_time()
    for event in events:
        change = ledger.add(event)
        if change is not None:
            key = (event.tenant, change.customer_id)
            evaluation = evaluations.get(key)
            if evaluation is None:
                evaluation = evaluations[key] = Evaluation(settings.rules)
            evaluation.sync(ledger.journeys[key].events)
            evaluation.changes(event.occurred_at)
            evaluation.deadline(event.occurred_at)
    return (time.process_time() - started) / max(len(events), 1)


def hot_customer_cost_ratio(hot: int = HOT_EVENTS, measured: int = 200, seed: int = 1) -> float:
    """CPU per event for a customer already holding `hot` events ÷ the same for fresh customers.

    The fold and the rules only (pure code, no Kafka or RocksDB), in one run; 1.0 means the
    cost does not grow with the customer. The hot customer's rules are walked over its `hot`
    events and read once before the clock starts, as the journey stage's cache of hot
    customers holds them.
    """
    settings = FoldSettings()
    lines = skewed_lines(hot + measured, max(1, (hot + measured) // 5), seed)
    # the load's first events: customers seen for the first time or a few times
    early = [decode_event(line) for line in lines[: measured * 10]]
    fresh = _cost_per_event(Ledger(settings), early, settings, {})
    events = hot_events(lines)
    ledger = Ledger(settings)
    ledger.add_all(events[:hot])
    evaluations = {}
    for key, journey in ledger.journeys.items():
        evaluations[key] = Evaluation(settings.rules)
        evaluations[key].sync(journey.events)
        # read once, as the stage read it when it cached it: the clock sees what changes
        evaluations[key].changes(journey.events[-1].occurred_at)
    return _cost_per_event(ledger, events[hot:], settings, evaluations) / max(fresh, 1e-12)


@dataclass(frozen=True, slots=True)
class DecodeRates:
    """Events per CPU second of reading the ledger's own bytes back, by each decoder."""

    trusted_events_per_s: float
    """`schemas.trusted.read_event`: pydantic-core without the door's checks again."""
    pydantic_events_per_s: float
    """`EVENT_ADAPTER.validate_json`: full validation, what `decode_trusted` did before."""


def decode_rates(events: int = DECODE_EVENTS, seed: int = 1, repeat: int = 3) -> DecodeRates:
    """Read the load's events, as `encode_event` wrote them, with each decoder; CPU time.

    The decoders take turns `repeat` times and each keeps its best run: on a shared machine the
    least disturbed run is the closest to its cost. Decoded events are kept until the run ends,
    as replay keeps them, with the collector paused as replay pauses it.
    """
    lines = skewed_lines(events, max(1, events // 5), seed)
    raws = [encode_event(decode_event(line)) for line in lines]
    decoders: dict[str, Callable[[bytes], Event]] = {
        "trusted": read_event,
        "pydantic": EVENT_ADAPTER.validate_json,
    }
    best = dict.fromkeys(decoders, float("inf"))
    for _ in range(repeat):
        for name, decode in decoders.items():
            best[name] = min(best[name], _decode_seconds(decode, raws))
    return DecodeRates(
        trusted_events_per_s=len(raws) / max(best["trusted"], 1e-9),
        pydantic_events_per_s=len(raws) / max(best["pydantic"], 1e-9),
    )


def _decode_seconds(decode: Callable[[bytes], Event], raws: Sequence[bytes]) -> float:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        decoded = [decode(raw) for raw in raws]
        seconds = time.process_time() - started
    finally:
        if enabled:
            gc.enable()
    del decoded
    return seconds


@dataclass(frozen=True, slots=True)
class EncryptionCost:
    """CPU seconds to encrypt and decrypt the personal fields of a load, and to check it."""

    events: int
    crypto_s: float
    check_s: float

    @property
    def share(self) -> float:
        """Encryption's share of the CPU per event: crypto ÷ (check + crypto); target < 0.15."""
        return self.crypto_s / max(self.check_s + self.crypto_s, 1e-12)


def encryption_cost(events: int = CRYPTO_EVENTS, seed: int = 1) -> EncryptionCost:
    """Time, in one run, encrypt + decrypt of each event's personal fields (one data key per
    customer, AES-GCM) and `check_lines` (decode, validate, fold, rules, views) of the same load.

    The fold stands for the pipeline's work per event. This is the AES-GCM work alone: sealing
    as wired at ingest (`streams.crypto.sealing`) also parses and re-serialises each event and
    makes a key ring per new customer (README, "Privacy": about 19% of the stages' CPU).
    """
    lines = skewed_lines(events, max(1, events // 5), seed)
    documents = [orjson.loads(line) for line in lines]
    keys: dict[bytes, DataKey] = {}
    for document in documents:
        owner = orjson.dumps([document["tenant"], document["customer"]])
        keys.setdefault(owner, new_data_key())
    owners = [keys[orjson.dumps([d["tenant"], d["customer"]])] for d in documents]
    started = time.process_time()
    for document, key in zip(documents, owners, strict=True):
        sealed = encrypt_personal(document, key.key, key.key_id)
        decrypt_personal(sealed, {key.key_id: key.key})
    crypto_s = time.process_time() - started
    started = time.process_time()
    report = check_lines(lines, FoldSettings())
    check_s = time.process_time() - started
    return EncryptionCost(report.accepted, crypto_s, check_s)


EMAIL_ADDRESSES = 20_000
"""Distinct addresses `email_check_cost` validates."""


@dataclass(frozen=True, slots=True)
class EmailCheckCost:
    """CPU cost of judging e-mail addresses (junk never links), per distinct address."""

    addresses: int
    validator_s: float
    """`email_validator.validate_email` alone (syntax only, no DNS)."""
    problem_s: float
    """`email_problem`: placeholders, then the validator."""
    normalise_s: float
    """`normalise("email", …)` uncached: lower-casing and trimming, then `email_problem`."""

    def per_address_us(self, seconds: float) -> float:
        """Microseconds of CPU per address."""
        return seconds / max(self.addresses, 1) * 1e6


def email_check_cost(addresses: int = EMAIL_ADDRESSES, repeat: int = 3) -> EmailCheckCost:
    """The least CPU time of `repeat` runs over distinct plausible addresses (the normalise
    cache cleared before each run: a customer's address seen again costs a cache hit only)."""
    import email_validator  # only this phase needs it directly

    from projections.identifiers import email_problem, normalise

    values = [f"customer.{n}@garage-{n % 97}.co.uk" for n in range(addresses)]

    def best(run: Callable[[str], object]) -> float:
        times = []
        for _ in range(repeat):
            normalise.cache_clear()
            started = time.process_time()
            for value in values:
                run(value)
            times.append(time.process_time() - started)
        return min(times)

    return EmailCheckCost(
        addresses,
        best(lambda v: email_validator.validate_email(v, check_deliverability=False)),
        best(email_problem),
        best(lambda v: normalise("email", v)),
    )


SHARED_EVENTS = 2_000
"""Customers (one event each) sharing one phone in `shared_value_check_rate`."""


def shared_value_lines(customers: int = SHARED_EVENTS) -> list[bytes]:
    """Customers each with an e-mail of their own, all giving one shop's switchboard number:
    one component over the e-mail limit, settled as it grows (the case that was quadratic)."""
    return [
        orjson.dumps(
            {
                "event_id": f"shared-{n}",
                "type": "form.submitted",
                "occurred_at": f"2024-03-11T{8 + n // 3600 % 12:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
                "tenant": "shop",
                "source": {"system": "shop"},
                "customer": {"email": f"customer.{n}@example.org", "phone": "+44 113 496 0000"},
                "payload": {"form": "contact"},
            }
        )
        for n in range(customers)
    ]


def shared_value_check_rate(customers: int = SHARED_EVENTS) -> float:
    """Events per CPU second of `journeys check` over `shared_value_lines` (default limits)."""
    lines = shared_value_lines(customers)
    started = time.process_time()
    report = check_lines(lines, FoldSettings())
    return report.accepted / max(time.process_time() - started, 1e-9)
