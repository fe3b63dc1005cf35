"""Card numbers never enter the ledger: find them anywhere and keep only the last four digits.

What counts as a card number (README, "Card numbers never enter the system"):

- 13 to 19 digits, any Unicode digit (ASCII, full-width, Arabic-Indic, ...), in groups
  separated by up to three separator characters: spaces (also no-break and thin spaces),
  dashes and hyphens, `.`, `/`, `_` and zero-width characters;
- a card starts and ends at the edges of digit groups (a card is never cut out of a longer
  unbroken number);
- the first digit is an issuer range of the card networks: 2 to 6, or 1 for a 15-digit UATP
  number (a number starting with 0 is a phone number or a reference, never a card);
- the digits pass the Luhn check.

Detection is linear in the text: from each group start, a window of at most 19 digits.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from typing import Any

MIN_DIGITS, MAX_DIGITS = 13, 19
MAX_GAP = 3
"""The most separator characters between two digit groups of one card number."""

# Python's `\d` is any decimal digit (full-width, Arabic-Indic, ...); `str.isdigit` also holds
# for these, superscript and circled digits and the like, which carry a digit value too (as of
# Unicode 14, Python 3.11; a test checks the list against the running Python).
OTHER_DIGIT_RANGES = (
    (0x00B2, 0x00B3), (0x00B9, 0x00B9), (0x1369, 0x1371), (0x19DA, 0x19DA), (0x2070, 0x2070),
    (0x2074, 0x2079), (0x2080, 0x2089), (0x2460, 0x2468), (0x2474, 0x247C), (0x2488, 0x2490),
    (0x24EA, 0x24EA), (0x24F5, 0x24FD), (0x24FF, 0x24FF), (0x2776, 0x277E), (0x2780, 0x2788),
    (0x278A, 0x2792), (0x10A40, 0x10A43), (0x10E60, 0x10E68), (0x11052, 0x1105A),
    (0x1F100, 0x1F10A),
)  # fmt: skip
_OTHER_DIGITS = "".join(f"{chr(low)}-{chr(high)}" for low, high in OTHER_DIGIT_RANGES)
_SEPARATORS = (
    " \t-./_"
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"  # spaces, no-break ones included
    "\u200b\u200c\u200d\u2060\ufeff"  # zero-width characters
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"  # hyphens, dashes, minus
    "\uff0e\uff0f\uff3f"  # full-width . / _
)
_D = "[\\d" + _OTHER_DIGITS + "]"
_S = "[" + re.escape(_SEPARATORS) + "]"
_RUN = re.compile(f"{_D}+(?:{_S}{{1,{MAX_GAP}}}{_D}+)*")
_GROUP = re.compile(f"{_D}+")
_DIGIT = re.compile(_D)

# The quick test on raw JSON bytes (ASCII only; anything else is decoded and scanned as text).
# Inside a JSON string a separator may be escaped (`\t`, `\/`); `\u` escapes can spell anything.
_RUN_BYTES = re.compile(rb"[0-9]+(?:(?:[ \-./_]|\\[t/]){1,3}[0-9]+)*")
# Any such run of 13 digits or more lies inside a stretch like this: finding those first is
# several times faster on events with many short numbers (dates, ids).
# Also a digit followed by an exponent, in one pass: a number in exponent form stands for more
# digits than it shows (`3.4e15` is 3400000000000000). Whether it is a JSON number (not text
# such as an id `3f2e4`) is checked only where one is found.
_SCAN_BYTES = re.compile(rb"[0-9](?:[0-9 \-./_\\t]{12,}|[eE][-+]?[0-9])")
_EXPONENT_BYTES = re.compile(rb"[:,\[]\s*-?[0-9]+(?:\.[0-9]+)?[eE]")  # a JSON number


def digit_value(char: str) -> int:
    """The value of a digit character (any script); -1 for anything else."""
    value = ord(char) - 48
    if 0 <= value <= 9:
        return value
    return unicodedata.digit(char, -1)


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check that card numbers carry."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = digit_value(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def issuer_ok(first: int, length: int) -> bool:
    """Whether a number of `length` digits starting with `first` is in a card network's range."""
    return 2 <= first <= 6 or (first == 1 and length == 15)


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
"""A digit doubled as Luhn doubles it (the digits of the product summed)."""


def _card_digits(run: str) -> list[tuple[int, int]]:
    """Spans, as (first, end) digit indices within `run`'s digits, that hold a card number.

    Spans may share the four digits one keeps: those may start another card.
    """
    groups = _GROUP.findall(run)
    digits = "".join(groups)
    if len(digits) < MIN_DIGITS:
        return []
    if digits.isascii():
        values = [byte - 48 for byte in digits.encode()]
    else:
        values = [digit_value(char) for char in digits]
    starts: list[int] = []  # digit index where each group starts
    ends: list[int] = []
    group_of: list[int] = []  # group index of each digit
    for number, group in enumerate(groups):
        starts.append(len(group_of))
        group_of.extend([number] * len(group))
        ends.append(len(group_of))
    # Luhn sums of any window in O(1): prefix sums with the digits at even indices as they are
    # and those at odd ones doubled (`even`), and the other way round (`odd`). In a window, the
    # digits with its last digit's parity count as they are, the others doubled.
    even, odd = [0], [0]
    for index, value in enumerate(values):
        twice = _DOUBLED[value]
        if index & 1:
            even.append(even[-1] + twice)
            odd.append(odd[-1] + value)
        else:
            even.append(even[-1] + value)
            odd.append(odd[-1] + twice)

    def luhn(first: int, end: int) -> bool:
        sums = odd if (end - 1) & 1 else even
        return (sums[end] - sums[first]) % 10 == 0

    spans: list[tuple[int, int]] = []
    next_group = 0
    first: int | None = None
    while True:
        if first is None:
            if next_group >= len(starts):
                return spans
            first = starts[next_group]
            next_group += 1
        best = None
        issuer = values[first]
        if 2 <= issuer <= 6:  # the longest window of 13 to 19 digits ending at a group's end
            low = bisect_left(ends, first + MIN_DIGITS)
            for group in range(bisect_right(ends, first + MAX_DIGITS) - 1, low - 1, -1):
                if luhn(first, ends[group]):
                    best = ends[group]
                    break
        elif issuer == 1:  # UATP: 15 digits
            group = bisect_left(ends, first + 15)
            if group < len(ends) and ends[group] == first + 15 and luhn(first, first + 15):
                best = first + 15
        if best is None:
            first = None
            continue
        spans.append((first, best))
        # The four digits kept visible, and any group starting among them, may begin a card.
        first = best - 4
        next_group = group_of[first] + 1


