"""Reading calendars and contract policies as clocks use them: frozen versions.

Versions are immutable rows, so what a clock needs from them (``Terms``, a
``BusinessCalendar``) is cached per version id in the process. Defining them is
``definitions.py``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from services.sla.calendars import BusinessCalendar
from services.sla.models import (
    EscalationAction,
    Metric,
    PauseCause,
    SlaCalendarVersion,
    SlaPolicyVersion,
    Trigger,
)
from services.work.models import Priority
from tenants.scoping import ScopedRead, config_epoch, fetch, narrowed_to

# ------------------------------------------------------------------ frozen terms


@dataclass(frozen=True)
class Target:
    metric: Metric
    priority: Priority | None
    queue_id: uuid.UUID | None
    task_kind: str | None
    seconds: int
    calendar_id: uuid.UUID | None  # None: calendar time

    def specificity(self) -> int:
        return (4 if self.queue_id else 0) + (2 if self.task_kind else 0) + (1 if self.priority else 0)


@dataclass(frozen=True)
class Escalation:
    on: Trigger
    metric: Metric | None
    action: EscalationAction


@dataclass(frozen=True)
class Terms:
    """A policy version as clocks use it."""

    version_id: uuid.UUID
    warn_at_percent: int
    pause_on: frozenset[PauseCause]
    targets: tuple[Target, ...]
    escalations: tuple[Escalation, ...]

    def target_for(
        self, metric: Metric, priority: Priority, queue_id: uuid.UUID, task_kind: str
    ) -> Target | None:
        """The most specific target that matches: queue, then task kind, then priority."""
        matching = [
            t
            for t in self.targets
            if t.metric is metric
            and t.priority in (None, priority)
            and t.queue_id in (None, queue_id)
            and t.task_kind in (None, task_kind)
        ]
        return max(matching, key=Target.specificity, default=None)

    def warn_seconds(self, target_seconds: int) -> int:
        return math.ceil(target_seconds * self.warn_at_percent / 100)

    def escalations_for(self, trigger: Trigger, metric: Metric) -> list[EscalationAction]:
        return [e.action for e in self.escalations if e.on is trigger and e.metric in (None, metric)]


_terms_cache: dict[uuid.UUID, Terms] = {}


def terms_of(version: SlaPolicyVersion) -> Terms:
    cached = _terms_cache.get(version.id)
    if cached is None:
        cached = _terms_cache[version.id] = Terms(
            version_id=version.id,
            warn_at_percent=version.warn_at_percent,
            pause_on=frozenset(PauseCause(c) for c in version.pause_on),
            targets=tuple(
                Target(
                    metric=Metric(t["metric"]),
                    priority=Priority(t["priority"]) if t.get("priority") else None,
                    queue_id=uuid.UUID(t["queue_id"]) if t.get("queue_id") else None,
                    task_kind=t.get("task_kind"),
                    seconds=int(t["minutes"]) * 60,
                    calendar_id=uuid.UUID(t["calendar_id"]) if t.get("calendar_id") else None,
                )
                for t in version.targets
            ),
            escalations=tuple(
                Escalation(
                    Trigger(e["on"]),
                    Metric(e["metric"]) if e.get("metric") else None,
                    EscalationAction(e["action"]),
                )
                for e in version.escalations
            ),
        )
    return cached


def terms_by_id(session: Session, version_id: uuid.UUID) -> Terms:
    cached = _terms_cache.get(version_id)
    if cached is not None:
        return cached
    version = fetch(session, SlaPolicyVersion, version_id)
    if version is None:
        raise LookupError(f"policy version {version_id} is not readable")
    return terms_of(version)


def version_in_force(session: Session, tenant_id: uuid.UUID, at: datetime) -> SlaPolicyVersion | None:
    """The tenant's policy version in force at ``at``, if it has a policy."""
    with narrowed_to(session, tenant_id):
        return session.scalars(_IN_FORCE, {"at": at}).first()


# Built once: it runs for every task taken in.
_IN_FORCE = (
    select(SlaPolicyVersion)
    .where(SlaPolicyVersion.effective_from <= bindparam("at"))
    .order_by(SlaPolicyVersion.effective_from.desc(), SlaPolicyVersion.version.desc())
    .limit(1)
)


