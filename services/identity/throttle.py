"""Login throttling: too many failures for an account or from an address locks
further attempts for a while, whatever the password."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from services.core.database import affected_rows
from services.core.errors import RateLimited
from services.core.settings import Settings
from services.core.time import utcnow
from services.identity.credentials import digest
from services.identity.models import LoginAttempt

# An address may fail for several accounts (an office behind one NAT), so more room.
ADDRESS_FACTOR = 4


def email_key(email: str) -> str:
    return digest(email.strip().lower())


def check_allowed(session: Session, settings: Settings, email: str, address: str) -> None:
    since = utcnow() - timedelta(seconds=settings.login_window_seconds)
    key = email_key(email)
    if session.get_bind().dialect.name == "postgresql":
        # Parallel guesses for one account queue here until the first commits its
        # failure, so they cannot all pass the count (SQLite's BEGIN IMMEDIATE already does).
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
    by_email, by_address = session.execute(
        select(
            func.count().filter(LoginAttempt.email_key == key),
            func.count().filter(LoginAttempt.address == address),
        ).where(
            LoginAttempt.at >= since,
            or_(LoginAttempt.email_key == key, LoginAttempt.address == address),
        )
    ).one()
    if by_email >= settings.login_max_failures or by_address >= settings.login_max_failures * ADDRESS_FACTOR:
        raise RateLimited(extra={"retry_after": settings.login_window_seconds})


def record_failure(session: Session, email: str, address: str) -> None:
    session.add(LoginAttempt(email_key=email_key(email), address=address))


def clear_failures(session: Session, email: str) -> None:
    session.execute(delete(LoginAttempt).where(LoginAttempt.email_key == email_key(email)))


def purge_older_than(session: Session, settings: Settings) -> int:
    cutoff = utcnow() - timedelta(seconds=settings.login_window_seconds)
    return affected_rows(session.execute(delete(LoginAttempt).where(LoginAttempt.at < cutoff)))
