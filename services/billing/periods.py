"""Which periods are due to close, and closing them: what the beat job and the CLI run.

A client's period closes at midnight of the 1st in its contract's billing timezone,
into a draft that takes late usage for the grace period, then is finalised. Each
client is closed in its own transaction, so one that fails leaves the others done, and
running again resumes (closing is idempotent).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select

from services.billing import close
from services.billing.models import ContractVersion, Invoice, InvoiceKind, InvoiceStatus
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
        zones = {  # the timezone of each client's latest version
            tenant_id: zone
            for tenant_id, zone in session.execute(
                select(ContractVersion.tenant_id, ContractVersion.billing_timezone).order_by(
                    ContractVersion.effective_from, ContractVersion.version
                )
            )
        }
        wanted = {(tenant_id, previous_period(now, zone)) for tenant_id, zone in zones.items()}
        invoiced = {
            (tenant_id, period)
            for tenant_id, period in session.execute(
                select(Invoice.tenant_id, Invoice.period).where(
                    Invoice.kind == InvoiceKind.INVOICE,  # a void one too: reissuing is a person's call
                    Invoice.period.in_({period for _tenant, period in wanted}),
                )
            )
        }
        drafts = {
            (tenant_id, period)
            for tenant_id, period in session.execute(
                select(Invoice.tenant_id, Invoice.period).where(
                    Invoice.status == InvoiceStatus.DRAFT, Invoice.finalise_after <= now
                )
            )
        }
    yield from sorted((wanted - invoiced) | drafts, key=lambda pair: (pair[1], str(pair[0])))


@dataclass
class Closed:
    invoices: list[uuid.UUID] = field(default_factory=list)
    failures: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (client, why)


BATCH = 2000  # clients per transaction: one pass over the period's usage each (``readings``)


def close_all(
    database: Database,
    pairs: list[tuple[uuid.UUID, str]],
    grace: timedelta,
    finalise: bool = False,
    progress: Callable[[], None] | None = None,
) -> Closed:
    """Close each (client, period), a batch of clients per transaction: the invoices made
    or found, and the clients that could not be closed (retried on the next run). A batch
    that fails is closed again client by client, so one client's fault holds back no other."""
    closed = Closed()
    by_period: dict[str, list[uuid.UUID]] = defaultdict(list)
    for tenant_id, period in pairs:
        by_period[period].append(tenant_id)
    for period, tenants in sorted(by_period.items()):
        for start in range(0, len(tenants), BATCH):
            chunk = tenants[start : start + BATCH]
            if not _close_chunk(database, chunk, period, grace, finalise, closed):
                for tenant_id in chunk:
                    _close_chunk(database, [tenant_id], period, grace, finalise, closed)
            if progress:
                for _ in chunk:
                    progress()
    return closed


def _close_chunk(
    database: Database,
    tenants: list[uuid.UUID],
    period: str,
    grace: timedelta,
    finalise: bool,
    closed: Closed,
) -> bool:
    try:
        with database.session() as session:
            bind(session, AccessScope.everything())
            done = close.close_batch(session, tenants, period, grace, finalise=finalise)
            made = [invoice.id for invoice in done.invoices.values()]
    except DomainError as error:
        if len(tenants) > 1:
            return False
        reasons = [error.detail or error.title] + [e.message for e in error.errors]
        closed.failures.append((tenants[0], "; ".join(r for r in reasons if r)))
        return True
    except Exception:
        if len(tenants) > 1:
            return False
        log.exception("billing.close_failed", tenant_id=str(tenants[0]), period=period)
        closed.failures.append((tenants[0], "unexpected error (see the log)"))
        return True
    closed.invoices += made
    closed.failures += list(done.refused.items())
    return True
