"""A task as the API and webhooks show it (the shape of ``schemas.TaskOut``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.work.models import Task

DOCUMENT_COLUMNS = (
    "id", "queue_id", "external_ref", "title", "payload", "kind_name", "kind_version", "priority", "status",
    "language", "language_confidence", "revision", "created_at", "updated_at",
)  # fmt: skip


def task_document(task: Task) -> dict[str, Any]:
    return document_of({name: getattr(task, name) for name in DOCUMENT_COLUMNS})


def document_of(values: dict[str, Any]) -> dict[str, Any]:
    """``task_document`` from column values, without a model object (bulk intake)."""
    return {
        "id": str(values["id"]),
        "queue_id": str(values["queue_id"]),
        "external_ref": values["external_ref"],
        "title": values["title"],
        "payload": values["payload"],
        "task_kind": values["kind_name"],
        "task_kind_version": values["kind_version"],
        "priority": plain(values["priority"]),
        "status": plain(values["status"]),
        "language": values["language"],
        "language_confidence": values["language_confidence"],
        "revision": values["revision"],
        "created_at": _iso(values["created_at"]),
        "updated_at": _iso(values["updated_at"]),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value
