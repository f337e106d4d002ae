"""Calendars and policies (both versioned), and the clocks that run on them.

A clock freezes the policy version and calendar version it started under: versions
are never edited, so a clock's due time can be recomputed years later and defended.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin, str_enum
from services.core.time import utcnow
from services.work.models import Priority
from tenants.scoping import TenantOwned


class Metric(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
    NEXT_UPDATE = "next_update"  # after each client reply


class PauseCause(enum.StrEnum):
    WAITING_ON_CLIENT = "waiting_on_client"
    WAITING_ON_THIRD_PARTY = "waiting_on_third_party"


class ClockState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class Outcome(enum.StrEnum):
    MET = "met"
    BREACHED = "breached"
    CANCELLED = "cancelled"  # the task was cancelled before the clock was settled: not counted


class SegmentKind(enum.StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    RECOMPUTE = "recompute"  # priority or queue changed: a new target under the frozen policy
    STOP = "stop"


class EscalationAction(enum.StrEnum):
    NOTIFY_ACCOUNT_MANAGER = "notify_account_manager"
    RAISE_PRIORITY = "raise_priority"
    OVERFLOW = "overflow"  # let routing widen the candidate teams


class Trigger(enum.StrEnum):
    WARNING = "warning"
    BREACH = "breach"


class SlaCalendar(IdMixin, TenantOwned, Base):
    """A named business calendar of a tenant (the contract's service calendar, say)."""

    __tablename__ = "sla_calendars"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaCalendarVersion(IdMixin, TenantOwned, Base):
    __tablename__ = "sla_calendar_versions"
    __table_args__ = (UniqueConstraint("tenant_id", "calendar_id", "version"),)

    calendar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sla_calendars.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime]
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # as BusinessCalendar.from_spec takes it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaPolicy(IdMixin, TenantOwned, Base):
    """The SLA of a client's contract. One per client tenant; its targets may be per queue."""

    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaPolicyVersion(IdMixin, TenantOwned, Base):
    __tablename__ = "sla_policy_versions"
    __table_args__ = (UniqueConstraint("tenant_id", "policy_id", "version"),)

    policy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sla_policies.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime]
    calendar_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sla_calendars.id"))
    warn_at_percent: Mapped[int] = mapped_column(Integer)
    pause_on: Mapped[list[str]] = mapped_column(JSON)  # PauseCause values
    # [{"metric", "priority"|None, "queue_id"|None, "task_kind"|None, "minutes", "business_time",
    #   "calendar_id"|None}], the most specific match wins (see policies.target_for).
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    escalations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"on", "metric"|None, "action"}]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaClock(IdMixin, TenantOwned, Base):
    """One metric of one task. ``elapsed_seconds`` is the business time used up to
    ``running_since`` (or to the pause or stop); the sweep reads only ``due_at`` and
    ``warn_at`` through the two partial indexes below."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("tenant_id", "task_id", "metric", "cycle"),
        Index(
            "ix_sla_clocks_due",
            "due_at",
            postgresql_where=text("state = 'running' AND breached_at IS NULL"),
            sqlite_where=text("state = 'running' AND breached_at IS NULL"),
        ),
        Index(
            "ix_sla_clocks_warn",
            "warn_at",
            postgresql_where=text("state = 'running' AND warned_at IS NULL"),
            sqlite_where=text("state = 'running' AND warned_at IS NULL"),
        ),
        Index("ix_sla_clocks_tenant_id_settled_at", "tenant_id", "settled_at"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    queue_id: Mapped[uuid.UUID]
    metric: Mapped[Metric] = mapped_column(str_enum(Metric, 16))
    cycle: Mapped[int] = mapped_column(Integer, default=0)  # next_update: 1, 2... per client reply
    priority: Mapped[Priority] = mapped_column(str_enum(Priority, 16))
    policy_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sla_policy_versions.id"))
    calendar_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sla_calendar_versions.id"))
    target_seconds: Mapped[int] = mapped_column(Integer)
    warn_seconds: Mapped[int] = mapped_column(Integer)
    state: Mapped[ClockState] = mapped_column(str_enum(ClockState, 8))
    started_at: Mapped[datetime]
    running_since: Mapped[datetime | None]
    elapsed_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    pause_cause: Mapped[PauseCause | None] = mapped_column(str_enum(PauseCause, 32))
    paused_since: Mapped[datetime | None]
    # Business time spent paused, by cause (what the client's side held).
    paused_client_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    paused_third_party_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    due_at: Mapped[datetime | None]  # None while paused
    warn_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    outcome: Mapped[Outcome | None] = mapped_column(str_enum(Outcome, 16))
    # When the outcome became known (stop if met, breach if breached): the report's period.
    settled_at: Mapped[datetime | None]


class SlaClockSegment(IdMixin, TenantOwned, Base):
    """One entry of a clock's append-only log: the evidence behind its due time."""

    __tablename__ = "sla_clock_segments"
    __table_args__ = (Index("ix_sla_clock_segments_clock_id_id", "clock_id", "id"),)

    clock_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sla_clocks.id", ondelete="CASCADE"))
    kind: Mapped[SegmentKind] = mapped_column(str_enum(SegmentKind, 16))
    at: Mapped[datetime]
    cause: Mapped[str | None] = mapped_column(String(32))  # pause cause, or what a stop or recompute was
    elapsed_seconds: Mapped[int] = mapped_column(BigInteger)  # business time used, at ``at``
    target_seconds: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime | None]  # as computed at ``at``


class SlaEscalation(IdMixin, TenantOwned, Base):
    """An escalation rule that a warning or breach set off. One that changes the task is
    applied after the sweep's commit, in its own transaction (``escalations.apply_pending``)."""

    __tablename__ = "sla_escalations"
    __table_args__ = (
        Index("ix_sla_escalations_tenant_id_created_at", "tenant_id", "created_at"),
        Index(
            "ix_sla_escalations_pending",
            "id",
            postgresql_where=text("applied_at IS NULL"),
            sqlite_where=text("applied_at IS NULL"),
        ),
    )

    clock_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sla_clocks.id", ondelete="CASCADE"))
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    trigger: Mapped[Trigger] = mapped_column(str_enum(Trigger, 8))
    action: Mapped[EscalationAction] = mapped_column(str_enum(EscalationAction, 32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]  # by the account manager, for notify_account_manager
    applied_at: Mapped[datetime | None]  # None: a task change still to make
