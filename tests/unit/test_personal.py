"""The personal-field split: every field of the catalogue is classified on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.envelope import Customer, Source, _Envelope
from schemas.events import EVENT_TYPES
from schemas.privacy.personal import (
    CATALOGUE_PAYLOADS,
    CUSTOMER_FIELDS,
    ENVELOPE_FIELDS,
    PAYLOAD_FIELDS,
    SOURCE_FIELDS,
    classify,
    personal_paths,
    tenant_path_problem,
)

GOLDEN = sorted((Path(__file__).resolve().parents[1] / "golden" / "v1").glob("*.json"))


def golden(name: str) -> dict[str, Any]:
    """One golden event as a document."""
    document: dict[str, Any] = json.loads(
        (GOLDEN[0].parent / f"{name}.json").read_text(encoding="utf-8")
    )
    return document


def test_the_catalogue_lists_every_event_type() -> None:
    assert sorted(CATALOGUE_PAYLOADS) == sorted(EVENT_TYPES)


def test_every_payload_field_of_the_catalogue_is_classified() -> None:
    declared = set().union(*CATALOGUE_PAYLOADS.values())
    assert declared - set(PAYLOAD_FIELDS) == set()
    assert set(PAYLOAD_FIELDS) - declared == set(), "a classified field the catalogue lost"


def test_every_envelope_source_and_customer_field_is_classified() -> None:
    # `type` and `payload` are declared by each event model, not the envelope
    envelope = set(_Envelope.model_fields) - {"source", "customer"} | {"type"}
    assert envelope == set(ENVELOPE_FIELDS)
    assert set(Source.model_fields) == set(SOURCE_FIELDS)
    assert set(Customer.model_fields) == set(CUSTOMER_FIELDS)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_every_field_of_every_golden_event_is_classified(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    unnamed = [field for field, _cls, named in classify(document) if not named]
    assert unnamed == []


def test_free_text_and_customer_fields_are_personal_and_rule_inputs_clear() -> None:
    call = golden("call.logged")
    assert personal_paths(call) == [
        "customer.phone",
        "customer.name",
        "payload.reason",
        "payload.outcome",
    ]
    order = golden("order.placed")
    assert personal_paths(order) == ["customer.email", "customer.order_id"]
    classes = {field: cls for field, cls, _named in classify(order)}
    assert classes["payload.amount"] == classes["payload.order_id"] == "clear"
    assert classes["event_id"] == classes["occurred_at"] == classes["source.system"] == "clear"


def test_a_producers_own_payload_field_is_personal_by_default_unless_null() -> None:
    document = golden("order.placed")
    document["payload"] = {
        **document["payload"],
        "gift_message": "happy birthday",
        "loyalty": {"tier": 2},
        "nothing": None,
    }
    paths = personal_paths(document)
    assert "payload.gift_message" in paths
    assert "payload.loyalty" in paths
    assert "payload.nothing" not in paths
    named = {field: named for field, _cls, named in classify(document)}
    assert named["payload.gift_message"] is False  # left to the default, not named


def test_a_catalogue_field_name_used_as_an_extra_elsewhere_is_personal() -> None:
    document = golden("chat.message")
    document["payload"]["amount"] = "12.00"  # not a field of chat.message: an extra
    assert "payload.amount" in personal_paths(document)


def test_a_tenant_marks_more_fields_personal() -> None:
    document = golden("chat.message")
    marked = ("source.actor", "payload.asked_for", "payload.absent")
    paths = personal_paths(document, marked)
    assert {"source.actor", "payload.asked_for"} <= set(paths)
    assert "payload.absent" not in paths
    classes = {field: cls for field, cls, _named in classify(document, marked)}
    assert classes["source.actor"] == classes["payload.asked_for"] == "personal"


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_personal_paths_are_the_personal_fields_that_classify_gives(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    for marked in ((), ("source.actor", "payload.form")):
        expected = [
            field
            for field, cls, _named in classify(document, marked)
            if cls == "personal" and document[field.split(".")[0]].get(field.split(".")[1])
        ]
        assert sorted(personal_paths(document, marked)) == sorted(expected)


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("payload.vehicle_model", True),
        ("source.actor", True),
        ("source.site", False),
        ("customer.email", False),
        ("event_id", False),
        ("payload.a.b", False),
        ("payload.", False),
    ],
)
def test_which_paths_a_tenant_may_mark(path: str, ok: bool) -> None:
    assert (tenant_path_problem(path) is None) is ok
