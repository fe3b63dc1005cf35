"""Whose a dead letter is, read leniently from hostile bytes: never raises, bounded, no guess."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.privacy.dead_letters import (
    MAX_READ_BYTES,
    MAX_VALUE_LENGTH,
    DeadLetterOwner,
    owner_of,
    owner_of_document,
)
from schemas.envelope import IDENTIFIER_KINDS
from streams.kafka.records import InRecord, dead_letter, dead_letter_notice, tenant_of_dead_letter


def _document(**customer: Any) -> dict[str, Any]:
    return {"event_id": "e1", "type": "no.such.type", "tenant": "acme", "customer": customer}


def test_the_tenant_and_the_identifiers_of_a_refused_event_are_read_as_written() -> None:
    owner = owner_of(orjson.dumps(_document(email=" Ann@X.org ", phone="07700 900123", name="A")))
    assert owner is not None
    assert owner.tenant == "acme"
    assert owner.identifiers() == {"email": "Ann@X.org", "phone": "07700 900123"}  # stripped
    assert len(owner.values) == len(IDENTIFIER_KINDS)


def test_values_the_door_would_refuse_are_left_out_and_nothing_read_is_no_owner() -> None:
    long = "a" * (MAX_VALUE_LENGTH + 1)
    owner = owner_of(
        orjson.dumps(_document(email=long, phone=7700, plate=["x"], vin="  ", vin2="x"))
    )
    assert owner is None  # no identifier left
    owner = owner_of(orjson.dumps(_document(email=long, customer_ref="c-1")))
    assert owner == DeadLetterOwner("acme", ("c-1",) + (None,) * (len(IDENTIFIER_KINDS) - 1))


def test_a_tenant_that_is_not_one_or_a_customer_that_is_not_an_object_names_no_one() -> None:
    for tenant in ("", "ACME", "a/b", "-acme", "a" * 65, 7, None, ["acme"], "acme\n"):
        assert owner_of(orjson.dumps({**_document(email="a@x.org"), "tenant": tenant})) is None
    for customer in ("a@x.org", ["a@x.org"], None, 3):
        assert owner_of(orjson.dumps({"tenant": "acme", "customer": customer})) is None
    for document in ([], "acme", 1, None):
        assert owner_of_document(document) is None


def test_deep_huge_and_broken_input_names_no_one_without_raising() -> None:
    deep = b'{"tenant":"acme","customer":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert owner_of(deep) is None
    huge = orjson.dumps(_document(email="a@x.org", note="x" * MAX_READ_BYTES))
    assert owner_of(huge) is None  # over the bound: not parsed at all
    for raw in (b"", None, b"\xff\xfe", b'{"tenant": "acme", "customer": {"email": "a@x', b"\x00"):
        assert owner_of(raw) is None


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from([*IDENTIFIER_KINDS, "tenant", "customer", "x"]), children)
    ),
    max_leaves=20,
)


@settings(deadline=None)  # a first example can meet a cold cache on a loaded machine
@given(st.binary(max_size=300))
def test_any_bytes_never_raise(raw: bytes) -> None:
    owner = owner_of(raw)
    assert owner is None or isinstance(owner, DeadLetterOwner)


@settings(deadline=None)  # a first example can meet a cold cache on a loaded machine
@given(
    st.sampled_from(["acme", "ACME", "", "x" * 70, "a\x00b"]),
    st.dictionaries(st.sampled_from([*IDENTIFIER_KINDS, "name"]), _json | st.text(), max_size=6),
)
def test_any_customer_gives_only_stripped_bounded_strings_or_no_one(
    tenant: str, customer: dict[str, Any]
) -> None:
    owner = owner_of(orjson.dumps({"tenant": tenant, "customer": customer}))
    if owner is None:
        return
    assert owner.tenant == "acme"
    for kind, value in owner.identifiers().items():
        assert isinstance(customer[kind], str)
        assert value == customer[kind].strip()
        assert 0 < len(value) <= MAX_VALUE_LENGTH


def test_a_dead_letter_has_a_key_of_its_own_and_a_notice_naming_its_customer() -> None:
    value = orjson.dumps(_document(email="ann@x.org", card_token="4111 1111 1111 1111"))
    record = InRecord("journeys.touchpoints.v1", 2, 41, b"e1", value)
    dead = dead_letter(record, "type: unknown")
    again = dead_letter(record, "type: unknown")
    other = dead_letter(record, "stitch failed")
    assert dead.key == again.key != other.key  # the same refusal again: the same key
    assert dead.key.startswith(b"acme/journeys.touchpoints.v1/2/41/")
    assert tenant_of_dead_letter(dead.key) == "acme"
    notice = dead_letter_notice(dead)
    assert notice is not None
    assert (notice.destination, notice.key, notice.headers) == (
        "validated",
        b"acme",
        (("kind", b"dead_letter"),),
    )
    document = orjson.loads(notice.value or b"")
    assert document["dead_letter"] == dead.key.decode()
    assert document["customer"]["email"] == "ann@x.org"
    assert "4111 1111 1111 1111" not in (notice.value or b"").decode()  # masked as the letter
    nameless = dead_letter(InRecord("t", 0, 1, None, b"not json"), "invalid JSON")
    assert nameless.key.startswith(b"-/t/0/1/")
    assert tenant_of_dead_letter(nameless.key) is None
    assert dead_letter_notice(nameless) is None


def test_an_owner_shows_no_identifier_in_its_repr() -> None:
    owner = owner_of(orjson.dumps({"tenant": "acme", "customer": {"email": "ann@x.org"}}))
    assert owner is not None
    assert "ann@x.org" not in repr(owner)
    assert "email" in repr(owner)
