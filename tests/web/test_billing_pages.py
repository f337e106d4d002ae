"""The billing pages: the account manager's invoices of their portfolio (with margin) and
contract editing; a client's invoices, in the client's language, with the preview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.billing import close
from services.core.database import Database
from services.identity.models import User
from tenants import service as tenancy
from tenants.models import Organization
from tenants.principal import OrgKind, Role
from tenants.scoping import AccessScope, bind
from tests.factories import make_contract, make_issuing_entity, make_org, make_user, record_usage
from tests.web.test_sla_pages import Browser

OCTOBER = datetime(2026, 10, 12, 9, tzinfo=UTC)


def _invoiced(db: Database, client: Organization, tasks: int) -> Any:
    make_contract(db, client, client_vat_number="FR40303265045")
    record_usage(db, client, "task_completed", tasks, OCTOBER, task_kind="support_ticket")
    with db.session() as session:
        bind(session, AccessScope.everything())
        invoice = close.close(session, client.id, "2026-10", timedelta(hours=1), finalise=True)
        assert invoice is not None
        session.expunge(invoice)
        return invoice


@pytest.fixture
def portfolio(db: Database) -> dict[str, Any]:
    make_issuing_entity(db)
    operator = make_org(db, OrgKind.OPERATOR, country="IE")
    mine = make_org(db, OrgKind.CLIENT, name="Assurances Alpha")
    foreign = make_org(db, OrgKind.CLIENT, name="Hidden Gamma", country="ES")
    manager = make_user(db, operator, [Role.ACCOUNT_MANAGER], locale="en")
    with db.session() as session:
        bind(session, AccessScope.everything())
        manager_id = session.scalars(select(User.id).where(User.email == manager)).one()
        tenancy.assign_account_manager(session, mine, manager_id)
    return {
        "manager": manager,
        "mine": mine,
        "mine_invoice": _invoiced(db, mine, 10),
        "foreign_invoice": _invoiced(db, foreign, 3),
        "client_admin": make_user(db, mine, [Role.CLIENT_ADMIN], locale="fr"),
    }


def test_the_account_manager_sees_the_invoices_of_their_portfolio_only(
    client: TestClient, portfolio: dict[str, Any]
) -> None:
    page = Browser(client, portfolio["manager"]).get("/billing")
    assert page.status_code == 200, page.text
    assert portfolio["mine_invoice"].number in page.text
    assert "Hidden Gamma" not in page.text and portfolio["foreign_invoice"].number not in page.text


def test_the_margin_is_the_revenue_less_what_the_engaged_team_costs(
    client: TestClient, db: Database, portfolio: dict[str, Any]
) -> None:
    from tests.factories import make_engagement, make_queue, make_team

    provider = make_org(db, OrgKind.PROVIDER, country="RO")
    queue = make_queue(db, portfolio["mine"])
    make_engagement(db, queue, make_team(db, provider, hourly_cost={"amount": 1500, "currency": "EUR"}))
    november = datetime(2026, 11, 5, 9, tzinfo=UTC)
    record_usage(db, portfolio["mine"], "handle_minutes", 60, november, queue_id=queue.id)
    record_usage(db, portfolio["mine"], "task_completed", 10, november, task_kind="support_ticket")
    with db.session() as session:
        bind(session, AccessScope.everything())
        close.close(session, portfolio["mine"].id, "2026-11", timedelta(hours=1), finalise=True)
    page = Browser(client, portfolio["manager"]).get("/billing", period="2026-11")
    assert page.status_code == 200, page.text
    assert "€15.00" in page.text  # an hour of the team's work
    assert "€33.25" in page.text  # 10 tickets at 2.35 and 60 minutes at 0.4125 = 48.25, less 15.00


def test_an_invoice_page_links_its_pdf_which_the_browser_session_downloads(
    client: TestClient, portfolio: dict[str, Any]
) -> None:
    browser = Browser(client, portfolio["manager"])
    invoice = portfolio["mine_invoice"]
    page = browser.get(f"/billing/invoices/{invoice.id}")
    assert page.status_code == 200 and f"/v1/invoices/{invoice.id}/pdf" in page.text
    pdf = client.get(f"/v1/invoices/{invoice.id}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert browser.get(f"/billing/invoices/{portfolio['foreign_invoice'].id}").status_code == 404


def test_the_client_reads_its_invoices_in_french_with_euros_and_the_reverse_charge(
    client: TestClient, portfolio: dict[str, Any]
) -> None:
    browser = Browser(client, portfolio["client_admin"])
    page = browser.get("/portal/invoices")
    assert page.status_code == 200, page.text
    assert "Factures" in page.text and "23,50\xa0€" in page.text
    document = client.get(f"/v1/invoices/{portfolio['mine_invoice'].id}/html")
    assert document.status_code == 200
    assert "Autoliquidation" in document.text and "Facture" in document.text
    assert browser.get(f"/billing/invoices/{portfolio['foreign_invoice'].id}").status_code == 404


def test_the_account_manager_adds_a_contract_version_and_a_bad_field_is_shown(
    client: TestClient, portfolio: dict[str, Any]
) -> None:
    browser = Browser(client, portfolio["manager"])
    url = f"/billing/contracts/{portfolio['mine'].id}"
    form = browser.get(url)
    assert form.status_code == 200 and 'name="rate_card"' in form.text
    fields = {
        "effective_from": "2027-01-01",
        "issuing_entity": "IE",
        "currency": "EUR",
        "billing_timezone": "Europe/Paris",
        "locale": "fr",
        "payment_terms_days": "45",
        "tax_mode": "auto",
        "vat_rate": "20",
        "client_vat_number": "FR40303265045",
        "client_address": "1 rue de Rivoli",
        "rate_card": '{"prices": [{"metric": "task_completed", "unit_price": "2.10"}]}',
        "sla_credits": '{"metrics": {}}',
    }
    bad = browser.post(url, {**fields, "rate_card": '{"prices": [{"metric": "task_completed"}]}'})
    assert bad.status_code == 422 and 'data-testid="error-rate_card"' in bad.text
    saved = browser.post(url, fields)
    assert saved.status_code == 303, saved.text
    assert "2027-01-01" in browser.get(url).text
