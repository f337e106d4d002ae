"""Who holds a task (assignments), and why routing decided what it did (decisions)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKeyConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin, str_enum
from services.core.time import utcnow
from tenants.scoping import TenantOwned


class AssignedBy(enum.StrEnum):
    PULL = "pull"  # the agent asked for their next task
    PUSH = "push"  # the agent accepted an offer
    MANUAL = "manual"  # a team lead or an operator chose the agent
    REOPENED = "reopened"  # back to the agent who had it, who was online and free


class AssignmentEnd(enum.StrEnum):
    RESOLVED = "resolved"
    RELEASED = "released"  # back to the queue
    REASSIGNED = "reassigned"
    CANCELLED = "cancelled"
    ESCALATED = "escalated"


class TaskAssignment(IdMixin, TenantOwned, Base):
    """One agent holding one task, from assignment to its end. At most one open per task:
    a unique index backs it, whatever the code does (``uq_task_assignments_open``)."""

    __tablename__ = "task_assignments"
    granted_by = "task"
    grant_private_to = "provider_id"  # another provider on the queue never reads who holds it
    shared_with = "provider_id"  # the provider reads its own (fairness counts them), not the task
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "task_id"], ["tasks.tenant_id", "tasks.id"], ondelete="CASCADE"),
        Index(
            "uq_task_assignments_open",
            "tenant_id",
            "task_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
        Index("ix_task_assignments_task_id_id", "task_id", "id"),
        Index("ix_task_assignments_agent_id_assigned_at", "agent_id", "assigned_at"),  # sticky pull
        Index("ix_task_assignments_team_id_assigned_at", "team_id", "assigned_at"),  # fairness
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(index=True)  # the task's: see the foreign key
    task_id: Mapped[uuid.UUID]
    agent_id: Mapped[uuid.UUID]
    team_id: Mapped[uuid.UUID]
    provider_id: Mapped[uuid.UUID]
    assigned_by: Mapped[AssignedBy] = mapped_column(str_enum(AssignedBy, 16))
    actor_id: Mapped[uuid.UUID | None]  # who assigned it by hand
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[AssignmentEnd | None] = mapped_column(str_enum(AssignmentEnd, 16))


class OfferStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    RESCINDED = "rescinded"  # the task was cancelled, or the agent went offline


class Offer(IdMixin, TenantOwned, Base):
    """Push mode: a task offered to one agent until ``expires_at``. At most one pending
    offer a task (a unique index backs it)."""

    __tablename__ = "offers"
    granted_by = "task"
    grant_private_to = "provider_id"  # an agent reads their own offers while engaged; no other provider
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "task_id"], ["tasks.tenant_id", "tasks.id"], ondelete="CASCADE"),
        Index(
            "uq_offers_pending",
            "tenant_id",
            "task_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_offers_pending_expires_at",
            "expires_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_offers_task_id", "task_id"),
        Index("ix_offers_agent_id", "agent_id"),
    )

    @classmethod
    def agent_rows(cls, columns: Any, agent: Any) -> Any:
        """An agent reads their own offers, also once the task went to a colleague: a late
        accept is told the offer expired."""
        return columns.agent_id.in_(agent)

    tenant_id: Mapped[uuid.UUID] = mapped_column(index=True)
    task_id: Mapped[uuid.UUID]
    agent_id: Mapped[uuid.UUID]
    team_id: Mapped[uuid.UUID]
    provider_id: Mapped[uuid.UUID]
    status: Mapped[OfferStatus] = mapped_column(str_enum(OfferStatus, 16), default=OfferStatus.PENDING)
    offered_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(64))


class RoutingDecision(IdMixin, TenantOwned, Base):
    """The trace of one routing decision on a task: the step in force, every candidate
    with the constraint it failed or its score, the winner, the time it took. The
    client's row; providers never read it (it names other providers' teams)."""

    __tablename__ = "routing_decisions"
    granted_by = "write"  # the provider's claim records the decision; it never reads one
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "task_id"], ["tasks.tenant_id", "tasks.id"], ondelete="CASCADE"),
        Index("ix_routing_decisions_task_id_id", "task_id", "id"),
        Index("ix_routing_decisions_at", "at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(index=True)
    task_id: Mapped[uuid.UUID]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # pull, manual, release
    step: Mapped[str] = mapped_column(String(160))  # the step's name (64 at most) and the claim's notes
    winner_agent_id: Mapped[uuid.UUID | None]
    winner_team_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    took_ms: Mapped[float] = mapped_column(Float, default=0.0)
