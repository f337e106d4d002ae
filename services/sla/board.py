"""The account manager's SLA board: clocks at risk, and the alerts escalations raised.

Every read goes through the session's scope (an account manager sees the tenants of
their portfolio, a client its own); choosing one tenant narrows that scope, never
widens it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Forbidden, NotFound
from services.core.time import utcnow
from services.sla.models import (
    ClockState,
    EscalationAction,
    Metric,
    PauseCause,
    SlaClock,
    SlaEscalation,
    Trigger,
)
from services.work.models import Priority, Queue, Task, TaskStatus
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import fetch, narrowed_to

# ------------------------------------------------------------------ the risk board


@dataclass(frozen=True)
class ClockAtRisk:
    clock_id: uuid.UUID
    task_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    queue_name: str
    task_title: str
    task_status: TaskStatus
    external_ref: str | None
    metric: Metric
    priority: Priority
    due_at: datetime | None
    # Wall-clock seconds to the due time, negative once overdue; None while paused.
    seconds_left: int | None
    breached: bool
    pause_cause: PauseCause | None
    paused_since: datetime | None
    # Business time the target still allows (what a paused clock resumes with).
    target_seconds_left: int


@dataclass(frozen=True)
class RiskBoard:
    running: list[ClockAtRisk]  # soonest due first, overdue ones on top
    paused: list[ClockAtRisk]  # least time left first
    at: datetime


def with_task(query: Any) -> Any:
    """A select of clocks joined to their task, queue and organisation (each scoped)."""
    return (
        query.join(Task, Task.id == SlaClock.task_id)
        .join(Queue, Queue.id == SlaClock.queue_id)
        .join(Organization, Organization.id == SlaClock.tenant_id)
    )


def at_risk(
    session: Session,
    principal: Principal,
    limit: int = 100,
    *,
    tenant_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> RiskBoard:
    """Running clocks of the visible tenants by due time (overdue first), and paused ones
    with their cause. ``tenant_id`` narrows the board to one of them."""
    principal.require(Permission.SLA_READ)
    now = now or utcnow()
    columns = (SlaClock, Task.title, Task.status, Task.external_ref, Queue.name, Organization.name)
    with narrowed_to(session, tenant_id):
        running = session.execute(
            with_task(select(*columns))
            .where(SlaClock.state == ClockState.RUNNING)
            .order_by(SlaClock.due_at, SlaClock.id)
            .limit(limit)
        ).all()
        paused = session.execute(
            with_task(select(*columns))
            .where(SlaClock.state == ClockState.PAUSED)
            .order_by(SlaClock.target_seconds - SlaClock.elapsed_seconds, SlaClock.id)
            .limit(limit)
        ).all()
    return RiskBoard(
        running=[_at_risk(row, now) for row in running],
        paused=[_at_risk(row, now) for row in paused],
        at=now,
    )


def _at_risk(row: Any, now: datetime) -> ClockAtRisk:
    clock, title, status, external_ref, queue_name, tenant_name = row
    seconds_left = None
    if clock.state is ClockState.RUNNING and clock.due_at is not None:
        seconds_left = int((clock.due_at - now).total_seconds())
    return ClockAtRisk(
        clock_id=clock.id,
        task_id=clock.task_id,
        tenant_id=clock.tenant_id,
        tenant_name=tenant_name,
        queue_name=queue_name,
        task_title=title,
        task_status=status,
        external_ref=external_ref,
        metric=clock.metric,
        priority=clock.priority,
        due_at=clock.due_at,
        seconds_left=seconds_left,
        breached=clock.breached_at is not None,
        pause_cause=clock.pause_cause,
        paused_since=clock.paused_since,
        target_seconds_left=clock.target_seconds - clock.elapsed_seconds,
    )


# ------------------------------------------------------------------ alerts


@dataclass(frozen=True)
class Alert:
    id: uuid.UUID
    created_at: datetime
    trigger: Trigger
    tenant_name: str
    task_id: uuid.UUID
    task_title: str
    external_ref: str | None
    metric: Metric
    due_at: datetime | None


def open_alerts(
    session: Session, principal: Principal, limit: int = 100, *, tenant_id: uuid.UUID | None = None
) -> list[Alert]:
    """Escalations that notify the account manager and nobody has acknowledged, newest first."""
    principal.require(Permission.SLA_READ)
    query = (
        select(
            SlaEscalation, Task.title, Task.external_ref, Organization.name, SlaClock.metric, SlaClock.due_at
        )
        .join(Task, Task.id == SlaEscalation.task_id)
        .join(SlaClock, SlaClock.id == SlaEscalation.clock_id)
        .join(Organization, Organization.id == SlaEscalation.tenant_id)
        .where(
            SlaEscalation.action == EscalationAction.NOTIFY_ACCOUNT_MANAGER,
            SlaEscalation.acknowledged_at.is_(None),
        )
        .order_by(SlaEscalation.created_at.desc(), SlaEscalation.id.desc())
        .limit(limit)
    )
    with narrowed_to(session, tenant_id):
        rows = session.execute(query).all()
    return [
        Alert(
            id=escalation.id,
            created_at=escalation.created_at,
            trigger=escalation.trigger,
            tenant_name=tenant_name,
            task_id=escalation.task_id,
            task_title=title,
            external_ref=external_ref,
            metric=metric,
            due_at=due_at,
        )
        for escalation, title, external_ref, tenant_name, metric, due_at in rows
    ]


def acknowledge(session: Session, principal: Principal, escalation_id: uuid.UUID) -> SlaEscalation:
    """The account manager has seen the alert: it leaves the open list (once; again is a no-op)."""
    principal.require(Permission.SLA_READ)
    escalation = fetch(session, SlaEscalation, escalation_id, lock=True)
    if escalation is None or escalation.action is not EscalationAction.NOTIFY_ACCOUNT_MANAGER:
        raise NotFound("no such alert")
    if principal.org_kind is not OrgKind.OPERATOR:
        raise Forbidden()  # the alerts are the account manager's, not the client's
    if escalation.acknowledged_at is None:
        escalation.acknowledged_at = utcnow()
        escalation.detail = {**escalation.detail, "acknowledged_by": str(principal.subject_id)}
        session.flush()
    return escalation
