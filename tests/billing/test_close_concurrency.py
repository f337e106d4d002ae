"""A usage event written while its period is finalised lands on exactly one invoice
(PostgreSQL, real commits): the finalising close waits for an insert in flight and bills
it; an insert that comes while the close holds the ledger waits, and is late usage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select, text

from services.billing import close
from services.billing.models import InvoiceLine, InvoiceNumberCounter, IssuingEntity
from services.core.database import Database
from services.metering import service as metering
from services.metering.models import UsageEvent
from tenants.models import Organization
from tenants.scoping import AccessScope, bind, insert_rows
from tests.factories import make_contract, make_issuing_entity, make_tenant, record_usage

OCTOBER = datetime(2026, 10, 14, 10, tzinfo=UTC)
GRACE = timedelta(hours=48)


@pytest.fixture
def organization(committed: Database) -> Iterator[Organization]:
    client = make_tenant(committed)
    entity = make_issuing_entity(committed, code="RACE")
    make_contract(committed, client.organization, entity="RACE", tax_mode="domestic", vat_rate="20")
    yield client.organization
    with committed.session() as session:
        bind(session, AccessScope.everything())
        session.execute(delete(Organization).where(Organization.id == client.organization.id))
        session.execute(
            delete(InvoiceNumberCounter).where(InvoiceNumberCounter.issuing_entity_id == entity.id)
        )
        session.execute(delete(IssuingEntity).where(IssuingEntity.id == entity.id))


def _quantities(db: Database, invoice_id: Any) -> list[Decimal]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return list(session.scalars(select(InvoiceLine.quantity).where(InvoiceLine.invoice_id == invoice_id)))


def _waits_on_a_lock(db: Database, statement: str) -> bool:
    """Whether a session of the database waits on a lock running ``statement`` (within 5 s)."""
    for _ in range(50):
        with db.session() as session:
            bind(session, AccessScope.everything())
            waiting = session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE :statement"
                ),
                {"statement": f"{statement}%"},
            ).scalar_one()
        if waiting:
            return True
        time.sleep(0.1)
    return False


def _close(db: Database, organization: Organization, period: str, finalise: bool = False) -> Any:
    with db.session() as session:
        bind(session, AccessScope.everything())
        invoice = close.close(session, organization.id, period, GRACE, finalise=finalise)
        assert invoice is not None
        return invoice.id


def test_an_insert_in_flight_when_the_period_is_finalised_is_billed_on_it(
    committed: Database, organization: Organization
) -> None:
    in_flight = committed.sessions()
    try:
        bind(in_flight, AccessScope.everything())
        row = metering.row(organization.id, "task_completed", Decimal(3), OCTOBER, "in-flight", "test",
                           task_kind="support_ticket")  # fmt: skip
        insert_rows(in_flight, UsageEvent, [row], unless_taken=metering.UNIQUE_KEY)  # not committed yet
        finalised: dict[str, Any] = {}
        closing = threading.Thread(
            target=lambda: finalised.update(id=_close(committed, organization, "2026-10", finalise=True)),
            daemon=True,
        )
        closing.start()
        waited = _waits_on_a_lock(committed, "LOCK TABLE usage_events")
        in_flight.commit()
        closing.join(timeout=30)
    finally:
        in_flight.close()  # rolled back if a failure left it open
    assert waited, "the finalising close must wait for the insert in flight"
    assert _quantities(committed, finalised["id"]) == [Decimal(3)]
    assert _quantities(committed, _close(committed, organization, "2026-11")) == []  # not billed again


def test_an_insert_while_the_close_holds_the_ledger_is_late_usage_of_the_next_invoice(
    committed: Database, organization: Organization
) -> None:
    closing = committed.sessions()
    try:
        bind(closing, AccessScope.everything())
        october = close.close(closing, organization.id, "2026-10", GRACE, finalise=True)
        assert october is not None
        inserting = threading.Thread(
            target=record_usage,
            args=(committed, organization, "task_completed", 2, OCTOBER),
            kwargs={"task_kind": "support_ticket"},
            daemon=True,
        )
        inserting.start()
        waited = _waits_on_a_lock(committed, "INSERT INTO usage_events")
        october_id = october.id
        closing.commit()
        inserting.join(timeout=30)
    finally:
        closing.close()
    assert waited, "an insert waits while a finalising close holds the ledger"
    assert _quantities(committed, october_id) == []
    assert _quantities(committed, _close(committed, organization, "2026-11")) == [Decimal(2)]  # adjusted
