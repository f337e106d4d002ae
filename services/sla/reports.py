"""Attainment and breaches, read from the clocks themselves (their outcome and log).

A clock counts in the period in which its outcome became known (``settled_at``):
when it stopped within target (met), or the moment it went past its due time
(breached), even if the task is still open. Cancelled tasks count in neither.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.errors import FieldError, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from services.core.time import utcnow
from services.sla.models import Metric, Outcome, SlaClock, SlaClockSegment
from services.sla.schemas import AttainmentRow, ClockWithLog, SegmentOut
from services.work.models import Priority
from tenants.principal import Permission, Principal
from tenants.scoping import narrowed_to

Granularity = Literal["day", "week", "month"]
MAX_DAYS = 732


@dataclass(frozen=True)
class ReportFilter:
    since: datetime | None = None
    until: datetime | None = None
    tenant_id: uuid.UUID | None = None
    queue_id: uuid.UUID | None = None
    metric: Metric | None = None
    priority: Priority | None = None

    def window(self) -> tuple[datetime, datetime]:
        until = self.until or utcnow()
        since = self.since or until - timedelta(days=90)
        if since >= until:
            raise ValidationFailed(errors=[FieldError("/since", "must be before until")])
        if until - since > timedelta(days=MAX_DAYS):
            raise ValidationFailed(errors=[FieldError("/since", f"at most {MAX_DAYS} days per report")])
        return since, until

    def apply(self, query: Any) -> Any:
        since, until = self.window()
        query = query.where(SlaClock.settled_at >= since, SlaClock.settled_at < until)
        for column, value in (  # the tenant narrows the session's scope instead (narrowed_to)
            (SlaClock.queue_id, self.queue_id),
            (SlaClock.metric, self.metric),
            (SlaClock.priority, self.priority),
        ):
            if value is not None:
                query = query.where(column == value)
        return query


def period_of(day: date, granularity: Granularity) -> str:
    if granularity == "day":
        return day.isoformat()
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def _settled_day(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", SlaClock.settled_at))
    return func.date(SlaClock.settled_at)


def attainment(
    session: Session, principal: Principal, where: ReportFilter, granularity: Granularity = "month"
) -> list[AttainmentRow]:
    """Met and breached clocks, and time paused by cause, per period, tenant, queue,
    metric and priority (a GROUP BY over the tenant index; periods folded from days)."""
    principal.require(Permission.SLA_READ)
    return attainment_of(session, where, granularity)


def attainment_of(
    session: Session, where: ReportFilter, granularity: Granularity = "month"
) -> list[AttainmentRow]:
    """``attainment`` for the platform's own use (billing's SLA credits): the same numbers."""
    day = _settled_day(session).label("day")
    query = where.apply(
        select(
            day,
            SlaClock.tenant_id,
            SlaClock.queue_id,
            SlaClock.metric,
            SlaClock.priority,
            SlaClock.outcome,
            func.count(),
            func.sum(SlaClock.paused_client_seconds),
            func.sum(SlaClock.paused_third_party_seconds),
        ).where(SlaClock.outcome.in_([Outcome.MET, Outcome.BREACHED]))
    ).group_by(
        day, SlaClock.tenant_id, SlaClock.queue_id, SlaClock.metric, SlaClock.priority, SlaClock.outcome
    )
    totals: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    with narrowed_to(session, where.tenant_id):
        found = session.execute(query).all()
    for settled, tenant_id, queue_id, metric, priority, outcome, count, client, third in found:
        settled_day = settled if isinstance(settled, date) else date.fromisoformat(str(settled))
        key = (period_of(settled_day, granularity), tenant_id, queue_id, metric, priority)
        total = totals[key]
        total[0 if outcome is Outcome.MET else 1] += count
        total[2] += int(client or 0)
        total[3] += int(third or 0)
    rows = [
        AttainmentRow(
            period=period,
            tenant_id=tenant_id,
            queue_id=queue_id,
            metric=metric,
            priority=priority,
            met=met,
            breached=breached,
            attainment=round(met / (met + breached), 4) if met + breached else None,
            paused_waiting_on_client_seconds=client,
            paused_waiting_on_third_party_seconds=third,
        )
        for (period, tenant_id, queue_id, metric, priority), (met, breached, client, third) in totals.items()
    ]
    return sorted(rows, key=lambda r: (r.period, str(r.tenant_id), str(r.queue_id), r.metric, r.priority))


def breaches(
    session: Session, principal: Principal, where: ReportFilter, page: PageRequest
) -> tuple[list[ClockWithLog], str | None]:
    """Breached clocks, each with its whole log as the evidence."""
    principal.require(Permission.SLA_READ)
    return breaches_of(session, where, page)


def breaches_of(
    session: Session, where: ReportFilter, page: PageRequest
) -> tuple[list[ClockWithLog], str | None]:
    query = where.apply(select(SlaClock).where(SlaClock.outcome == Outcome.BREACHED))
    with narrowed_to(session, where.tenant_id):
        clocks, next_cursor = fetch_page(session, query, SlaClock.id, page)
    return with_logs(session, clocks), next_cursor


def with_logs(session: Session, clocks: Sequence[SlaClock]) -> list[ClockWithLog]:
    logs: dict[uuid.UUID, list[SegmentOut]] = defaultdict(list)
    if clocks:
        segments = session.scalars(
            select(SlaClockSegment)
            .where(SlaClockSegment.clock_id.in_([c.id for c in clocks]))
            .order_by(SlaClockSegment.clock_id, SlaClockSegment.id)
        )
        for segment in segments:
            logs[segment.clock_id].append(SegmentOut.model_validate(segment))
    return [ClockWithLog(**_clock_fields(c), log=logs[c.id]) for c in clocks]


def _clock_fields(clock: SlaClock) -> dict[str, Any]:
    return {name: getattr(clock, name) for name in ClockWithLog.model_fields if name != "log"}


# ------------------------------------------------------------------ CSV


ATTAINMENT_COLUMNS = list(AttainmentRow.model_fields)
BREACH_COLUMNS = [
    "clock_id",
    "tenant_id",
    "task_id",
    "queue_id",
    "metric",
    "cycle",
    "priority",
    "target_seconds",
    "elapsed_seconds",
    "started_at",
    "due_at",
    "breached_at",
    "stopped_at",
    "paused_waiting_on_client_seconds",
    "paused_waiting_on_third_party_seconds",
    "log",
]


def attainment_csv(rows: list[AttainmentRow]) -> str:
    return _csv(ATTAINMENT_COLUMNS, [row.model_dump(mode="json") for row in rows])


def breaches_csv(clocks: list[ClockWithLog]) -> str:
    """One line per breach; its log in one column, entries separated by " | "."""
    return _csv(
        BREACH_COLUMNS,
        [
            {
                "clock_id": str(c.id),
                "tenant_id": str(c.tenant_id),
                "task_id": str(c.task_id),
                "queue_id": str(c.queue_id),
                "metric": c.metric.value,
                "cycle": c.cycle,
                "priority": c.priority.value,
                "target_seconds": c.target_seconds,
                "elapsed_seconds": c.elapsed_seconds,
                "started_at": _iso(c.started_at),
                "due_at": _iso(c.due_at),
                "breached_at": _iso(c.breached_at),
                "stopped_at": _iso(c.stopped_at),
                "paused_waiting_on_client_seconds": c.paused_client_seconds,
                "paused_waiting_on_third_party_seconds": c.paused_third_party_seconds,
                "log": " | ".join(
                    f"{s.kind.value}{' ' + s.cause if s.cause else ''} {_iso(s.at)} "
                    f"elapsed={s.elapsed_seconds}s due={_iso(s.due_at)}"
                    for s in c.log
                ),
            }
            for c in clocks
        ],
    )


def _iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()
