"""Finalising an invoice: its number and its dates (its lines and parties are frozen from now).

Numbers are gap-free per issuing entity and year (``FR-2026-000123``): the entity's
row is locked while the number is taken, in the transaction that finalises the invoice,
so a number is given once, and only to an invoice that is committed with it (a rolled
back finalisation gives its number back with the lock).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing.models import Invoice, InvoiceStatus, IssuingEntity
from services.core.time import utcnow

if TYPE_CHECKING:
    from services.billing.close import Computed


def next_number(session: Session, entity_id: object, year: int) -> str:
    entity = session.scalars(
        select(IssuingEntity)
        .where(IssuingEntity.id == entity_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if entity.number_year != year:
        entity.number_year, entity.last_number = year, 0
    entity.last_number += 1
    return f"{entity.code}-{year}-{entity.last_number:06d}"


def finalise(session: Session, invoice: Invoice, computed: Computed) -> None:
    """Number and date a draft just recomputed; from now on nothing of it changes."""
    now = utcnow()
    issued_on = now.astimezone(ZoneInfo(invoice.timezone)).date()
    invoice.number = next_number(session, computed.entity.id, issued_on.year)
    invoice.status = InvoiceStatus.PENDING_SYNC
    invoice.finalised_at = now
    invoice.issued_on = issued_on
    invoice.due_on = issued_on + timedelta(days=invoice.payment_terms_days)
    session.flush()
