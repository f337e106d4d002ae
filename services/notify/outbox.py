"""Writing to the outbox: called by any context in the transaction of its change."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from services.core.ids import new_id
from services.core.time import utcnow
from services.notify.models import OutboxEvent


def emit(
    session: Session, tenant_id: uuid.UUID, type_: str, subject_id: uuid.UUID, data: dict[str, Any]
) -> None:
    """Record that something happened; the relay delivers it after the commit, or never if rolled back."""
    session.add(OutboxEvent(**row(tenant_id, type_, subject_id, data)))


def row(tenant_id: uuid.UUID, type_: str, subject_id: uuid.UUID, data: dict[str, Any]) -> dict[str, Any]:
    """The column values of one event (bulk intake inserts them as rows)."""
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "type": type_,
        "subject_id": subject_id,
        "data": data,
        "created_at": utcnow(),
    }
