"""A usage event in flight while a period is finalised lands on exactly one invoice
(PostgreSQL, real commits): the finalising close waits for it, and bills it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select

from services.billing import close
from services.billing.models import InvoiceLine, InvoiceNumberCounter, IssuingEntity
from services.core.database import Database
from services.metering import service as metering
from services.metering.models import UsageEvent
from tenants.scoping import AccessScope, bind, insert_rows
from tests.factories import make_contract, make_issuing_entity, make_tenant

OCTOBER = datetime(2026, 10, 14, 10, tzinfo=UTC)


def _quantities(db: Database, invoice_id: Any) -> list[Decimal]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return list(session.scalars(select(InvoiceLine.quantity).where(InvoiceLine.invoice_id == invoice_id)))


def test_an_event_committed_while_the_period_is_finalised_is_billed_once(committed: Database) -> None:
    client = make_tenant(committed)
    entity = make_issuing_entity(committed, code="RACE")
    in_flight = committed.sessions()
    try:
        make_contract(committed, client.organization, entity="RACE", tax_mode="domestic", vat_rate="20")
        bind(in_flight, AccessScope.everything())
        row = metering.row(client.organization.id, "task_completed", Decimal(3), OCTOBER, "late-1", "test",
                           task_kind="support_ticket")  # fmt: skip
        insert_rows(in_flight, UsageEvent, [row], unless_taken=metering.UNIQUE_KEY)  # stamped, not committed
        finalised: dict[str, Any] = {}

        def finalise() -> None:
            with committed.session() as session:
                bind(session, AccessScope.everything())
                invoice = close.close(
                    session, client.organization.id, "2026-10", timedelta(hours=48), finalise=True
                )
                assert invoice is not None
                finalised["id"], finalised["number"] = invoice.id, invoice.number

        closing = threading.Thread(target=finalise, daemon=True)
        closing.start()
        time.sleep(0.5)
        waited = closing.is_alive()
        in_flight.commit()
        closing.join(timeout=30)
        assert waited, "the finalising close must wait for the insert in flight"
        assert finalised["number"] and _quantities(committed, finalised["id"]) == [Decimal(3)]
        with committed.session() as session:
            bind(session, AccessScope.everything())
            november = close.close(session, client.organization.id, "2026-11", timedelta(hours=48))
            assert november is not None
            november_id = november.id
        assert _quantities(committed, november_id) == []  # not billed a second time as late usage
    finally:
        in_flight.close()  # rolled back if a failure left it open
        with committed.session() as session:
            bind(session, AccessScope.everything())
            from tenants.models import Organization

            session.execute(delete(Organization).where(Organization.id == client.organization.id))
            session.execute(
                delete(InvoiceNumberCounter).where(InvoiceNumberCounter.issuing_entity_id == entity.id)
            )
            session.execute(delete(IssuingEntity).where(IssuingEntity.id == entity.id))
