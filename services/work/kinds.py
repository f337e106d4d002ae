"""Task kinds: the built-in ones shipped as JSON Schemas, and the ones a client defines.

A kind is a JSON Schema (draft 2020-12) for a task's payload. Client kinds are
versioned: defining a kind again makes a new version, and a task keeps the
version it was validated against.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from services.work.models import TaskKind
from tenants.principal import Permission, Principal
from tenants.scoping import narrowed_to

BUILTIN_DIR = Path(__file__).parent / "builtin_kinds"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_ERRORS = 50  # a payload wrong everywhere still gets a readable answer
NAME_PATTERN = "^[a-z][a-z0-9_]{1,63}$"


@dataclass(frozen=True)
class Kind:
    name: str
    version: int
    schema: dict[str, Any]
    builtin: bool

    @property
    def text_fields(self) -> list[str]:
        """Free-text properties that tell the task's language."""
        return list(self.schema.get("x-text-fields", []))

    @cached_property
    def validator(self) -> Any:
        """Compiled once per schema text: validation is on the intake hot path."""
        return _validator(json.dumps(self.schema, sort_keys=True))


@cache
def builtin_kinds() -> dict[str, Kind]:
    kinds = {}
    for path in sorted(BUILTIN_DIR.glob("*.json")):
        kinds[path.stem] = Kind(path.stem, 1, json.loads(path.read_text()), builtin=True)
    return kinds


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Any:
    # jsonschema-rs validates a payload in well under a microsecond where the pure-Python
    # validator takes ~20: bulk intake validates every row (bench/intake.py). It never
    # fetches a remote $ref (offline); definitions are also refused one (below).
    return jsonschema_rs.Draft202012Validator(json.loads(schema_json), validate_formats=True, offline=True)


def payload_errors(kind: Kind, payload: Any, prefix: str = "/payload") -> list[FieldError]:
    """Every schema violation, each with the JSON pointer of the offending member."""
    if kind.validator.is_valid(payload):
        return []
    errors = []
    for error in kind.validator.iter_errors(payload):
        path = list(error.instance_path)
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
            path.append(error.kind.property)  # reported at the parent: point at the member itself
        pointer = "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in path)
        errors.append(FieldError(prefix + pointer, error.message))
        if len(errors) == MAX_ERRORS:
            break
    return sorted(errors, key=lambda e: e.pointer)


def list_kinds(session: Session) -> list[Kind]:
    """Built-in kinds, then the latest version of each kind the caller's tenants defined."""
    latest = (
        select(TaskKind.name, func.max(TaskKind.version).label("version"))
        .group_by(TaskKind.tenant_id, TaskKind.name)
        .subquery()
    )
    rows = session.scalars(
        select(TaskKind)
        .join(latest, (TaskKind.name == latest.c.name) & (TaskKind.version == latest.c.version))
        .order_by(TaskKind.name)
    ).all()
    own = [Kind(row.name, row.version, row.json_schema, builtin=False) for row in rows]
    return [*builtin_kinds().values(), *own]


def resolve(session: Session, tenant_id: uuid.UUID, name: str, version: int | None = None) -> Kind | None:
    """The kind ``name`` as ``tenant_id`` sees it (its latest version unless one is given)."""
    if name in builtin_kinds():
        return builtin_kinds()[name]
    with narrowed_to(session, tenant_id):
        query = select(TaskKind).where(TaskKind.name == name)
        if version is not None:
            query = query.where(TaskKind.version == version)
        row = session.scalars(query.order_by(TaskKind.version.desc()).limit(1)).first()
    return None if row is None else Kind(row.name, row.version, row.json_schema, builtin=False)


def require(session: Session, tenant_id: uuid.UUID, name: str, version: int | None = None) -> Kind:
    kind = resolve(session, tenant_id, name, version)
    if kind is None:
        raise NotFound(f"no task kind {name}")
    return kind


def define(session: Session, principal: Principal, name: str, schema: Any) -> Kind:
    """Define a client kind, or the next version of one."""
    principal.require(Permission.QUEUES_MANAGE)
    _check_definition(name, schema)
    tenant_id = principal.org_id
    current = resolve(session, tenant_id, name)
    version = 1 if current is None else current.version + 1
    session.add(TaskKind(tenant_id=tenant_id, name=name, version=version, json_schema=schema))
    session.flush()
    return Kind(name, version, schema, builtin=False)


def _check_definition(name: str, schema: Any) -> None:
    import re

    if name in builtin_kinds():
        raise Conflict(f"{name} is a built-in kind; choose another name")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValidationFailed(
            errors=[FieldError("/name", "lower-case letters, digits and _, starting with a letter")]
        )
    if not isinstance(schema, dict):
        raise ValidationFailed(errors=[FieldError("/schema", "must be a JSON Schema object")])
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise ValidationFailed(errors=[FieldError("/schema", f"larger than {MAX_SCHEMA_BYTES} bytes")])
    declared = schema.get("$schema")
    if declared not in (None, "https://json-schema.org/draft/2020-12/schema"):
        raise ValidationFailed(errors=[FieldError("/schema/$schema", "only draft 2020-12 is supported")])
    if schema.get("type") != "object":
        raise ValidationFailed(errors=[FieldError("/schema/type", 'a payload schema has "type": "object"')])
    # Imported on use: jsonschema's format checkers compile a grammar when imported, 1.3 s
    # of every process's start, and only a client defining its own kind needs them.
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        pointer = "".join(f"/{part}" for part in exc.absolute_path)
        raise ValidationFailed(errors=[FieldError(f"/schema{pointer}", exc.message)]) from None
    _refuse_remote_references(schema)


def _refuse_remote_references(node: Any, pointer: str = "/schema") -> None:
    """A $ref must stay inside the schema: the platform never fetches a URL to validate."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise ValidationFailed(errors=[FieldError(f"{pointer}/$ref", "only local references (#...)")])
        for key, value in node.items():
            _refuse_remote_references(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _refuse_remote_references(value, f"{pointer}/{index}")
