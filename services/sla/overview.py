"""What a client's SLA overview shows: the targets in force, attainment over time and
the recent breaches (the client's page, and the chart of the account manager's board).

Every read goes through the session's scope; choosing one tenant narrows it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.time import utcnow
from services.sla import definitions, policies, reports
from services.sla.board import with_task
from services.sla.models import (
    Metric,
    Outcome,
    SlaClock,
)
from services.work.models import Priority, Queue, Task
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal

ChartGranularity = Literal["week", "month"]
PERIODS = {"week": 13, "month": 12}  # a quarter of weeks, a year of months


# ------------------------------------------------------------------ the contract's targets


@dataclass(frozen=True)
class TargetInForce:
    tenant_id: uuid.UUID
    policy_name: str
    version: int
    effective_from: datetime
    metric: Metric
    priority: Priority | None  # None: every priority
    queue_name: str | None  # None: every queue
    task_kind: str | None
    seconds: int
    business_time: bool
    calendar_name: str | None


def targets_in_force(
    session: Session, principal: Principal, now: datetime | None = None
) -> list[TargetInForce]:
    """The targets of each visible policy's version in force now, by metric then the most
    general first (the most specific target matching a task is the one that applies)."""
    principal.require(Permission.SLA_READ)
    now = now or utcnow()
    calendars = {c.id: c.name for c in definitions.list_calendars(session, principal)}
    queues = {q.id: q.name for q in session.scalars(select(Queue))}
    found: list[TargetInForce] = []
    for policy in definitions.list_policies(session, principal):
        version = policies.version_in_force(session, policy.tenant_id, now)
        if version is None:
            continue
        terms = policies.terms_of(version)
        for target in sorted(
            terms.targets, key=lambda t: (list(Metric).index(t.metric), t.specificity(), _rank(t.priority))
        ):
            found.append(
                TargetInForce(
                    tenant_id=policy.tenant_id,
                    policy_name=policy.name,
                    version=version.version,
                    effective_from=version.effective_from,
                    metric=target.metric,
                    priority=target.priority,
                    queue_name=queues.get(target.queue_id, str(target.queue_id)) if target.queue_id else None,
                    task_kind=target.task_kind,
                    seconds=target.seconds,
                    business_time=target.calendar_id is not None,
                    calendar_name=calendars.get(target.calendar_id) if target.calendar_id else None,
                )
            )
    return found


def _rank(priority: Priority | None) -> int:
    return -1 if priority is None else list(Priority).index(priority)


# ------------------------------------------------------------------ attainment over time


@dataclass(frozen=True)
class Period:
    key: str  # as reports.period_of names it: "2026-03", "2026-W10"
    start: date


@dataclass(frozen=True)
class Tally:
    met: int = 0
    breached: int = 0

    @property
    def attainment(self) -> float | None:
        total = self.met + self.breached
        return self.met / total if total else None


@dataclass(frozen=True)
class AttainmentOverTime:
    granularity: ChartGranularity
    periods: list[Period]
    metrics: list[Metric]  # those with at least one settled clock in the window
    tallies: dict[tuple[str, Metric], Tally]

    def tally(self, period: Period, metric: Metric) -> Tally:
        return self.tallies.get((period.key, metric), Tally())


def periods_until(now: datetime, granularity: ChartGranularity, count: int) -> list[Period]:
    """The last ``count`` whole weeks (from Monday) or months, the current one included."""
    today = now.astimezone(UTC).date()
    if granularity == "week":
        monday = today - timedelta(days=today.weekday())
        starts = [monday - timedelta(weeks=n) for n in reversed(range(count))]
    else:
        months = today.year * 12 + today.month - 1
        starts = [date(m // 12, m % 12 + 1, 1) for m in range(months - count + 1, months + 1)]
    return [Period(reports.period_of(start, granularity), start) for start in starts]


def _after(period: Period, granularity: ChartGranularity) -> date:
    if granularity == "week":
        return period.start + timedelta(weeks=1)
    return date(period.start.year + period.start.month // 12, period.start.month % 12 + 1, 1)


def attainment_over_time(
    session: Session,
    principal: Principal,
    granularity: ChartGranularity = "month",
    *,
    tenant_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> AttainmentOverTime:
    """Met and breached clocks per period and metric, over every visible tenant (or one),
    queue and priority: the series of the attainment chart."""
    periods = periods_until(now or utcnow(), granularity, PERIODS[granularity])
    since = datetime.combine(periods[0].start, datetime.min.time(), UTC)
    until = datetime.combine(_after(periods[-1], granularity), datetime.min.time(), UTC)
    rows = reports.attainment(
        session, principal, reports.ReportFilter(since=since, until=until, tenant_id=tenant_id), granularity
    )
    sums: dict[tuple[str, Metric], list[int]] = {}
    for row in rows:
        total = sums.setdefault((row.period, Metric(row.metric)), [0, 0])
        total[0] += row.met
        total[1] += row.breached
    return AttainmentOverTime(
        granularity=granularity,
        periods=periods,
        metrics=[m for m in Metric if any(metric is m for _period, metric in sums)],
        tallies={key: Tally(met, breached) for key, (met, breached) in sums.items()},
    )


# ------------------------------------------------------------------ breaches and tenants


@dataclass(frozen=True)
class RecentBreach:
    clock_id: uuid.UUID
    task_id: uuid.UUID
    task_title: str
    external_ref: str | None
    queue_name: str
    metric: Metric
    priority: Priority
    due_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None


def recent_breaches(session: Session, principal: Principal, limit: int = 20) -> list[RecentBreach]:
    """The latest breached clocks of the visible tenants, newest first."""
    principal.require(Permission.SLA_READ)
    rows = session.execute(
        with_task(select(SlaClock, Task.title, Task.external_ref, Queue.name, Organization.name))
        .where(SlaClock.outcome == Outcome.BREACHED)
        .order_by(SlaClock.breached_at.desc(), SlaClock.id.desc())
        .limit(limit)
    ).all()
    return [
        RecentBreach(
            clock_id=clock.id,
            task_id=clock.task_id,
            task_title=title,
            external_ref=external_ref,
            queue_name=queue_name,
            metric=clock.metric,
            priority=clock.priority,
            due_at=clock.due_at,
            breached_at=clock.breached_at,
            stopped_at=clock.stopped_at,
        )
        for clock, title, external_ref, queue_name, _tenant in rows
    ]


def client_tenants(session: Session, principal: Principal) -> list[Organization]:
    """The client organisations whose SLA the principal reads (an account manager's portfolio)."""
    principal.require(Permission.SLA_READ)
    return list(
        session.scalars(
            select(Organization)
            .where(Organization.kind == OrgKind.CLIENT)
            .order_by(Organization.name, Organization.id)
        )
    )
