"""Which periods are due to close, and closing them: what the beat job and the CLI run.

A client's period closes at midnight of the 1st in its contract's billing timezone,
into a draft that takes late usage for the grace period, then is finalised. Each
client is closed in its own transaction, so one that fails leaves the others done, and
running again resumes (closing is idempotent).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select

from services.billing import close, contracts
from services.billing.models import Contract, Invoice, InvoiceStatus
from services.core.database import Database
from services.core.errors import DomainError
from services.core.time import month_bounds, month_of, utcnow
from tenants.scoping import AccessScope, bind

log = structlog.get_logger()


def previous_period(now: datetime, zone: str) -> str:
    start, _ = month_bounds(month_of(now, zone), zone)
    return month_of(start - timedelta(seconds=1), zone)


def due(database: Database, now: datetime | None = None) -> Iterator[tuple[uuid.UUID, str]]:
    """(client, period) pairs to close or finalise: each contract's last ended period
    without an invoice, and every draft whose grace period is over."""
    now = now or utcnow()
    with database.session() as session:
        bind(session, AccessScope.everything())
        tenants = list(session.scalars(select(Contract.tenant_id)))
        drafts = session.execute(
            select(Invoice.tenant_id, Invoice.period).where(
                Invoice.status == InvoiceStatus.DRAFT, Invoice.finalise_after <= now
            )
        ).all()
        pending = set()
        for tenant_id in tenants:
            period = previous_period(now, contracts.zone_of(session, tenant_id))
            if close.current_invoice(session, tenant_id, period) is None:
                pending.add((tenant_id, period))
    yield from sorted(pending | {(t, p) for t, p in drafts}, key=lambda pair: (pair[1], str(pair[0])))


@dataclass
class Closed:
    invoices: list[uuid.UUID] = field(default_factory=list)
    failures: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (client, why)


def close_all(
    database: Database,
    pairs: list[tuple[uuid.UUID, str]],
    grace: timedelta,
    finalise: bool = False,
    progress: Callable[[], None] | None = None,
) -> Closed:
    """Close each (client, period) in its own transaction: the invoices made or found,
    and the clients that could not be closed (retried on the next run)."""
    closed = Closed()
    for tenant_id, period in pairs:
        try:
            with database.session() as session:
                bind(session, AccessScope.everything())
                invoice = close.close(session, tenant_id, period, grace, finalise=finalise)
                if invoice is not None:
                    closed.invoices.append(invoice.id)
        except DomainError as error:
            reasons = [error.detail or error.title] + [e.message for e in error.errors]
            closed.failures.append((tenant_id, "; ".join(r for r in reasons if r)))
        except Exception:  # one client's failure must not stop the others
            log.exception("billing.close_failed", tenant_id=str(tenant_id), period=period)
            closed.failures.append((tenant_id, "unexpected error (see the log)"))
        if progress:
            progress()
    return closed
