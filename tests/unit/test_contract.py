"""The v1 event contract is frozen: the golden files and the exported JSON Schema.

`tests/golden/v1/<type>.json` holds one realistic event per type of the catalogue, with every
payload field that type has. A released shape never changes: if one of these tests fails
after a model change, the change breaks producers. Add a new schema version with an upcaster
(`schemas/upcasting.py`) and new golden files instead of editing these.

`schemas/event.schema.json` is the schema producers in other languages validate against; it is
generated from the models and must not drift from them. Drift is judged by what the schemas
accept, not by their text: a newer pydantic may lay out the same contract differently (2.14
drops a redundant `maxLength` from a decimal's string branch), and that must not fail the
build, while a real change to the models must.
"""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from schemas import contract
from schemas.codec import decode_event, encode_event
from schemas.errors import InvalidEventError
from schemas.events import EVENT_TYPES, Event

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1"
GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


def _payload_models() -> dict[str, type[BaseModel]]:
    union = typing.get_args(typing.get_args(Event)[0])
    models: dict[str, type[BaseModel]] = {}
    for member in union:
        (type_name,) = typing.get_args(member.model_fields["type"].annotation)
        models[type_name] = member.model_fields["payload"].annotation
    return models


PAYLOAD_MODELS = _payload_models()


