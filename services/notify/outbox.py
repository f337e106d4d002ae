"""Writing to the outbox: called by any context in the transaction of its change."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from services.notify.models import OutboxEvent


def emit(
    session: Session, tenant_id: uuid.UUID, type_: str, subject_id: uuid.UUID, data: dict[str, Any]
) -> None:
    """Record that something happened; the relay delivers it after the commit, or never if rolled back."""
    session.add(OutboxEvent(tenant_id=tenant_id, type=type_, subject_id=subject_id, data=data))
