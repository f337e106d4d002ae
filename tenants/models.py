"""Organisations and who belongs to them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, synonym

from services.core.database import Base, IdMixin, str_enum
from services.core.time import utcnow
from tenants.principal import OrgKind, Role
from tenants.scoping import TenantOwned


class Organization(IdMixin, TenantOwned, Base):
    """A client, a provider or the operator. An organisation is its own tenant."""

    __tablename__ = "organizations"
    # Authentication reads the principal's own organisation (kind, locale).
    readable_while_authenticating = True

    tenant_id: Mapped[uuid.UUID] = synonym("id")
    kind: Mapped[OrgKind] = mapped_column(str_enum(OrgKind, 16))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    default_locale: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217
    # Per-file attachment limit of a client, under the platform's (None: the platform's).
    attachment_max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # A new value whenever configuration that processes cache changes (SLA policy versions),
    # set by a PostgreSQL trigger (migration 0007; ``scoping.config_epoch``).
    config_epoch: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(IdMixin, TenantOwned, Base):
    """A role a user holds in an organisation (the tenant)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", "role"),)
    readable_while_authenticating = True

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PortfolioAssignment(IdMixin, TenantOwned, Base):
    """An account manager looks after a client tenant."""

    __tablename__ = "portfolio_assignments"
    __table_args__ = (UniqueConstraint("tenant_id", "account_manager_id"),)
    readable_while_authenticating = True

    account_manager_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
