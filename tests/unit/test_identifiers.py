"""Normalisation: the same identifier written differently compares equal, others never do."""

from __future__ import annotations

import itertools
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.identifiers import MIN_NSN_DIGITS, customer_ids, normalise, normalise_phone
from projections.ledger import Ledger
from projections.settings import FoldSettings
from tests.factories import ev

GB = FoldSettings(default_regions=MappingProxyType({"acme": "GB"}))


def _customers(phones: list[str], fold: FoldSettings | None = None) -> int:
    """How many customers the ledger sees when each phone number arrives in its own event."""
    ledger = Ledger(settings=fold or FoldSettings())
    for phone in phones:
        ledger.add(ev("form.submitted", {"form": "contact"}, customer={"phone": phone}))
    return len(list(ledger))


# --- e-mail, plate, VIN, other identifiers --------------------------------------------------


@pytest.mark.parametrize(
    "written", ["sam@example.com", "  Sam@Example.COM ", "SAM@EXAMPLE.COM", "\tsam@example.com\n"]
)
def test_email_is_trimmed_and_lower_cased(written: str) -> None:
    ident = normalise("email", written)

    assert ident.value == "sam@example.com"
    assert ident.key == "email:sam@example.com"


def test_different_emails_stay_different() -> None:
    assert normalise("email", "sam@example.com").key != normalise("email", "sam@example.org").key


@pytest.mark.parametrize("written", ["AB12 CDE", "ab12cde", "ab-12-cde", " Ab12 - cDe "])
def test_plate_is_upper_cased_without_spaces_or_dashes(written: str) -> None:
    assert normalise("plate", written).key == "plate:AB12CDE"


@pytest.mark.parametrize(
    "written", ["1HGCM82633A004352", "1hgcm8263-3a004352", "1HGCM 82633 A004352"]
)
def test_vin_is_upper_cased_without_spaces_or_dashes(written: str) -> None:
    assert normalise("vin", written).key == "vin:1HGCM82633A004352"


def test_a_plate_and_a_vin_with_the_same_text_are_different_identifiers() -> None:
    assert normalise("plate", "AB12CDE").key != normalise("vin", "AB12CDE").key


def test_other_identifiers_are_only_trimmed_and_keep_their_case() -> None:
    assert normalise("customer_ref", " Cust-42 ").key == "customer_ref:Cust-42"
    assert normalise("customer_ref", "cust-42").key != normalise("customer_ref", "Cust-42").key


def test_customer_ids_never_include_the_name() -> None:
    event = ev(
        "form.submitted",
        {"form": "contact"},
        customer={"name": "Sam Smith", "email": " Sam@Example.com", "plate": "ab12 cde"},
    )

    keys = [ident.key for ident in customer_ids(event.customer)]

    assert keys == ["email:sam@example.com", "plate:AB12CDE"]


def test_events_with_differently_written_email_and_plate_stitch() -> None:
    ledger = Ledger()
    ledger.add(ev("form.submitted", {"form": "a"}, customer={"email": "Sam@Example.com "}))
    ledger.add(ev("form.submitted", {"form": "b"}, customer={"email": "sam@example.com"}))
    ledger.add(ev("form.submitted", {"form": "c"}, customer={"plate": "ab-12 cde"}))
    ledger.add(ev("form.submitted", {"form": "d"}, customer={"plate": "AB12CDE"}))

    assert sorted(len(journey.events) for journey in ledger) == [2, 2]


# --- phone numbers ------------------------------------------------------------------------

UK = ["+44 7700 900123", "07700 900123", "07700900123", "0044 7700 900123", "+44 (0)7700-900123"]
US = ["+1 212 555 0199", "(212) 555-0199", "212.555.0199", "+1 (212) 555-0199"]


@pytest.mark.parametrize("phones", [UK, US])
def test_one_number_written_differently_is_one_customer_in_any_order(phones: list[str]) -> None:
    for order in itertools.permutations(phones):
        assert _customers(list(order)) == 1, order


def test_international_spellings_normalise_to_one_key() -> None:
    keys = {
        normalise_phone(p).key for p in ["+44 7700 900123", "0044 7700 900123", "+447700900123"]
    }

    assert keys == {"phone:+44:7700900123"}


def test_national_spellings_drop_one_trunk_zero() -> None:
    keys = {normalise_phone(p).key for p in ["07700 900123", "07700900123", "07700-900-123"]}

    assert keys == {"phone:7700900123"}


def test_the_uk_and_us_numbers_are_different_customers() -> None:
    assert _customers([*UK, *US]) == 2


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("+44 7700 900123", "+44 7700 900124"),
        ("07700 900123", "07700 900124"),
        ("+44 7700 900123", "07700 900124"),
        ("+1 212 555 0199", "(212) 555-0198"),
        ("+44 7700 900123", "+33 7700 900123"),
        ("+44 7700 900123", "+1 7700 900123"),
        ("07700 900123", "00700 900123"),
    ],
)
def test_different_numbers_never_match(one: str, other: str) -> None:
    assert _customers([one, other]) == 2
    assert _customers([other, one]) == 2


def test_the_same_digits_under_two_country_codes_stay_apart_without_a_national_spelling() -> None:
    uk, fr = normalise_phone("+44 7700 900123"), normalise_phone("+33 7700 900123")

    assert uk.key != fr.key
    assert _customers(["+44 7700 900123", "+33 7700 900123", "+44 7700 900123"]) == 2