def _mask_run(run: str, fill: str) -> str | None:
    """The run with its card numbers masked, or None when it holds none."""
    spans = _card_digits(run)
    if not spans:
        return None
    hidden: set[int] = set()
    for first, end in spans:
        hidden.update(range(first, end - 4))
    # (A later span hides the kept digits an earlier one shares with it.)
    out: list[str] = []
    index = 0
    for char in run:
        if digit_value(char) >= 0:
            out.append(fill if index in hidden else char)
            index += 1
        else:
            out.append(char)
    return "".join(out)


def mask_text(text: str, fill: str = "*") -> tuple[str, bool]:
    """Mask every card number in `text`; also say whether anything was masked.

    `fill` replaces each hidden digit: `*`, or `0` where the value must stay a number or a
    phone number (a number starting with 0 is never taken for a card).
    """
    pieces: list[str] = []
    cursor = 0
    for match in _RUN.finditer(text):
        if match.end() - match.start() < MIN_DIGITS:
            continue
        masked = _mask_run(match.group(), fill)
        if masked is None:
            continue
        pieces.append(text[cursor : match.start()])
        pieces.append(masked)
        cursor = match.end()
    if not pieces:
        return text, False
    pieces.append(text[cursor:])
    return "".join(pieces), True


def may_hold_card(raw: bytes) -> bool:
    """Cheap test on raw JSON bytes: False means there is certainly no card number inside.

    A JSON string may spell digits as `\\u0034` escapes, and a number in exponent form stands
    for more digits than it shows, so both count as a maybe.
    """
    if b"\\u" in raw:
        return True
    if not raw.isascii():
        return _EXPONENT_BYTES.search(raw) is not None or _may_hold_card_text(
            raw.decode("utf-8", "replace")
        )
    for found in _SCAN_BYTES.finditer(raw):
        start, end = found.span()
        exponent = found.group()[1:2] in (b"e", b"E")
        if exponent or raw[end : end + 1] in (b"e", b"E"):
            # An exponent (or a stretch of digits right before one): is it a JSON number's?
            if _EXPONENT_BYTES.search(raw, max(0, start - 64), end + 1):
                return True
            if exponent:
                continue
        for run in _RUN_BYTES.finditer(found.group()):
            if run.end() - run.start() >= MIN_DIGITS and _count_digits(run.group()) >= MIN_DIGITS:
                return True
    return False


def _count_digits(run: bytes) -> int:
    return len(run) - len(run.translate(None, b"0123456789"))


def _may_hold_card_text(text: str) -> bool:
    # Escaped separators (`\t`, `\/`) count as their two characters, both within the gap.
    for run in re.finditer(f"{_D}+(?:(?:{_S}|\\\\[t/]){{1,{MAX_GAP}}}{_D}+)*", text):
        if run.end() - run.start() >= MIN_DIGITS and len(_DIGIT.findall(run.group())) >= MIN_DIGITS:
            return True
    return False


def mask_value(value: Any, fill: str = "*") -> tuple[Any, bool]:
    """Mask card numbers in a decoded JSON value (strings, numbers, keys), at any depth.

    Iterative: a deeply nested value cannot exhaust the interpreter's stack. With `fill="0"`
    a masked number stays a number.
    """
    changed = False

    def scalar(item: Any) -> Any:
        nonlocal changed
        if isinstance(item, str):
            text, masked = mask_text(item, fill)
        elif (
            isinstance(item, bool)
            or not isinstance(item, int | float)
            or abs(item) < 10 ** (MIN_DIGITS - 1)
        ):
            return item
        else:
            # 4111111111111111.0 is written back with every digit; the masked string replaces it.
            text, masked = mask_text(str(item) if isinstance(item, int) else repr(item), fill)
            if masked and fill == "0":
                changed = True
                return int(text) if isinstance(item, int) else float(text)
        if masked:
            changed = True
            return text
        return item

    if not isinstance(value, dict | list):
        result = scalar(value)
        return result, changed
    root: dict[Any, Any] | list[Any] = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, dict[Any, Any] | list[Any]]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            if isinstance(item, dict | list):
                child: dict[Any, Any] | list[Any] = {} if isinstance(item, dict) else []
                stack.append((item, child))
                item = child
            else:
                item = scalar(item)
            if isinstance(target, dict):
                target[scalar(key)] = item
            else:
                target.append(item)
    return root, changed
