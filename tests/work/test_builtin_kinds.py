"""The built-in task kinds: one JSON Schema (draft 2020-12) per kind in services/work/builtin_kinds/."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

KINDS_DIR = Path(__file__).resolve().parents[2] / "services" / "work" / "builtin_kinds"

KIND_NAMES = {
    "support_ticket",
    "claim",
    "file_management",
    "data_analysis",
    "invoice_processing",
    "order_processing",
    "payroll_hr",
    "contract_documents",
    "vat_declaration",
}


def load(name: str) -> dict:
    return json.loads((KINDS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def validator(schema: dict) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def iter_properties(schema: dict, path: str = ""):
    """Every (dotted name, property schema) pair, nested objects and array items included."""
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}{name}", prop
        yield from iter_properties(prop, f"{path}{name}.")
        items = prop.get("items")
        if isinstance(items, dict):
            yield from iter_properties(items, f"{path}{name}[].")


def is_money(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf.endswith("_minor") or "amount" in leaf


def test_the_set_of_files_is_exactly_the_nine_kinds():
    assert {p.stem for p in KINDS_DIR.glob("*.json")} == KIND_NAMES
    assert {p.name for p in KINDS_DIR.iterdir() if p.is_file()} == {f"{n}.json" for n in KIND_NAMES}


@pytest.mark.parametrize("name", sorted(KIND_NAMES))
def test_is_a_valid_draft_2020_12_schema(name):
    schema = load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{name}/1")
    assert schema["type"] == "object"
    assert schema["title"].strip()
    assert schema["description"].strip()
    assert (KINDS_DIR / f"{name}.json").stat().st_size < 6 * 1024


@pytest.mark.parametrize("name", sorted(KIND_NAMES))
def test_examples_validate_with_format_checking(name):
    schema = load(name)
    examples = schema["examples"]
    assert examples, "each kind ships at least one example payload"
    for example in examples:
        errors = [e.message for e in validator(schema).iter_errors(example)]
        assert errors == []


@pytest.mark.parametrize("name", sorted(KIND_NAMES))
def test_required_fields_are_few_and_enforced(name):
    schema = load(name)
    required = schema["required"]
    assert 1 <= len(required) <= 3
    assert set(required) <= set(schema["properties"])
    example = schema["examples"][0]
    for field in required:
        payload = {k: v for k, v in example.items() if k != field}
        assert not validator(schema).is_valid(payload), f"{field} missing should fail"


@pytest.mark.parametrize("name", sorted(KIND_NAMES))
def test_money_is_integer_minor_units_with_a_currency(name):
    schema = load(name)
    money = [(n, p) for n, p in iter_properties(schema) if is_money(n)]
    for prop_name, prop in money:
        assert prop.get("type") != "number", f"{prop_name} must not be a float"
        assert prop.get("type") == "integer", f"{prop_name} must be integer minor units"
    if money:
        assert schema["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"


@pytest.mark.parametrize("name", sorted(KIND_NAMES))
def test_every_property_has_title_and_description(name):
    for prop_name, prop in iter_properties(load(name)):
        assert isinstance(prop.get("title"), str) and prop["title"].strip(), prop_name
        assert isinstance(prop.get("description"), str) and prop["description"].strip(), prop_name


@pytest.mark.parametrize("name", sorted(KIND_NAMES))
def test_text_fields_are_string_properties(name):
    schema = load(name)
    text_fields = schema["x-text-fields"]
    assert text_fields
    for field in text_fields:
        assert isinstance(field, str)
        assert schema["properties"][field]["type"] == "string", field
        assert "enum" not in schema["properties"][field], field


def test_format_checking_is_really_on():
    schema = load("claim")
    example = dict(schema["examples"][0], incident_date="2025-02-30")
    assert not validator(schema).is_valid(example)
    example = dict(schema["examples"][0], claimant_email="not-an-address")
    assert not validator(schema).is_valid(example)


@pytest.mark.parametrize(
    ("name", "field", "good", "bad"),
    [
        ("vat_declaration", "period", "2025-03", "2025-13"),
        ("vat_declaration", "period", "2025-Q4", "2025-Q5"),
        ("vat_declaration", "vat_number", "EL094259216", "GR094259216"),
        ("vat_declaration", "currency", "HUF", "huf"),
        ("claim", "claimed_amount_minor", 1999, 19.99),
        ("claim", "claim_type", "customer", "warranty"),
        ("support_ticket", "channel", "chat", "pigeon"),
        ("payroll_hr", "country", "RO", "ROU"),
    ],
)
def test_field_constraints(name, field, good, bad):
    schema = load(name)
    example = schema["examples"][0]
    assert validator(schema).is_valid(dict(example, **{field: good}))
    assert not validator(schema).is_valid(dict(example, **{field: bad}))
