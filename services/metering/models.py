"""The usage ledger: one immutable row per billable fact.

A correction is a new event that reverses another (``reverses_id``), never an update
or a delete: PostgreSQL refuses both (revision 0009), except when the tenant itself is
deleted. ``recorded_at`` is when the ledger learnt the fact: an invoice covers the events
recorded up to its cut-off, so one recorded later lands on the next as an adjustment.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin, Micros
from services.core.time import utcnow
from tenants.scoping import TenantOwned


class UsageEvent(IdMixin, TenantOwned, Base):
    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_usage_events_tenant_id_occurred_at", "tenant_id", "occurred_at"),
        Index("ix_usage_events_tenant_id_recorded_at", "tenant_id", "recorded_at"),
    )

    metric: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Micros())
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What a rate card prices by (kind, language) and what surcharges look at.
    queue_id: Mapped[uuid.UUID | None]
    task_kind: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    out_of_hours: Mapped[bool] = mapped_column(default=False)
    task_id: Mapped[uuid.UUID | None]
    source: Mapped[str] = mapped_column(String(200))  # "outbox:<event id>", "api", "manual"...
    reason: Mapped[str | None] = mapped_column(String(500))  # why a manual item or a correction
    idempotency_key: Mapped[str] = mapped_column(String(255))
    body_hash: Mapped[str] = mapped_column(String(64))  # the same key with another body is refused
    reverses_id: Mapped[uuid.UUID | None]
    # A manual item's own price (major units, sub-minor precision) in the contract's currency.
    unit_price: Mapped[Decimal | None] = mapped_column(Micros())
    currency: Mapped[str | None] = mapped_column(String(3))
    created_by: Mapped[uuid.UUID | None]
