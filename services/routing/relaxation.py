"""The relaxation sweep: a waiting task whose SLA time left fell under its queue's
``slack_below_seconds`` is stamped at risk (``work.service.request_overflow``: the same
stamp an SLA escalation sets), which sets off the step that threshold names and moves the
task ahead in its queue. Beat runs it every few seconds, for the platform; it reads the
running clocks by their indexed ``due_at`` (the clocks are the client's contract: an
agent's claim never reads them, it reads the stamp on the task).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.time import utcnow
from services.routing import policy
from services.routing.assignments import ROUTING
from services.sla.models import ClockState, SlaClock
from services.work.models import Queue, Task, TaskStatus
from services.work.service import request_overflow

BATCH = 500  # tasks stamped per queue and sweep
WAITING = (TaskStatus.QUEUED, TaskStatus.REOPENED, TaskStatus.OFFERED)


def mark_at_risk(session: Session, now: datetime | None = None) -> int:
    now = now or utcnow()
    stamped = 0
    for queue in session.scalars(select(Queue)).all():
        threshold = policy.policy_of(queue.routing_policy).slack_below
        if threshold is None:
            continue
        at_risk = session.scalars(
            select(Task)
            .where(
                Task.queue_id == queue.id,
                Task.status.in_(WAITING),
                Task.overflow_since.is_(None),
                Task.id.in_(
                    select(SlaClock.task_id).where(
                        SlaClock.state == ClockState.RUNNING,  # breached ones too: most at risk
                        SlaClock.due_at < now + threshold,
                    )
                ),
            )
            .order_by(Task.rank_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        stamped += sum(request_overflow(session, ROUTING, task) for task in at_risk)
    return stamped
