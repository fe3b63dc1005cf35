"""Card numbers never enter the ledger: masked to the last four digits anywhere in an event."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import (
    Accepted,
    Rejected,
    decode_event,
    decode_lines,
    decode_trusted,
    encode_event,
)
from schemas.errors import InvalidEventError
from schemas.events import Event, FormSubmitted, OrderPlaced
from schemas.redaction import luhn_ok, mask_text, mask_value, may_hold_card
from tests.factories import raw

VISA = "4111111111111111"
MASKED_VISA = "************1111"


def _check_digit(body: str) -> str:
    """The digit that makes `body + digit` pass the Luhn check."""
    for digit in "0123456789":
        if luhn_ok(body + digit):
            return digit
    raise AssertionError("some digit always completes a Luhn number")


def _card(length: int, prefix: str = "4") -> str:
    body = (prefix + "1234567890" * 2)[: length - 1]
    return body + _check_digit(body)


def _decode(document: dict[str, Any]) -> Event:
    return decode_event(orjson.dumps(document))


# --- Luhn ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digits", [VISA, "79927398713", "5555555555554444", "378282246310005", "0", "00"]
)
def test_luhn_accepts_valid_numbers(digits: str) -> None:
    assert luhn_ok(digits)


@pytest.mark.parametrize(
    "digits", ["4111111111111112", "79927398710", "5555555555554445", "1234567812345678"]
)
def test_luhn_rejects_invalid_numbers(digits: str) -> None:
    assert not luhn_ok(digits)


def test_every_single_digit_error_breaks_luhn() -> None:
    for position in range(len(VISA)):
        for digit in "0123456789":
            if digit != VISA[position]:
                changed = VISA[:position] + digit + VISA[position + 1 :]
                assert not luhn_ok(changed), changed


# --- masking text -------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(13, 20))
@pytest.mark.parametrize("separator", ["", " ", "-"])
def test_cards_of_13_to_19_digits_are_masked_to_the_last_four(length: int, separator: str) -> None:
    card = _card(length)
    written = separator.join(card[i : i + 4] for i in range(0, length, 4))

    text, masked = mask_text(f"my card is {written}, thanks")

    assert masked
    assert card not in text
    assert written not in text
    assert text.startswith("my card is ")
    assert text.endswith(", thanks")
    assert re.sub(r"[^0-9]", "", text) == card[-4:]
    assert text.count("*") == length - 4
    assert len(text) == len(f"my card is {written}, thanks")


def test_a_card_with_uneven_grouping_is_masked() -> None:
    assert mask_text("4111-11 11 1111-111 1") == ("****-** ** ****-111 1", True)


@pytest.mark.parametrize(
    "text",
    [
        "call me on +44 7700 900123 or 07700 900123",
        "+1 212 555 0199",
        "booked for 2024-03-12 at 10:30, slot 2024-03-12T10:30:00+01:00",
        "order ORD-2024-000123 and invoice 20240312-0042",
        "reference 4111111111111112 does not pass Luhn",
        "twelve digits 411111111116 are too few",
        "79927398713 is Luhn-valid but short",
        "membership 1234 5678 9012 3456",
    ],
)
def test_text_without_a_card_number_is_untouched(text: str) -> None:
    assert mask_text(text) == (text, False)


def test_two_cards_in_one_text_are_both_masked() -> None:
    text, masked = mask_text(f"old {VISA} new 5555 5555 5555 4444")

    assert masked
    assert text == "old ************1111 new **** **** **** 4444"


def test_mask_value_reaches_strings_numbers_keys_and_nested_lists() -> None:
    value = {
        "a": [1, [f"x {VISA} y"], {"deep": [int(VISA)]}],
        VISA: "key",
        "float": float(VISA),
        "small": 42,
        "flag": True,
    }

    masked, changed = mask_value(value)

    assert changed
    assert masked == {
        "a": [1, [f"x {MASKED_VISA} y"], {"deep": [MASKED_VISA]}],
        MASKED_VISA: "key",
        "float": MASKED_VISA + ".0",
        "small": 42,
        "flag": True,
    }


# --- masking events -----------------------------------------------------------------------


def _assert_no_card(output: str | bytes, card: str = VISA) -> None:
    text = output.decode() if isinstance(output, bytes) else output
    assert card not in text
    grouped = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
    assert grouped not in text
    assert grouped.replace(" ", "-") not in text


@pytest.mark.parametrize(
    "document",
    [
        raw("form.submitted", {"form": "contact", "message": f"pay with {VISA} please"}),
        raw("form.submitted", {"form": "contact", "card_on_file": "4111 1111 1111 1111"}),
        raw("form.submitted", {"form": "contact", "notes": [["a", ["4111-1111-1111-1111"]]]}),
        raw("form.submitted", {"form": "contact", "pan": int(VISA)}),
        raw("form.submitted", {"form": "contact", "pan": float(VISA)}),
        raw("form.submitted", {"form": "contact", VISA: "as a key"}),
        raw("form.submitted", {"form": "contact"}, customer={"card_token": VISA}),
        raw(
            "form.submitted",
            {"form": "contact"},
            customer={"email": "sam@example.com", "customer_ref": f"ref-{VISA}"},
        ),
        raw("form.submitted", {"form": "contact"}, source={"actor": f"agent {VISA}"}),
        raw("chat.message", {"speaker": "customer", "text": f"card {VISA}"}),
        raw("message.sent", {"medium": "sms", "text": f"we charged {VISA}"}),
        raw("call.logged", {"direction": "inbound", "reason": f"card {VISA} declined"}),
    ],
)
def test_a_card_anywhere_in_an_event_is_masked_and_the_event_kept(
    document: dict[str, Any],
) -> None:
    event = _decode(document)

    assert event.redacted is True
    encoded = encode_event(event)
    _assert_no_card(encoded)
    _assert_no_card(repr(event))
    assert b"1111" in encoded
    assert decode_trusted(encoded) == event
    # Sent again, nothing is left to mask: `redacted` is the ledger's own, never the sender's.
    assert decode_event(encoded) == event.model_copy(update={"redacted": False})


def test_masked_event_keeps_its_other_fields() -> None:
    event = _decode(
        raw(
            "form.submitted",
            {"form": "contact", "message": f"card {VISA}", "requested_slot": "2024-03-12"},
            customer={"email": "sam@example.com", "phone": "+44 7700 900123"},
            event_id="card-1",
        )
    )

    assert event.event_id == "card-1"
    assert event.customer.phone == "+44 7700 900123"
    assert isinstance(event, FormSubmitted)
    assert event.payload.message == f"card {MASKED_VISA}"
    assert str(event.payload.requested_slot) == "2024-03-12"


def test_an_event_without_a_card_is_not_marked_redacted() -> None:
    event = _decode(
        raw(
            "order.placed",
            {"order_id": "ORD-2024-000123", "amount": "1299.00", "currency": "GBP"},
            customer={"phone": "+44 7700 900123", "order_id": "ORD-2024-000123"},
            when="2024-03-12T10:30:00+00:00",
        )
    )

    assert event.redacted is False
    assert isinstance(event, OrderPlaced)
    assert event.payload.order_id == "ORD-2024-000123"


def test_a_card_spelled_with_json_unicode_escapes_is_masked() -> None:
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in VISA)
    data = orjson.dumps(raw("form.submitted", {"form": "contact", "message": "CARD"}))
    data = data.replace(b"CARD", escaped.encode())
    assert VISA.encode() not in data

    event = decode_event(data)

    assert event.redacted is True
    _assert_no_card(encode_event(event))


def test_the_rejection_reason_of_an_invalid_event_never_holds_the_card() -> None:
    document = raw(
        "form.submitted",
        {"form": "contact", "message": f"card {VISA}"},
        when="2024-03-12T10:30:00",
    )
    document[f"note-{VISA}"] = "unknown field named by a card"
    document["customer"] = {"email": "sam@example.com", "phone": VISA}

    with pytest.raises(InvalidEventError) as caught:
        _decode(document)

    fields = {problem.field for problem in caught.value.problems}
    assert fields == {"occurred_at", f"note-{MASKED_VISA}", "customer.phone"}
    _assert_no_card(str(caught.value))


@pytest.mark.parametrize(
    "line",
    [
        orjson.dumps(raw("form.submitted", {"form": "contact"}, when=VISA)),
        orjson.dumps(raw("form.submitted", {"form": "c", "requested_slot": float(VISA)})),
        f'{{"event_id": "e1", "message": "{VISA}", '.encode(),
        json.dumps(raw("form.exploded", {"x": VISA}), ensure_ascii=True).encode(),
    ],
)
def test_rejected_lines_never_hold_the_card(line: bytes) -> None:
    (result,) = decode_lines([line])

    assert isinstance(result, Rejected)
    _assert_no_card(result.reason)


# --- the property -------------------------------------------------------------------------


@st.composite
def luhn_numbers(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    # A card network's issuer range: 2 to 6, or 1 for a 15-digit (UATP) number.
    first = draw(st.sampled_from("23456" + ("1" if length == 15 else "")))
    body = first + draw(st.text(alphabet="0123456789", min_size=length - 2, max_size=length - 2))
    return body + _check_digit(body)


@st.composite
def written_cards(draw: st.DrawFn) -> tuple[str, str]:
    """A Luhn-valid number and how it was written (one space or dash allowed between digits)."""
    digits = draw(luhn_numbers())
    separators = draw(st.lists(st.sampled_from(["", "", "", " ", "-"]), min_size=len(digits) - 1))
    written = digits[0] + "".join(sep + d for sep, d in zip(separators, digits[1:], strict=False))
    return digits, written


_FILLER = st.text(alphabet=st.characters(blacklist_categories=("Nd", "No", "Cs")), max_size=40).map(
    lambda text: text.strip(" -")
)


@settings(max_examples=300, deadline=None)
@given(card=written_cards(), before=_FILLER, after=_FILLER, where=st.integers(0, 3))
def test_no_generated_card_survives_anywhere(
    card: tuple[str, str], before: str, after: str, where: int
) -> None:
    digits, written = card
    text = f"{before} {written} {after}"
    payload: dict[str, Any] = {"form": "contact"}
    envelope: dict[str, Any] = {}
    if where == 0:
        payload["message"] = text
    elif where == 1:
        payload["extra"] = {"notes": [before, [text]]}
    elif where == 2:
        envelope["source"] = {"actor": text}
    else:
        envelope["customer"] = {"email": "sam@example.com", "card_token": text}
    document = raw("form.submitted", payload, **envelope)

    (accepted,) = decode_lines([orjson.dumps(document)])
    assert isinstance(accepted, Accepted)
    assert accepted.event.redacted is True
    for output in (encode_event(accepted.event).decode(), repr(accepted.event)):
        assert digits not in output
        assert written not in output
    if where == 0:
        assert isinstance(accepted.event, FormSubmitted)
        kept = accepted.event.payload.message or ""
        assert re.sub(r"[^0-9]", "", kept) == digits[-4:]

    bad = dict(document, occurred_at="2024-03-12 10:30", tenant=f"ACME {written}")
    (rejected,) = decode_lines([b"\n", orjson.dumps(bad)])
    assert isinstance(rejected, Rejected)
    assert rejected.line == 2
    assert "occurred_at" in rejected.reason
    assert digits not in rejected.reason
    assert written not in rejected.reason


_RUN_ALPHABET = st.sampled_from(
    [b"0", b"4", b"7", b"9", b" ", b"-", b".", b"/", b"_", b"x", b'"', b":"]
)


@given(st.lists(_RUN_ALPHABET, max_size=60).map(b"".join))
def test_the_quick_card_test_says_maybe_exactly_when_a_candidate_run_is_there(data: bytes) -> None:
    """`may_hold_card` scans runs first; it must agree with the plain candidate pattern."""
    plain = re.search(rb"\d(?:[ \-./_]{0,3}\d){12,}", data) is not None
    assert may_hold_card(data) is plain


def test_the_quick_card_test_finds_a_card_among_timestamps_and_ids() -> None:
    document = (
        b'{"at":"2024-03-12T10:30:00+00:00","id":"ord-1234-5678","card":"4111 1111-1111 1111"}'
    )
    assert may_hold_card(document)
    assert not may_hold_card(document.replace(b"4111 1111-1111 1111", b"tok_1111"))


FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
PERSIAN = str.maketrans("0123456789", "".join(chr(0x06F0 + d) for d in range(10)))


# --- issue 12: what people type, what is no card, what masking must never do --------------------


@pytest.mark.parametrize(
    "written",
    [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
        "4111\u202f1111\u202f1111\u202f1111",  # narrow no-break spaces
        "4111  1111  1111  1111",
        "4111 - 1111 - 1111 - 1111",
        "4111\u20131111\u20131111\u20131111",  # en dashes
        "4111\u200b1111\u200b1111\u200b1111",  # zero-width spaces
        VISA.translate(FULL_WIDTH),
        VISA.translate(ARABIC_INDIC),
        " ".join(VISA[i : i + 4] for i in range(0, 16, 4)).translate(PERSIAN),
    ],
)
def test_cards_written_as_people_type_them_are_masked(written: str) -> None:
    text, masked = mask_text(f"card: {written}.")

    assert masked
    assert text.startswith("card: ")
    assert text.count("*") == 12
    event = _decode(raw("form.submitted", {"form": "contact", "message": f"pay {written}"}))
    assert event.redacted
    assert written not in encode_event(event).decode()


@pytest.mark.parametrize(
    "text",
    [
        "001 310 555 0142",  # Luhn-valid, but an international call prefix
        _card(16, "00"),
        _card(16, "7"),  # Luhn-valid, no card network's range
        _card(16, "8"),
        _card(19, "9"),
        _card(16, "1"),  # 1 is UATP, at 15 digits only
    ],
)
def test_numbers_outside_the_card_networks_ranges_are_no_card(text: str) -> None:
    assert luhn_ok(re.sub(r"\D", "", text))
    assert mask_text(text) == (text, False)


def test_a_15_digit_uatp_number_is_a_card() -> None:
    card = _card(15, "1")
    assert mask_text(card) == ("*" * 11 + card[-4:], True)


def test_a_phone_number_that_passes_luhn_is_kept_and_the_event_accepted() -> None:
    event = _decode(
        raw("message.received", {"medium": "sms"}, customer={"phone": "001 310 555 0142"})
    )

    assert event.customer.phone == "001 310 555 0142"
    assert not event.redacted


@pytest.mark.parametrize(
    ("type_", "payload", "customer", "read"),
    [
        (
            "message.received",
            {"medium": "sms"},
            {"phone": "4111 1111 1111 1111"},
            lambda e: e.customer.phone,
        ),
        (
            "order.placed",
            {"order_id": "o-1", "amount": int(VISA)},
            None,
            lambda e: e.payload.amount,
        ),
        ("order.placed", {"order_id": "o-1", "amount": VISA}, None, lambda e: e.payload.amount),
        ("survey.responded", {"score": float(VISA)}, None, lambda e: e.payload.score),
    ],
)
def test_an_event_is_never_rejected_because_masking_changed_it(
    type_: str, payload: dict[str, Any], customer: dict[str, Any] | None, read: Any
) -> None:
    # Valid as sent; `****` no longer fits a phone number or an amount: the hidden digits are 0.
    event = _decode(raw(type_, payload, customer=customer))

    assert event.redacted
    assert "1111" in str(read(event))
    _assert_no_card(encode_event(event))


def test_a_producer_cannot_mark_an_event_redacted() -> None:
    document = raw("message.received", {"medium": "sms"}, redacted=True)

    assert decode_event(orjson.dumps(document)).redacted is False
    assert decode_event(orjson.dumps(document).replace(b"sms", b"\\u0073ms")).redacted is False


def test_a_card_in_exponent_form_is_masked() -> None:
    # 3.4e15 is 3400000000000000: a Luhn-valid number in a card network's range.
    data = orjson.dumps(raw("form.submitted", {"form": "contact"})).replace(
        b'"payload":{', b'"payload":{"n":3.4e15,'
    )
    event = decode_event(data)

    assert event.redacted
    assert b"3400000000000000" not in encode_event(event)


def _steps(text: str) -> int:
    """How many lines of `schemas/redaction.py` masking `text` executes: its cost, counted."""
    from schemas import redaction

    steps = 0

    def trace(frame: Any, event: str, _: Any) -> Any:
        nonlocal steps
        if frame.f_code.co_filename != redaction.__file__:
            return None
        if event == "line":
            steps += 1
        return trace

    sys.settrace(trace)
    try:
        mask_text(text)
    finally:
        sys.settrace(None)
    return steps


@pytest.mark.parametrize(
    "unit",
    ["1 ", "4 ", "12 ", "1-", "1  ", "4111 ", "\u0664 ", "0000000000001 ", "4111111111111111 "],
)
def test_masking_costs_at_most_linear_in_the_text(unit: str) -> None:
    small = _steps(unit * 400)
    large = _steps(unit * 800)
    assert small > 400
    assert large <= 2.1 * small


def test_the_reported_text_is_masked_in_milliseconds() -> None:
    started = time.perf_counter()
    mask_text("1 " * 800)
    assert time.perf_counter() - started < 1.0  # 8.6 s before the window of 19 digits


def test_every_digit_of_the_running_python_counts_as_a_digit() -> None:
    import sys

    from schemas.redaction import OTHER_DIGIT_RANGES, digit_value

    listed = {c for low, high in OTHER_DIGIT_RANGES for c in range(low, high + 1)}
    others = {
        c for c in range(0x80, sys.maxunicode + 1) if chr(c).isdigit() and not chr(c).isdecimal()
    }
    assert others == listed
    for code in sorted(others)[::7]:
        assert digit_value(chr(code)) >= 0
        assert mask_text(chr(code) * 2 + " 4111 1111 1111 1111")[1]


_NUMBERS_AND_TEXT = st.recursive(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(10**20), 10**20)
    | st.text(alphabet="0123456789 .-e/x", max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_NUMBERS_AND_TEXT, st.booleans())
def test_the_quick_card_test_never_says_no_where_masking_finds_a_card(
    value: Any, spaced: bool
) -> None:
    data = json.dumps(value, separators=(", ", ": ") if spaced else (",", ":")).encode()
    if not may_hold_card(data):
        assert mask_value(orjson.loads(data) if len(data) < 10**5 else value)[1] is False