def _golden(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((GOLDEN / f"{name}.json").read_bytes())
    return document


def _committed_schema() -> dict[str, Any]:
    schema: dict[str, Any] = orjson.loads(contract.schema_path().read_bytes())
    return schema


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    """The committed schema: what producers in other languages actually validate against."""
    # No format checker: draft 2020-12 treats `format` as an annotation, so the schema
    # must reject bad timestamps by itself (it carries patterns for that).
    return Draft202012Validator(_committed_schema())


def _schema_errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


# --- the committed schema ------------------------------------------------------------------


_DRIFT_HINT = (
    "schemas/event.schema.json no longer describes the models: if the model change is "
    "intended, add a schema version (see schemas/upcasting.py), then run "
    "`python -m schemas.contract` and commit the result"
)

_MUTANTS: tuple[Any, ...] = (
    ...,  # the field removed
    None,
    0,
    -1,
    1.5,
    True,
    [],
    {},
    "",
    "x",
    "Acme Ltd",
    "x" * 10_001,
    "2024-03-11T09:14:03Z",
    "2024-03-12",
    "ABCDEF",
    "abc",
    "x" * 10_000,
    10**12,
)
"""Values put in place of every field of every golden event (`...` removes the field)."""


def _mutations() -> list[tuple[str, dict[str, Any]]]:
    """Each golden event with one field removed or replaced, named by the path it changed."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in GOLDEN_FILES:
        golden = orjson.loads(path.read_bytes())
        found.append((f"{path.stem}:unchanged", golden))
        sections = [((), golden)] + [
            ((key,), golden[key]) for key in ("source", "customer", "payload")
        ]
        for where, section in sections:
            for key in section:
                if where == () and key in {"source", "customer", "payload", "type"}:
                    continue  # whole sections and the tag: covered by the cases below
                for value in _MUTANTS:
                    document = copy.deepcopy(golden)
                    target = document
                    for part in where:
                        target = target[part]
                    if value is ...:
                        del target[key]
                    else:
                        target[key] = value
                    found.append((f"{path.stem}:{'.'.join((*where, key))}={value!r:.20}", document))
    return found


def _per_type(schema: dict[str, Any]) -> dict[str, Draft202012Validator]:
    """A validator per event type (the schema narrowed to one branch of its `oneOf`)."""
    validators: dict[str, Draft202012Validator] = {}
    for ref in schema["oneOf"]:
        branch = schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]
        narrowed = {key: value for key, value in schema.items() if key != "oneOf"}
        validators[branch["properties"]["type"]["const"]] = Draft202012Validator(
            {**narrowed, "$ref": ref["$ref"]}
        )
    return validators


def _model_accepts(document: dict[str, Any]) -> bool:
    try:
        decode_event(orjson.dumps(document))
    except InvalidEventError:
        return False
    return True


_LAX = ("schema_version=True", "score=True", "scale=True")
"""Known leniency: the models read JSON `true` as the integer 1 (pydantic's lax mode)."""


def test_committed_schema_has_not_drifted_from_the_models() -> None:
    # Three judges of some 4,000 variants of the golden events: the committed schema, the
    # schema the models render today, and the models themselves. The committed schema must
    # never reject what the ledger accepts (a loosened model), and must reject whatever the
    # freshly rendered schema rejects (a tightened model). Where the models reject what no
    # schema can express (blank identifiers, phone digits, calendar dates), both accept.
    committed = _per_type(_committed_schema())
    rendered = _per_type(contract.event_json_schema())
    stricter, looser = [], []
    for name, document in _mutations():
        kind = document["type"]
        committed_rejects = not committed[kind].is_valid(document)
        if committed_rejects and _model_accepts(document) and not name.endswith(_LAX):
            stricter.append(name)
        if not rendered[kind].is_valid(document) and not committed_rejects:
            looser.append(name)
    assert stricter == [], (
        f"the committed schema rejects what the models accept: {stricter[:5]}; {_DRIFT_HINT}"
    )
    assert looser == [], (
        f"the models now reject what the committed schema accepts: {looser[:5]}; {_DRIFT_HINT}"
    )


def _shape(schema: dict[str, Any]) -> dict[str, Any]:
    """Per definition: its fields, which are required, and the constants and enums it names."""
    shape: dict[str, Any] = {}
    for name, definition in schema["$defs"].items():
        values: set[str] = set()
        stack = [definition]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                values.update(repr(node[key]) for key in ("const", "enum") if key in node)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        shape[name] = {
            "fields": sorted(definition.get("properties", {})),
            "required": sorted(definition.get("required", [])),
            "values": sorted(values),
            "extra": definition.get("additionalProperties"),
        }
    return shape


def test_committed_schema_has_the_fields_and_values_of_the_models() -> None:
    # The renderer-independent half of the drift check: no field, requirement, enum or
    # constant added, removed or renamed.
    assert _shape(_committed_schema()) == _shape(contract.event_json_schema()), _DRIFT_HINT


def test_the_drift_check_can_fail() -> None:
    # A model that gained a required payload field, and one that lost a constraint: the
    # committed schema disagrees with both, so the check above would catch either.
    schema = _committed_schema()
    tightened = copy.deepcopy(schema)
    tightened["$defs"]["OrderPlacedPayload"]["required"] = ["order_id", "loyalty_tier"]
    document = _golden("order.placed")
    assert _per_type(schema)["order.placed"].is_valid(document)
    assert not _per_type(tightened)["order.placed"].is_valid(document)
    document["payload"]["currency"] = "euros"
    assert not _per_type(schema)["order.placed"].is_valid(document)
    assert not _model_accepts(document)


def test_schema_path_is_package_data_next_to_the_models() -> None:
    path = contract.schema_path()
    assert path.name == "event.schema.json"
    assert path.parent == Path(contract.__file__).parent
    assert path.is_file()


def test_schema_is_a_valid_draft_2020_12_schema_with_a_header() -> None:
    schema = orjson.loads(contract.schema_path().read_bytes())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == contract.SCHEMA_ID
    assert schema["title"]
    assert "at least 6 digits" in schema["description"]  # documents what it cannot express
    tags = {
        schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"]
        for ref in schema["oneOf"]
    }
    assert tags == set(EVENT_TYPES)


def test_main_writes_the_rendered_schema_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "event.schema.json"
    monkeypatch.setattr(contract, "schema_path", lambda: target)
    assert contract.main() == 0
    text = target.read_text(encoding="utf-8")
    assert text == contract.render_schema()
    assert text.endswith("}\n")
    assert str(target) in capsys.readouterr().out


def test_event_json_schema_does_not_alter_the_adapter_schema() -> None:
    first = contract.event_json_schema()
    first["$defs"]["Customer"]["anyOf"].clear()
    assert contract.event_json_schema()["$defs"]["Customer"]["anyOf"]


# --- golden files --------------------------------------------------------------------------


def test_there_is_one_golden_file_per_event_type() -> None:
    assert sorted(path.stem for path in GOLDEN_FILES) == sorted(EVENT_TYPES)
    assert len(GOLDEN_FILES) == 35


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_file_decodes_and_re_encodes_to_the_same_json(path: Path) -> None:
    raw = path.read_bytes()
    document = orjson.loads(raw)
    event = decode_event(raw)
    assert event.type == path.stem
    assert document["type"] == path.stem
    assert document["tenant"] == "acme"
    # The codec writes the `redacted` marker on every event (false unless a card number was
    # masked); producers do not send it, so it is the one key the golden files leave out.
    # Everything else, `schema_version` included, must come back exactly as written.
    assert orjson.loads(encode_event(event)) == {"redacted": False, **document}
    assert event.redacted is False


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_file_holds_every_payload_field_of_its_type(path: Path) -> None:
    document = orjson.loads(path.read_bytes())
    fields = set(PAYLOAD_MODELS[path.stem].model_fields)
    assert set(document["payload"]) == fields
    assert all(value not in (None, "") for value in document["payload"].values())


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_file_is_valid_against_the_schema(
    path: Path, validator: Draft202012Validator
) -> None:
    assert _schema_errors(validator, orjson.loads(path.read_bytes())) == []


def test_golden_files_are_valid_with_format_checking_too() -> None:
    checking = Draft202012Validator(
        contract.event_json_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    for path in GOLDEN_FILES:
        assert list(checking.iter_errors(orjson.loads(path.read_bytes()))) == [], path.stem


# --- what the schema rejects, as the codec does --------------------------------------------


def _both_reject(validator: Draft202012Validator, document: dict[str, Any]) -> None:
    assert _schema_errors(validator, document), "the schema accepted it"
    with pytest.raises(InvalidEventError):
        decode_event(orjson.dumps(document))


@pytest.mark.parametrize(
    "moment", ["2024-03-11T09:14:03", "2024-03-11 09:14", "2024-03-11", "11/03/2024 09:14"]
)
def test_a_naive_or_malformed_occurred_at_is_rejected(
    validator: Draft202012Validator, moment: str
) -> None:
    document = _golden("form.submitted")
    document["occurred_at"] = moment
    _both_reject(validator, document)


@pytest.mark.parametrize(
    "moment", ["2024-03-11T09:14:03Z", "2024-03-11T09:14:03.123456789-05:00", "2024-03-11 09:14Z"]
)
def test_timestamps_the_codec_reads_pass_the_schema(
    validator: Draft202012Validator, moment: str
) -> None:
    document = _golden("form.submitted")
    document["occurred_at"] = moment
    assert _schema_errors(validator, document) == []
    decode_event(orjson.dumps(document))


def test_a_naive_slot_is_rejected_but_a_plain_date_is_a_slot(
    validator: Draft202012Validator,
) -> None:
    document = _golden("booking.created")
    document["payload"]["slot"] = "2024-03-12T10:30:00"
    _both_reject(validator, document)
    document["payload"]["slot"] = "2024-03-12"
    assert _schema_errors(validator, document) == []


@pytest.mark.parametrize("type_", ["booking.moved", "Booking.Created", ""])
def test_an_unknown_type_is_rejected(validator: Draft202012Validator, type_: str) -> None:
    document = _golden("booking.created")
    document["type"] = type_
    _both_reject(validator, document)


def test_a_missing_type_is_rejected(validator: Draft202012Validator) -> None:
    document = _golden("booking.created")
    del document["type"]
    _both_reject(validator, document)


@pytest.mark.parametrize(
    "customer",
    [{"name": "Priya Shah"}, {}, {"email": None, "name": "Priya Shah"}],
    ids=["name-only", "empty", "null-identifier"],
)
def test_a_customer_without_an_identifier_is_rejected(
    validator: Draft202012Validator, customer: dict[str, Any]
) -> None:
    document = _golden("message.received")
    document["customer"] = customer
    _both_reject(validator, document)


def test_any_single_identifier_is_enough(validator: Draft202012Validator) -> None:
    base = _golden("message.received")
    for kind in ("customer_ref", "plate", "vin", "order_id", "card_token", "membership_id"):
        document = copy.deepcopy(base)
        document["customer"] = {kind: "X-1", "name": "Priya Shah"}
        assert _schema_errors(validator, document) == [], kind
        decode_event(orjson.dumps(document))


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ((), "tenant", "Acme"),
        ((), "event_id", ""),
        ((), "schema_version", 2),
        ((), "colour", "red"),
        (("source",), "channel", "carrier-pigeon"),
        (("customer",), "phone", "call me"),
        (("payload",), "medium", "fax"),
        (("payload",), "booking_id", 1042),
    ],
)
def test_a_wrong_field_is_rejected(
    validator: Draft202012Validator, where: tuple[str, ...], key: str, value: Any
) -> None:
    document = _golden("message.sent")
    target = document
    for part in where:
        target = target[part]
    target[key] = value
    _both_reject(validator, document)


def test_a_missing_required_payload_field_is_rejected(validator: Draft202012Validator) -> None:
    document = _golden("enrolment.lookup")
    del document["payload"]["found"]
    _both_reject(validator, document)


def test_extra_payload_fields_are_kept_by_both(validator: Draft202012Validator) -> None:
    document = _golden("order.placed")
    document["payload"]["basket_ref"] = "BSK-77"
    assert _schema_errors(validator, document) == []
    event = decode_event(orjson.dumps(document))
    assert orjson.loads(encode_event(event))["payload"]["basket_ref"] == "BSK-77"
