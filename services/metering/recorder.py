"""Usage from the outbox: what the task lifecycle and the SLA engine emitted, metered.

Reads every event once from the metering cursor (``notify.consumers``), the SLA sweep's
too, and records its usage in the same transaction as the cursor's move; the idempotency
keys derive from what was metered (a task is completed once, however often it is
reopened and resolved again), so a replay records nothing twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy.orm import Session

from services.metering import service
from services.metering.models import UsageEvent
from services.notify import consumers
from services.notify.models import OutboxEvent
from services.sla.policies import out_of_hours
from tenants.scoping import insert_rows

BATCH = 1000
_MICRO = Decimal("0.000001")


def record_batch(session: Session, batch: int = BATCH) -> int:
    """One batch of outbox events metered; how many were read (0: none, or another
    recorder holds the cursor). The caller commits."""
    taken = consumers.read(session, consumers.METERING, batch)
    if taken is None or not taken.events:
        return 0
    rows = [values for event in taken.events for values in usage_of(session, event)]
    insert_rows(session, UsageEvent, rows, unless_taken=service.UNIQUE_KEY)
    taken.done()
    return len(taken.events)


def usage_of(session: Session, event: OutboxEvent) -> list[dict[str, Any]]:
    data = event.data
    if event.type == "task.status_changed":
        return _work(session, event, data)
    if event.type in ("sla.breached", "sla.met"):
        metric = service.SLA_BREACHED if event.type == "sla.breached" else service.SLA_MET
        at = _time(data["due_at"] if event.type == "sla.breached" else data["at"])
        return [
            service.row(
                event.tenant_id,
                metric,
                Decimal(1),
                at,
                f"clock:{data['clock_id']}:{metric}",
                f"outbox:{event.id}",
                queue_id=uuid.UUID(data["queue_id"]),
                task_id=uuid.UUID(data["task_id"]),
            )
        ]
    return []


def _work(session: Session, event: OutboxEvent, data: dict[str, Any]) -> list[dict[str, Any]]:
    task = data["task"]
    dimensions = {
        "queue_id": uuid.UUID(task["queue_id"]),
        "task_kind": task["task_kind"],
        "language": task["language"],
        "task_id": uuid.UUID(task["id"]),
    }
    rows = []
    worked = data.get("worked")
    if worked:
        ended = _time(worked["to"])
        minutes = (Decimal(str(worked["seconds"])) / 60).quantize(_MICRO, rounding=ROUND_HALF_EVEN)
        rows.append(
            service.row(
                event.tenant_id,
                service.HANDLE_MINUTES,
                minutes,
                ended,
                f"outbox:{event.id}:{service.HANDLE_MINUTES}",
                f"outbox:{event.id}",
                out_of_hours=out_of_hours(session, event.tenant_id, _time(worked["from"])),
                **dimensions,
            )
        )
    if data.get("to") == "resolved":
        rows.append(
            service.row(
                event.tenant_id,
                service.TASK_COMPLETED,
                Decimal(1),
                event.created_at,
                f"task:{task['id']}:{service.TASK_COMPLETED}",
                f"outbox:{event.id}",
                out_of_hours=out_of_hours(session, event.tenant_id, event.created_at),
                **dimensions,
            )
        )
    return rows


def _time(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))