@settings(max_examples=100, deadline=None)
@given(
    one=st.text(alphabet="0123456789", min_size=10, max_size=10),
    other=st.text(alphabet="0123456789", min_size=10, max_size=10),
)
def test_distinct_national_numbers_never_match(one: str, other: str) -> None:
    a, b = normalise_phone("0" + one), normalise_phone("0" + other)

    assert (a.key == b.key) == (one == other)


@pytest.mark.parametrize(
    ("national", "international", "region"),
    [
        ("07700 900123", "+44 7700 900123", "GB"),
        ("020 7946 0958", "+44 20 7946 0958", "GB"),
        ("(212) 555-0199", "+1 212 555 0199", "US"),
        ("06 12 34 56 78", "+33 6 12 34 56 78", "FR"),
    ],
)
def test_with_a_default_region_national_numbers_become_international(
    national: str, international: str, region: str
) -> None:
    local = normalise_phone(national, region)

    assert local.country_code is not None
    assert local.key == normalise_phone(international).key
    assert local.display == normalise("phone", international).value


def test_a_tenant_default_region_applies_to_that_tenant_only() -> None:
    ledger = Ledger(settings=GB)
    for tenant in ("acme", "globex"):
        ledger.add(
            ev("form.submitted", {"form": "c"}, tenant=tenant, customer={"phone": "07700 900123"})
        )

    assert GB.region_for("acme") == "GB"
    assert GB.region_for("globex") is None
    keys = {
        journey.tenant: ledger.identities[journey.tenant].members(journey.customer_id)
        for journey in ledger
    }
    assert keys == {"acme": {"phone:+44:7700900123"}, "globex": {"phone:7700900123"}}


def test_with_a_default_region_spellings_stitch_and_other_countries_do_not() -> None:
    assert _customers([*UK], GB) == 1
    assert _customers(["07700 900123", "+33 7700 900123"], GB) == 2
    # With GB as the region, a national US spelling is a (different) UK number.
    assert _customers(["(212) 555-0199", "+1 212 555 0199"], GB) == 2


@pytest.mark.parametrize(
    ("national", "international"),
    [
        ("0900 123", "+44 900 123"),
        ("01234 567", "+44 1234 567"),
        ("0123 4567", "+44 123 4567"),
    ],
)
def test_short_national_numbers_do_not_stitch_to_international_ones(
    national: str, international: str
) -> None:
    local = normalise_phone(national)

    assert len(local.nsn) < MIN_NSN_DIGITS
    assert local.national_key is None
    assert _customers([national, international]) == 2
    assert _customers([international, national]) == 2


def test_short_numbers_written_the_same_way_still_stitch() -> None:
    assert _customers(["0900 123", "0900-123"]) == 1


# --- the plain-address fast path agrees with email_validator ---------------------------------


def _validator_accepts(value: str) -> bool:
    import email_validator

    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


_LOCAL = st.text(alphabet="abcz019_+-.!#~\"'é", min_size=0, max_size=12)
_LABEL = st.text(alphabet="abyz0189-_", min_size=0, max_size=8) | st.sampled_from(
    ["xn--abc", "ab--cd", "a" * 63, "a" * 64, "local", "onion", "arpa", "test", "com", "c0m", "1"]
)
_DOMAIN = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)


@settings(max_examples=600, deadline=None, database=None, derandomize=True)
@given(local=_LOCAL, domain=_DOMAIN, at=st.sampled_from(["@", "@@", ""]))
def test_plain_addresses_are_those_email_validator_accepts(
    local: str, domain: str, at: str
) -> None:
    from projections.identifiers import _plainly_valid

    value = f"{local}{at}{domain}"
    if _plainly_valid(value, value.rpartition("@")[2]):
        assert _validator_accepts(value), value


@pytest.mark.parametrize(
    "value",
    [
        "sam@example.com",
        "sam.smith+x@mail.example.co.uk",
        "a_b-c@a-b.io",
        "x@" + "a" * 63 + ".com",
        "x@" + "a" * 64 + ".com",
        "x@ab--cd.com",
        "x@mail.local",
        "x@host.onion",
        "x@1.2.3.4",
        "x@example.c0",
        ".x@example.com",
        "x..y@example.com",
        "x@example",
        "x@-example.com",
        "x@exa_mple.com",
        "o'neil@example.com",
        "é@example.com",
        "x@é.com",
        ("a" * 250) + "@example.com",
    ],
)
def test_email_problem_answers_as_email_validator(value: str) -> None:
    from projections.identifiers import _plainly_valid, email_problem

    plain = _plainly_valid(value, value.rpartition("@")[2])
    assert not plain or _validator_accepts(value)
    assert (email_problem(value) is None) == _validator_accepts(value)


def test_everyday_addresses_take_the_fast_path() -> None:
    from projections.identifiers import _plainly_valid

    for value in ("sam@example.com", "sam.smith+x@mail.example.co.uk", "a_b-c@a-b.io"):
        assert _plainly_valid(value, value.rpartition("@")[2]), value
    for value in ("x@ab--cd.com", "x@mail.local", "x@example.c0", "x@example"):
        assert not _plainly_valid(value, value.rpartition("@")[2]), value
