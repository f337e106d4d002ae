"""Provider teams, their agents, and the engagements that say which team serves which
client queue."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin, TimestampMixin, str_enum
from services.core.time import utcnow
from tenants.scoping import TenantOwned


class Presence(enum.StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class EngagementRank(enum.StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    OVERFLOW = "overflow"


class Team(IdMixin, TenantOwned, TimestampMixin, Base):
    """A provider's team: where it works from, when, in which languages and skills."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "name"), UniqueConstraint("tenant_id", "id"))

    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))  # where the work is done: residency
    timezone: Mapped[str] = mapped_column(String(64))
    calendar: Mapped[dict[str, Any]] = mapped_column(JSON)  # a BusinessCalendar spec: the staffed hours
    languages: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # [{"code", "level"}]
    skills: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"name", "level"}]
    hourly_cost_amount: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units
    hourly_cost_currency: Mapped[str] = mapped_column(String(3))


class Agent(IdMixin, TenantOwned, TimestampMixin, Base):
    """A provider's user with the agent role, in one team. Languages, skills and calendar
    override the team's when set; capacity is per task kind (``*``: any other kind)."""

    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        ForeignKeyConstraint(["tenant_id", "team_id"], ["teams.tenant_id", "teams.id"], ondelete="CASCADE"),
        Index("ix_agents_team_id", "team_id"),
    )
    # Authentication reads an agent's team to resolve the queues it is engaged on.
    readable_while_authenticating = True

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    team_id: Mapped[uuid.UUID]
    languages: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    skills: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    calendar: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # their own shift and leave days
    capacity: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # The name clients read on what the agent writes and does, if the provider shows one
    # (a first name, an alias); None: clients read that the provider acted, never who.
    public_name: Mapped[str | None] = mapped_column(String(80))
    presence: Mapped[Presence] = mapped_column(str_enum(Presence, 8), default=Presence.OFFLINE)
    # A heartbeat keeps online or away alive until then; past it the agent is offline.
    presence_expires_at: Mapped[datetime | None]
    last_assigned_at: Mapped[datetime | None]  # fairness: the least recently assigned goes first


class Engagement(IdMixin, TenantOwned, Base):
    """A team serves a client's queue. The client's row (its tenant), read by the provider
    too (``shared_with``); an operator creates and revokes it."""

    __tablename__ = "engagements"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "queue_id"], ["queues.tenant_id", "queues.id"], ondelete="CASCADE"
        ),
        Index(
            "uq_engagements_active",
            "tenant_id",
            "queue_id",
            "team_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
        Index("ix_engagements_provider_id", "provider_id"),
    )
    readable_while_authenticating = True  # a provider principal's grants are read from here
    shared_with = "provider_id"

    queue_id: Mapped[uuid.UUID]
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    rank: Mapped[EngagementRank] = mapped_column(str_enum(EngagementRank, 16), default=EngagementRank.PRIMARY)
    share: Mapped[int | None] = mapped_column(Integer)  # relative weight among the tenants a team serves
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
