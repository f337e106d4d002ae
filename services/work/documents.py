"""A task as the API and webhooks show it (the shape of ``schemas.TaskOut``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.work.models import Task

# (document key, task column), in the document's order.
FIELDS = (
    ("id", "id"), ("queue_id", "queue_id"), ("external_ref", "external_ref"), ("case_ref", "case_ref"),
    ("title", "title"),
    ("payload", "payload"), ("task_kind", "kind_name"), ("task_kind_version", "kind_version"),
    ("priority", "priority"), ("status", "status"), ("language", "language"),
    ("language_confidence", "language_confidence"), ("revision", "revision"),
    ("created_at", "created_at"), ("updated_at", "updated_at"),
)  # fmt: skip
DOCUMENT_COLUMNS = tuple(column for _key, column in FIELDS)
_TIMES = {"created_at", "updated_at"}
_IDS = {"id", "queue_id"}


def task_document(task: Task) -> dict[str, Any]:
    return document_of({name: getattr(task, name) for name in DOCUMENT_COLUMNS})


def document_of(values: dict[str, Any]) -> dict[str, Any]:
    """``task_document`` from column values, without a model object (bulk intake)."""
    document = {}
    for key, column in FIELDS:
        value = values[column]
        if column in _IDS:
            value = str(value)
        elif column in _TIMES:
            value = iso(value)
        document[key] = plain(value)
    return document


def document_sql(relation: str) -> str:
    """``document_of`` as the select list of a PostgreSQL subquery over a relation with the
    task's columns, whose row ``json_build_object`` renders: bulk intake builds each
    created task's event in the statement that inserts it. (One row value costs PostgreSQL
    a tenth of the fourteen key and value arguments it would take instead.)"""
    parts = []
    for key, column in FIELDS:
        value = f"{relation}.{column}"
        if column in _TIMES:
            value = f"""to_char({value} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        parts.append(f"{value} AS {key}")
    return ", ".join(parts)


def iso(moment: datetime) -> str:
    """UTC, always with microseconds, so that every document's times have one width."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value
