"""Which periods are due, and closing them in batches: what the beat job and the CLI run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.billing import periods
from services.billing.models import Invoice, InvoiceStatus
from services.core.database import Database
from services.core.time import utcnow
from tenants.scoping import AccessScope, bind
from tests.factories import make_contract, make_issuing_entity, make_tenant, record_usage

GRACE = timedelta(hours=48)


def _status(db: Database, invoice_id: object) -> InvoiceStatus:
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = session.get(Invoice, invoice_id)
        assert found is not None
        return found.status


def test_last_month_is_due_until_closed_then_its_draft_once_the_grace_is_over(db: Database) -> None:
    make_issuing_entity(db)
    client = make_tenant(db)
    make_contract(db, client.organization)
    last_month = periods.previous_period(utcnow(), "Europe/Paris")
    assert (client.organization.id, last_month) in set(periods.due(db))

    closed = periods.close_all(db, [(client.organization.id, last_month)], GRACE)
    assert closed.failures == [] and len(closed.invoices) == 1
    assert (client.organization.id, last_month) not in set(periods.due(db))
    assert _status(db, closed.invoices[0]) is InvoiceStatus.DRAFT

    later = utcnow() + GRACE + timedelta(minutes=1)
    assert (client.organization.id, last_month) in set(periods.due(db, now=later))


def test_a_batch_closes_every_client_with_one_invoice_each(db: Database) -> None:
    make_issuing_entity(db)
    clients = [make_tenant(db) for _ in range(3)]
    for n, client in enumerate(clients):
        make_contract(db, client.organization)
        record_usage(db, client.organization, "task_completed", n + 1, datetime(2026, 10, 3, tzinfo=UTC))
    pairs = [(c.organization.id, "2026-10") for c in clients]
    closed = periods.close_all(db, pairs, GRACE, finalise=True)
    assert closed.failures == [] and len(set(closed.invoices)) == 3
    again = periods.close_all(db, pairs, GRACE, finalise=True)
    assert sorted(map(str, again.invoices)) == sorted(map(str, closed.invoices))  # closing twice: the same


def test_a_period_not_over_is_reported_for_that_client_and_the_others_close(db: Database) -> None:
    make_issuing_entity(db)
    client = make_tenant(db)
    make_contract(db, client.organization)
    this_month = utcnow().astimezone(UTC).strftime("%Y-%m")
    closed = periods.close_all(db, [(client.organization.id, this_month)], GRACE)
    assert closed.invoices == []
    assert closed.failures == [(client.organization.id, "the period is not over: see the preview")]
