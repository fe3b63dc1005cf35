"""Card numbers never enter the ledger: find them anywhere and keep only the last four digits."""

from __future__ import annotations

import re
from typing import Any

_CANDIDATE = re.compile(r"\d(?:[ -]?\d){12,}")
_CANDIDATE_BYTES = re.compile(rb"\d(?:[ -]?\d){12,}")
# Any candidate lies inside a run like this; scanning for the run first is twice as fast.
_RUN_BYTES = re.compile(rb"\d[\d -]{12,}")
_GROUP = re.compile(r"\d+")
MIN_DIGITS, MAX_DIGITS = 13, 19


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check that card numbers carry."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_digits(text: str) -> str:
    remaining = sum(ch.isdigit() for ch in text)
    out = []
    for char in text:
        if char.isdigit():
            out.append(char if remaining <= 4 else "*")
            remaining -= 1
        else:
            out.append(char)
    return "".join(out)


def _card_spans(run: str) -> list[tuple[int, int]]:
    """Spans (within one candidate run) that hold a card number."""
    digits = re.sub(r"\D", "", run)
    if MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        return [(0, len(run))] if luhn_ok(digits) else []
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    if len(groups) < 2:
        return []  # one unbroken run of more than 19 digits is no card number
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        found = None
        for last in range(len(groups) - 1, first - 1, -1):
            start, end = groups[first][0], groups[last][1]
            count = sum(e - s for s, e in groups[first : last + 1])
            if MIN_DIGITS <= count <= MAX_DIGITS and luhn_ok(re.sub(r"\D", "", run[start:end])):
                found = (last, (start, end))
                break
        if found is None:
            first += 1
        else:
            spans.append(found[1])
            first = found[0] + 1
    return spans


def mask_text(text: str) -> tuple[str, bool]:
    """Mask every card number in `text`; also say whether anything was masked."""
    masked = False
    pieces: list[str] = []
    cursor = 0
    for match in _CANDIDATE.finditer(text):
        run = match.group()
        for start, end in _card_spans(run):
            pieces.append(text[cursor : match.start() + start])
            pieces.append(_mask_digits(run[start:end]))
            cursor = match.start() + end
            masked = True
    if not masked:
        return text, False
    pieces.append(text[cursor:])
    return "".join(pieces), True


def may_hold_card(raw: bytes) -> bool:
    """Cheap test on raw bytes: False means there is certainly no card number inside.

    A JSON string may spell digits as `\\u0034` escapes, so any escape counts as a maybe.
    """
    if b"\\u" in raw:
        return True
    return any(_CANDIDATE_BYTES.search(run.group()) for run in _RUN_BYTES.finditer(raw))


def mask_value(value: Any) -> tuple[Any, bool]:
    """Mask card numbers in a decoded JSON value (strings, numbers, keys), recursively."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bool):
        return value, False
    if isinstance(value, int) and abs(value) >= 10 ** (MIN_DIGITS - 1):
        text, masked = mask_text(str(value))
        return (text, True) if masked else (value, False)
    if isinstance(value, float) and abs(value) >= 10 ** (MIN_DIGITS - 1):
        # 4111111111111111.0 is written back with every digit; the masked string replaces it.
        text, masked = mask_text(repr(value))
        return (text, True) if masked else (value, False)
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key, key_masked = mask_value(key)
            new_item, item_masked = mask_value(item)
            out[new_key] = new_item
            changed = changed or key_masked or item_masked
        return out, changed
    if isinstance(value, list):
        items = [mask_value(item) for item in value]
        return [item for item, _ in items], any(masked for _, masked in items)
    return value, False