# The tenant's policy versions as (effective from, version, id), read as rows (ScopedRead).
_VERSIONS = ScopedRead(
    select(
        SlaPolicyVersion.__table__.c.effective_from,
        SlaPolicyVersion.__table__.c.version,
        SlaPolicyVersion.__table__.c.id,
    )
)
Timeline = list[tuple[datetime, int, uuid.UUID]]
# Tenant -> (configuration epoch, its policy versions): read once per epoch, not per task.
_timelines: dict[uuid.UUID, tuple[int, Timeline]] = {}
MAX_TIMELINES = 4096


def terms_in_force(session: Session, tenant_id: uuid.UUID, at: datetime) -> Terms | None:
    """The terms of the tenant's policy version in force at ``at``. Every task taken in
    asks: where the transaction knows the tenant's configuration epoch, the versions
    cached under it are current and nothing is read (``scoping.config_epoch``)."""
    epoch = config_epoch(session, tenant_id)
    cached = _timelines.get(tenant_id)
    timeline: Timeline
    if epoch is not None and cached is not None and cached[0] == epoch:
        timeline = cached[1]
    else:
        with narrowed_to(session, tenant_id):
            timeline = [(row.effective_from, row.version, row.id) for row in _VERSIONS.execute(session)]
        if epoch is not None:  # read after the epoch: at least as new as it
            if len(_timelines) >= MAX_TIMELINES:
                _timelines.clear()
            _timelines[tenant_id] = (epoch, timeline)
    # The latest to take effect by then; of two from the same time, the later version.
    in_force = max((entry for entry in timeline if entry[0] <= at), default=None)
    return terms_by_id(session, in_force[2]) if in_force is not None else None


def calendar_version_in_force(
    session: Session, calendar_id: uuid.UUID, at: datetime
) -> SlaCalendarVersion | None:
    """The version of the calendar in force at ``at`` (else its first: a clock started
    before a calendar existed runs on the calendar's earliest rules)."""
    versions = select(SlaCalendarVersion).where(SlaCalendarVersion.calendar_id == calendar_id)
    found = session.scalars(
        versions.where(SlaCalendarVersion.effective_from <= at)
        .order_by(SlaCalendarVersion.effective_from.desc(), SlaCalendarVersion.version.desc())
        .limit(1)
    ).first()
    return found or session.scalars(versions.order_by(SlaCalendarVersion.version).limit(1)).first()


class CalendarTime:
    """Plain elapsed time, for targets set in calendar time."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return start + duration

    def between(self, a: datetime, b: datetime) -> timedelta:
        return max(b - a, timedelta(0))


CALENDAR_TIME = CalendarTime()


_calendars: dict[uuid.UUID, BusinessCalendar] = {}


def business_calendar(session: Session, version_id: uuid.UUID | None) -> BusinessCalendar | CalendarTime:
    """The arithmetic of a clock: its frozen calendar version, or calendar time."""
    if version_id is None:
        return CALENDAR_TIME
    calendar = _calendars.get(version_id)
    if calendar is None:
        version = fetch(session, SlaCalendarVersion, version_id)
        if version is None:
            raise LookupError(f"calendar version {version_id} is not readable")
        if len(_calendars) > 1024:
            _calendars.clear()
        calendar = _calendars[version_id] = BusinessCalendar.from_spec(version.spec)
    return calendar


def out_of_hours(session: Session, tenant_id: uuid.UUID, at: datetime) -> bool:
    """Whether ``at`` falls outside the service calendar of the tenant's contract SLA (no
    calendar, or calendar time: never out of hours). Metering marks such work."""
    version = version_in_force(session, tenant_id, at)
    if version is None or version.calendar_id is None:
        return False
    with narrowed_to(session, tenant_id):
        calendar_version = calendar_version_in_force(session, version.calendar_id, at)
        calendar = business_calendar(session, calendar_version.id if calendar_version else None)
    return isinstance(calendar, BusinessCalendar) and not calendar.is_open(at)
