"""Fuzzing kept in the suite: the decoder and the stages' batch functions on arbitrary input.

Properties: nothing but the documented rejection is ever raised (the stages raise nothing at
all: a record they cannot take goes to dead letters); no card number (13 to 19 digits in a card
network's range that pass Luhn, written in any way the masking documents) survives into what
is stored, dead-lettered or rendered; the cost grows at most linearly with the input.

A fixed budget, derandomised: the same examples on every run, a few seconds each.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from journeys.cli.check import check_lines, render_report, report_to_dict
from projections.settings import FoldSettings
from schemas.codec import decode_event, decode_trusted, encode_event
from schemas.errors import InvalidEventError
from schemas.redaction import _SEPARATORS
from streams.kafka.records import InRecord, OutRecord, _unescaped
from streams.stages.ingest import ingest
from streams.stages.journey.stage import JourneyCache, process_events
from streams.stages.validate import validate
from tests.factories import raw

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = datetime(2026, 11, 22, tzinfo=UTC)
SEPARATORS = frozenset(_SEPARATORS)


# --- an oracle: the documented rule, written the slow and obvious way --------------------------


def _luhn(digits: list[int]) -> bool:
    total = 0
    for position, value in enumerate(reversed(digits)):
        if position % 2:
            value = value * 2 - 9 if value * 2 > 9 else value * 2
        total += value
    return total % 10 == 0


def cards_in(text: str) -> list[str]:
    """Every card number in `text` by the documented rule: all pairs of digit groups."""
    groups: list[tuple[int, int, int]] = []  # start, end, run
    run, last_end, at = -1, -1, 0
    while at < len(text):
        if not text[at].isdigit():
            at += 1
            continue
        end = at
        while end < len(text) and text[end].isdigit():
            end += 1
        gap = text[last_end:at]
        joined = last_end >= 0 and 1 <= len(gap) <= 3 and all(c in SEPARATORS for c in gap)
        run = run if joined else run + 1
        groups.append((at, end, run))
        last_end, at = end, end
    found = []
    for first, (start, _, run_of_first) in enumerate(groups):
        for _, end, run_of_last in groups[first:]:
            if run_of_last != run_of_first:
                break
            digits = [unicodedata.digit(c) for c in text[start:end] if c.isdigit()]
            if len(digits) > 19:
                break
            issuer = 2 <= digits[0] <= 6 or (digits[0] == 1 and len(digits) == 15)
            if len(digits) >= 13 and issuer and _luhn(digits):
                found.append(text[start:end])
    return found


def strings_in(value: Any) -> Iterator[str]:
    """Every string and number of a decoded JSON value, keys too (no recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            yield item
        elif isinstance(item, int | float) and not isinstance(item, bool):
            yield repr(item)


def assert_no_card(data: bytes | str) -> None:
    """No card in the text, in any string it holds as JSON, or in any JSON string those hold."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    pending = [text]
    seen = 0
    while pending and seen < 50:
        text = pending.pop()
        seen += 1
        for form in {text, _unescaped(text)}:
            assert not cards_in(form), (cards_in(form), form[:300])
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(document, dict | list):
            pending.extend(strings_in(document))
        else:
            pending.extend(strings_in([document]))


# --- what to throw at them ----------------------------------------------------------------------

DIGITS = {
    "ascii": "0123456789",
    "full-width": "".join(chr(0xFF10 + d) for d in range(10)),
    "arabic-indic": "".join(chr(0x0660 + d) for d in range(10)),
    "devanagari": "".join(chr(0x0966 + d) for d in range(10)),
}


@st.composite
def cards(draw: st.DrawFn) -> str:
    """A card number as somebody might write it."""
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from("23456" + ("1" if length == 15 else "")))
    rest = draw(st.lists(st.integers(0, 9), min_size=length - 2, max_size=length - 2))
    body = [int(first), *rest]
    check = next(d for d in range(10) if _luhn([*body, d]))
    digits = [*body, check]
    script = DIGITS[draw(st.sampled_from(sorted(DIGITS)))]
    separators = draw(
        st.lists(
            st.sampled_from(["", "", "", " ", "-", ".", "/", "  ", "\u00a0", "\u2013", " - "]),
            min_size=length - 1,
            max_size=length - 1,
        )
    )
    text = script[digits[0]]
    for separator, digit in zip(separators, digits[1:], strict=True):
        text += separator + script[digit]
    return text


TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789 -./\u00a0x", max_size=60),
    cards(),
    st.builds(lambda a, c, b: f"{a}{c}{b}", st.text(max_size=10), cards(), st.text(max_size=10)),
    st.sampled_from(["001 310 555 0142", "+44 7700 900123", "2024-03-12T10:30:00Z", "1 " * 40]),
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=10**12, max_value=10**19),
    st.floats(allow_nan=False, allow_infinity=False),
    cards().filter(lambda c: c.isascii() and c.isdigit()).map(int),
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)
MOMENTS = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:00:00+00:00",
            "2999-12-31T23:00:00+00:00",
            "0001-01-01T00:00:00+01:00",
            "1970-01-01T00:00:00Z",
            "2024-03-12T10:30:00Z",
        ]
    ),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.text(max_size=30),
)
FIELDS = ["payload.note", "payload.extra", "customer.phone", "customer.customer_ref", "event_id"]


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """An event with something arbitrary in one place, or arbitrary JSON, or arbitrary bytes."""
    kind = draw(st.sampled_from(["event", "event", "event", "json", "bytes", "deep", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    ascii_only = draw(st.booleans())  # non-ASCII characters as `\u` escapes, or as they are
    if kind == "json":
        return json.dumps(draw(JSON), ensure_ascii=ascii_only).encode()
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        leaf = json.dumps(draw(TEXT)).encode()
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"k":', b"}")]))
        inner = opener * depth + leaf + closer * depth
        base = orjson.dumps(raw("message.received", {"medium": "sms", "x": 0}))
        return base.replace(b'"x":0', b'"x":' + inner)
    document = raw(
        draw(st.sampled_from(["message.received", "order.placed", "form.submitted"])),
        {"medium": "sms", "order_id": "o-1", "form": "contact"},
        when=draw(MOMENTS),
        event_id=draw(st.sampled_from(["e1", "e2", "e3"])),
        redacted=draw(st.booleans()),
    )
    if document["type"] != "message.received":
        del document["payload"]["medium"]
    if document["type"] != "order.placed":
        del document["payload"]["order_id"]
    if document["type"] != "form.submitted":
        del document["payload"]["form"]
    section, _, field = draw(st.sampled_from(FIELDS)).rpartition(".")
    target = document[section] if section else document
    target[field] = draw(JSON)
    data = json.dumps(document, ensure_ascii=ascii_only).encode()
    if kind == "mutated" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.binary(max_size=4)) + data[at + draw(st.integers(0, 3)) :]
    if draw(st.booleans()):  # spell some digits as JSON escapes
        data = data.replace(b"41", b"\\u00341")
    return data


# --- the decoder ---------------------------------------------------------------------------------


@FUZZ
@given(documents())
def test_the_decoder_rejects_or_accepts_and_keeps_no_card(data: bytes) -> None:
    try:
        event = decode_event(data)
    except InvalidEventError as exc:
        assert_no_card(str(exc))  # reasons are masked too
        return
    encoded = encode_event(event)
    assert_no_card(encoded)
    assert_no_card(repr(event))
    assert decode_trusted(encoded) == event


@FUZZ
@given(st.binary(max_size=400))
def test_the_decoder_takes_any_bytes(data: bytes) -> None:
    with contextlib.suppress(InvalidEventError):
        decode_event(data)


# --- the stages ----------------------------------------------------------------------------------


class DictState:
    """A batch's state without RocksDB: what `BatchState` offers the stages."""

    def __init__(self) -> None:
        self.partition = 0
        self.changes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.changes.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self.changes[key] = None


KEYS = st.one_of(st.sampled_from([b"acme", b"other", b""]), st.none(), st.binary(max_size=20))


def assert_outputs_hold_no_card(outs: list[OutRecord]) -> None:
    for out in outs:
        assert_no_card(out.key)
        assert_no_card(out.value or b"")


@settings(FUZZ, max_examples=100)
@given(st.lists(st.tuples(KEYS, documents()), max_size=6))
def test_the_stages_take_any_records_and_keep_no_card(batch: list[tuple[bytes, bytes]]) -> None:
    settings_ = FoldSettings()
    records = [
        InRecord("touchpoints", 0, offset, key, value) for offset, (key, value) in enumerate(batch)
    ]
    door = validate(records)
    assert_outputs_hold_no_card(door)
    assert {o.destination for o in door} <= {"validated", "dead_letters"}
    accepted = [
        InRecord("validated", 0, offset, out.key, out.value, 0, out.headers)
        for offset, out in enumerate(o for o in door if o.destination == "validated")
    ]
    touchpoints = DictState()
    outs = ingest(touchpoints, accepted, settings_)  # type: ignore[arg-type]
    assert_outputs_hold_no_card(outs)
    assert {o.destination for o in outs} <= {"events", "dead_letters", "validated"}
    # on the validated topic, only notices of its own dead letters (for erasure to find them)
    assert all(
        o.headers == (("kind", b"dead_letter"),) for o in outs if o.destination == "validated"
    )
    for value in touchpoints.changes.values():
        assert_no_card(value or b"")

    # The journey stage on what ingest emitted: no card stored, flagged or dead-lettered.
    events = [
        InRecord("events", 0, offset, out.key, out.value, 0, out.headers)
        for offset, out in enumerate(o for o in outs if o.destination == "events")
    ]
    journeys = DictState()
    stage_outs = process_events(journeys, JourneyCache(), events, NOW, settings_)  # type: ignore[arg-type]
    assert_outputs_hold_no_card(stage_outs)
    for value in journeys.changes.values():
        assert_no_card(value or b"")
    # And on anything at all under the same headers (the events topic is the ledger's own, so
    # what it holds is read as trusted: only "nothing raised" is asserted).
    headers = [(("kind", b"event"), ("customer_id", b"cus_1")), (("kind", b"merge"),)]
    garbage = [
        InRecord("events", 0, offset, key, value, 0, headers[offset % 2])
        for offset, (key, value) in enumerate(batch)
    ]
    process_events(DictState(), JourneyCache(), garbage, NOW, settings_)  # type: ignore[arg-type]


@settings(FUZZ, max_examples=60)
@given(st.lists(documents(), max_size=6))
def test_check_reports_any_lines_and_renders_no_card(lines: list[bytes]) -> None:
    report = check_lines(lines, FoldSettings())
    assert_no_card(orjson.dumps(report_to_dict(report)))
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_report(console, report)
    assert_no_card(console.file.getvalue())  # type: ignore[attr-defined]


# --- linear cost -----------------------------------------------------------------------------


def _best_time(action: Callable[[], object], repeat: int = 5) -> float:
    """The least CPU time of a few runs (CPU time: other processes on the machine do not count)."""
    best = float("inf")
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            started = time.process_time()
            action()
            best = min(best, time.process_time() - started)
    finally:
        if collecting:
            gc.enable()
    return best


def _family(name: str, size: int) -> bytes:
    """Inputs that made the old code super-linear (or might make new code so), `size` units."""
    base = orjson.dumps(raw("message.received", {"medium": "sms", "x": 0}))
    if name == "open brackets":
        return b"[" * (10_000 * size)
    unit = {
        "digit groups": "1 " * 4_000,  # each text under the 10,000-character limit
        "dotted digits": "1." * 4_000,
        "brackets in strings": "[{" * 4_000,
        "escaped quotes": '"[' * 4_000,
        "escaped digits": "4" * 2_000,  # written as \u0034 below
        "long text": "1 " * 8_000,  # over the limit: refused before masking
    }[name]
    data = json.dumps([unit] * size).encode()
    if name == "escaped digits":
        data = data.replace(b"4", b"\\u0034")
    return base.replace(b'"x":0', b'"x":' + data)


def _decode_quietly(data: bytes) -> None:
    with contextlib.suppress(InvalidEventError):
        decode_event(data)


def _ratio(action: Callable[[bytes], object], small: bytes, large: bytes) -> float:
    """How much longer `action` takes on `large` than on `small` (the best of three tries)."""
    ratios = []
    for _ in range(3):
        ratio = _best_time(partial(action, large)) / max(_best_time(partial(action, small)), 1e-3)
        if ratio < 3.2:
            return ratio
        ratios.append(ratio)
    return min(ratios)


def test_the_decoder_costs_at_most_linear_in_its_input() -> None:
    families = [
        "digit groups",
        "dotted digits",
        "brackets in strings",
        "escaped quotes",
        "escaped digits",
        "long text",
        "open brackets",
    ]
    for name in families:
        small, large = _family(name, 4), _family(name, 8)
        assert len(large) < 300_000
        # Linear gives 2; quadratic 4, cubic 8. Generous, for a shared machine.
        assert _ratio(_decode_quietly, small, large) < 3.2, name


def test_the_door_and_ingest_cost_at_most_linear_in_their_input() -> None:
    def run(value: bytes) -> None:
        for out in validate([InRecord("touchpoints", 0, 0, b"acme", value)]):
            if out.destination == "validated":
                record = InRecord("validated", 0, 0, out.key, out.value, 0, out.headers)
                ingest(DictState(), [record], FoldSettings())  # type: ignore[arg-type]

    small, large = _family("dotted digits", 4), _family("dotted digits", 8)
    assert _ratio(run, small, large) < 3.2
