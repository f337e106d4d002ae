"""Finalising an invoice: its number and its dates (its lines and parties are frozen from now).

Numbers are gap-free per issuing entity and year (``FR-2026-000123``): the counter of
that year is locked while the number is taken, in the transaction that finalises the invoice,
so a number is given once, and only to an invoice that is committed with it (a rolled
back finalisation gives its number back with the lock).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.billing.models import Invoice, InvoiceNumberCounter, InvoiceStatus, IssuingEntity
from services.core.time import utcnow


def next_number(session: Session, entity_id: uuid.UUID, year: int) -> str:
    return next_numbers(session, entity_id, year, 1)[0]


def next_numbers(session: Session, entity_id: uuid.UUID, year: int, count: int) -> list[str]:
    """``count`` consecutive numbers of the entity for ``year``, its counter locked until
    the transaction ends (made at the year's first number: of two making it at once, the
    second waits for the first's and counts on)."""
    entity = session.get(IssuingEntity, entity_id)
    assert entity is not None
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(InvoiceNumberCounter)
        .values(issuing_entity_id=entity_id, year=year, last_number=0)
        .on_conflict_do_nothing()
    )
    counter = session.scalars(
        select(InvoiceNumberCounter)
        .where(InvoiceNumberCounter.issuing_entity_id == entity_id, InvoiceNumberCounter.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    first = counter.last_number + 1
    counter.last_number += count
    session.flush()
    return [f"{entity.code}-{year}-{n:06d}" for n in range(first, first + count)]


def finalise(session: Session, invoices: list[Invoice]) -> None:
    """Number and date drafts just recomputed; from now on nothing of them changes. Numbers
    follow the order given, per issuing entity and year of issue."""
    now = utcnow()
    wanted: dict[tuple[uuid.UUID, int], list[tuple[Invoice, date]]] = defaultdict(list)
    for invoice in invoices:
        issued_on = now.astimezone(ZoneInfo(invoice.timezone)).date()
        wanted[(invoice.issuing_entity_id, issued_on.year)].append((invoice, issued_on))
    for (entity_id, year), members in sorted(wanted.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        for (invoice, issued_on), number in zip(
            members, next_numbers(session, entity_id, year, len(members)), strict=True
        ):
            invoice.number = number
            invoice.status = InvoiceStatus.PENDING_SYNC
            invoice.finalised_at = now
            invoice.issued_on = issued_on
            invoice.due_on = issued_on + timedelta(days=invoice.payment_terms_days)
    session.flush()
