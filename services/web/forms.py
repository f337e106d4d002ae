"""A task kind's JSON Schema as an HTML form, and the submitted form back as a payload.

Only the top level of the schema becomes fields (what the built-in kinds and
most client kinds use); nested objects are edited as JSON text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from services.work.bulk import typed_value

FIELD_PREFIX = "payload."
LONG_TEXT = 200  # strings allowed to be longer than this get a text area


@dataclass(frozen=True)
class Field:
    name: str  # the payload member
    label: str
    help: str
    widget: str  # text, textarea, number, select, checkbox, date, email, url, lines, json
    required: bool
    choices: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    max_length: int | None = None

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name


def fields_of(schema: dict[str, Any]) -> list[Field]:
    """The form fields of a payload schema, required ones first, then in schema order."""
    required = set(schema.get("required", []))
    text_fields = set(schema.get("x-text-fields", []))
    found = []
    for name, spec in schema.get("properties", {}).items():
        if not isinstance(spec, dict):
            continue
        found.append(
            Field(
                name=name,
                label=str(spec.get("title") or name.replace("_", " ").capitalize()),
                help=str(spec.get("description", "")),
                widget=_widget(spec, name in text_fields),
                required=name in required,
                choices=[str(c) for c in spec.get("enum", [])],
                minimum=spec.get("minimum"),
                maximum=spec.get("maximum"),
                pattern=spec.get("pattern"),
                max_length=spec.get("maxLength"),
            )
        )
    return sorted(found, key=lambda f: not f.required)


def _widget(spec: dict[str, Any], free_text: bool) -> str:
    kind = spec.get("type")
    if "enum" in spec:
        return "select"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "checkbox"
    if kind == "array" and spec.get("items", {}).get("type") == "string":
        return "lines"
    if kind in ("array", "object"):
        return "json"
    formats = {"date": "date", "email": "email", "uri": "url"}
    if spec.get("format") in formats:
        return formats[spec["format"]]
    if free_text or (spec.get("maxLength") or 0) > LONG_TEXT:
        return "textarea"
    return "text"


def payload_of(form: dict[str, str], schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The payload a submitted form describes, and what could not be read, by field name."""
    payload: dict[str, Any] = {}
    problems: dict[str, str] = {}
    properties = schema.get("properties", {})
    for spec_field in fields_of(schema):
        raw = form.get(spec_field.input_name, "")
        spec = properties[spec_field.name]
        if spec_field.widget == "checkbox":
            if raw:
                payload[spec_field.name] = True
            continue
        if raw.strip() == "":
            continue  # absent; the schema says whether that is allowed
        try:
            if spec_field.widget == "lines":
                payload[spec_field.name] = [line.strip() for line in raw.splitlines() if line.strip()]
            elif spec_field.widget == "json":
                payload[spec_field.name] = json.loads(raw)
            else:
                payload[spec_field.name] = typed_value(raw, spec)
        except (ValueError, RecursionError) as exc:
            problems[spec_field.name] = str(exc) or "nested too deeply"
    return payload, problems
