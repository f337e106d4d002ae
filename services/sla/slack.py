"""A task's SLA slack: the time left before its first running clock breaches.

This is what an agent sees of the client's contract, and all of it: the clocks are the
client's rows, read for the agent's page (``acting_for_tenant``) and answered as a number
of seconds, never as the contract's targets or calendar.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.time import utcnow
from services.sla.models import ClockState, SlaClock
from services.work.models import Task
from tenants.scoping import acting_for_tenant


def seconds_left(session: Session, task: Task) -> int | None:
    """None when no clock runs (no SLA, or paused while the client holds the task)."""
    with acting_for_tenant(session, task.tenant_id):
        due = session.scalar(
            select(func.min(SlaClock.due_at)).where(
                SlaClock.task_id == task.id,
                SlaClock.state == ClockState.RUNNING,
                SlaClock.due_at.is_not(None),
            )
        )
    if due is None:
        return None
    return int((due - utcnow()).total_seconds())
