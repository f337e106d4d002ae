"""Users, API clients and the credentials they hold.

Login identifiers (email, client_id, token and session hashes) are unique across
the platform because they are looked up before the tenant is known.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin
from services.core.time import utcnow
from tenants.scoping import TenantOwned


class User(IdMixin, TenantOwned, Base):
    """A person; ``tenant_id`` is the organisation that owns the account."""

    __tablename__ = "users"
    readable_while_authenticating = True

    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiClient(IdMixin, TenantOwned, Base):
    """A machine client using the OAuth 2.0 client-credentials grant."""

    __tablename__ = "api_clients"
    readable_while_authenticating = True

    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of a 256-bit random secret: high entropy makes a slow hash unnecessary.
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(1000))  # space-separated, as in OAuth
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class AccessToken(IdMixin, TenantOwned, Base):
    __tablename__ = "access_tokens"
    __table_args__ = (Index("ix_access_tokens_expires_at", "expires_at"),)
    readable_while_authenticating = True

    api_client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_clients.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(1000))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class WebSession(IdMixin, TenantOwned, Base):
    """A browser session; the cookie holds a random token, the table its hash."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires_at", "expires_at"),)
    readable_while_authenticating = True

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    user_agent: Mapped[str | None] = mapped_column(String(400))


class LoginAttempt(IdMixin, Base):
    """Failed logins, counted per account and per address to slow guessing.

    Not tenant data: it is written before anybody is authenticated and holds a
    hash of the email, never the email itself.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_key_at", "email_key", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    email_key: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
