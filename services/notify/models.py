"""The transactional outbox, webhook endpoints, and each delivery with its attempts."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, FetchedValue, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin, str_enum
from services.core.time import utcnow
from tenants.scoping import TenantOwned


class OutboxEvent(IdMixin, TenantOwned, Base):
    """A state change, written in the same transaction as the change itself.

    The id (UUIDv7, monotonic in the process) orders a transaction's events; consumers
    read them in commit order, each from its own cursor (``consumers``).
    """

    __tablename__ = "outbox_events"
    granted_by = "write"  # a provider's change to a task it works emits the client's events
    __table_args__ = (Index("ix_outbox_events_commit_order_id", "commit_order", "id"),)

    # No key to organizations and no index of its own (revision 0006): read by id only, and a
    # key would check, and lock FOR KEY SHARE, the tenant's row once for every event written.
    tenant_id: Mapped[uuid.UUID] = mapped_column()
    type: Mapped[str] = mapped_column(String(64))  # task.created, task.status_changed...
    subject_id: Mapped[uuid.UUID]  # the task (or other object) the event is about: the ordering key
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # PostgreSQL: the writing transaction's id, set by the column's default (revision 0009);
    # SQLite orders by rowid instead. See ``consumers``. Never read back after an insert
    # (``eager_defaults``): RETURNING needs the read that a provider's write-only grant refuses.
    commit_order: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())
    __mapper_args__ = {"eager_defaults": False}


class OutboxCursor(Base):
    """How far one consumer of the outbox has read (platform bookkeeping, no tenant)."""

    __tablename__ = "outbox_cursors"

    consumer: Mapped[str] = mapped_column(String(32), primary_key=True)
    after_order: Mapped[int] = mapped_column(BigInteger)
    after_id: Mapped[uuid.UUID]
    updated_at: Mapped[datetime]


class WebhookEndpoint(IdMixin, TenantOwned, Base):
    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every type
    enabled: Mapped[bool] = mapped_column(default=True)
    # Secrets are sealed with the platform key; the previous one stays valid during a rotation.
    sealed_secret: Mapped[str] = mapped_column(Text)
    sealed_previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # gave up after the last try; redeliver by hand


class WebhookDelivery(IdMixin, TenantOwned, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_subject", "endpoint_id", "subject_id", "event_id"),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[uuid.UUID]
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, 16), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]  # a relay is sending it; others keep off until then
    lease_token: Mapped[uuid.UUID | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(IdMixin, TenantOwned, Base):
    """One HTTP try of a delivery: the history the client sees."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
