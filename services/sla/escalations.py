"""What a warning or breach sets off: its outbox event, and the policy's escalation rules.

Rules are recorded where the clock fires (the sweep, or a task change that finds its
clock already past due); the ones that change the task (``raise_priority``,
``overflow``) are applied afterwards by ``apply_pending``, in their own transaction,
which locks the task before its clocks as every task change does: a sweep holding
clock locks never waits for a task lock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.time import utcnow
from services.notify import outbox
from services.sla import policies
from services.sla.models import EscalationAction, Metric, SlaEscalation, Trigger
from services.work import service as work
from services.work.history import Actor
from services.work.models import Task, TaskStatus
from tenants.scoping import fetch

ESCALATOR = Actor.system("SLA escalation")
PENDING_BATCH = 100
SETTLED = (TaskStatus.RESOLVED, TaskStatus.CLOSED, TaskStatus.CANCELLED)
EVENT_TYPES = {Trigger.WARNING: "sla.warning", Trigger.BREACH: "sla.breached"}


def event_data(clock: Any, at: datetime) -> dict[str, Any]:
    """The data of an ``sla.warning`` or ``sla.breached`` event (the PostgreSQL sweep
    builds the same object in SQL)."""
    return {
        "clock_id": str(clock.id),
        "task_id": str(clock.task_id),
        "queue_id": str(clock.queue_id),
        "metric": Metric(clock.metric).value,
        "cycle": clock.cycle,
        "priority": clock.priority.value,
        "target_seconds": clock.target_seconds,
        "due_at": iso(clock.due_at),
        "at": iso(at),
    }


def event_row(clock: Any, trigger: Trigger, at: datetime) -> dict[str, Any]:
    return outbox.row(clock.tenant_id, EVENT_TYPES[trigger], clock.task_id, event_data(clock, at))


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def record(session: Session, trigger: Trigger, fired: list[Any]) -> int:
    """The escalation rules of each fired clock's policy, once per task, trigger and action
    (two clocks of a task warning together raise its priority once). ``fired``: clocks, or
    the sweep's rows with their id, tenant_id, task_id, metric, due_at, policy_version_id."""
    done: set[tuple[uuid.UUID, EscalationAction]] = set()
    now = utcnow()
    for clock in fired:
        terms = policies.terms_by_id(session, clock.policy_version_id)
        for action in terms.escalations_for(trigger, Metric(clock.metric)):
            if (clock.task_id, action) in done:
                continue
            done.add((clock.task_id, action))
            changes_task = action is not EscalationAction.NOTIFY_ACCOUNT_MANAGER
            session.add(
                SlaEscalation(
                    tenant_id=clock.tenant_id,
                    clock_id=clock.id,
                    task_id=clock.task_id,
                    trigger=trigger,
                    action=action,
                    detail={"metric": Metric(clock.metric).value, "due_at": iso(clock.due_at)},
                    applied_at=None if changes_task else now,
                )
            )
    return len(done)


def apply_pending(session: Session, batch: int = PENDING_BATCH) -> int:
    """Make the task changes of recorded escalations (the caller commits)."""
    pending = session.scalars(
        select(SlaEscalation)
        .where(SlaEscalation.applied_at.is_(None))
        .order_by(SlaEscalation.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for escalation in pending:
        task = fetch(session, Task, escalation.task_id, lock=True)
        changed = False
        if task is not None and task.status not in SETTLED:
            if escalation.action is EscalationAction.RAISE_PRIORITY:
                before = task.priority.value
                changed = work.raise_priority(session, ESCALATOR, task)
                escalation.detail = {**escalation.detail, "priority": [before, task.priority.value]}
            else:
                changed = work.request_overflow(session, ESCALATOR, task)
        escalation.detail = {**escalation.detail, "changed": changed}
        escalation.applied_at = utcnow()
    return len(pending)
