"""Contracts, invoices and usage over HTTP: who may do what, and every bad input of a
contract answered with the field at fault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.billing import close
from services.core.database import Database
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller
from tests.factories import (
    RATE_CARD,
    bearer,
    make_contract,
    make_issuing_entity,
    make_tenant,
    record_usage,
    token,
)


@pytest.fixture
def operator(client: TestClient, db: Database) -> dict[str, str]:
    make_issuing_entity(db)
    tenant = make_tenant(db, OrgKind.OPERATOR)
    return bearer(token(client, tenant.client_id, tenant.client_secret))


def _contract(acme: Caller, **version: Any) -> dict[str, Any]:
    body = {"issuing_entity": "IE", "currency": "EUR", "rate_card": RATE_CARD, **version}
    return {"tenant_id": str(acme.tenant.id), "name": "Contrat cadre", "version": body}


def _pointers(answer: Any) -> list[str]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return [error["pointer"] for error in answer.json()["errors"]]


def test_the_operator_sets_a_contract_that_the_client_reads(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    created = client.post("/v1/contracts", headers=operator, json=_contract(acme))
    assert created.status_code == 201, created.text
    contract = created.json()
    assert contract["versions"][0]["currency"] == "EUR"
    mine = client.get(f"/v1/contracts/{contract['id']}", headers=acme.headers)
    assert mine.status_code == 200 and mine.json()["versions"][0]["rate_card"]["prices"]


def test_a_client_cannot_set_its_own_contract(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    answer = client.post("/v1/contracts", headers=acme.headers, json=_contract(acme))
    assert answer.status_code == 403


def test_a_rate_card_in_another_currency_than_the_contracts_is_refused(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    body = _contract(acme, rate_card={**RATE_CARD, "currency": "PLN"})
    assert _pointers(client.post("/v1/contracts", headers=operator, json=body)) == [
        "/version/rate_card/currency"
    ]


@pytest.mark.parametrize(
    ("tiers", "pointer"),
    [
        ([{"first": 0, "up_to": 100, "unit_price": 2}, {"first": 90, "unit_price": 1}], "tiers/1"),  # overlap
        ([{"first": 0, "up_to": 100, "unit_price": 2}, {"first": 120, "unit_price": 1}], "tiers/1"),  # gap
        ([{"first": 0, "up_to": 100, "unit_price": 2}], "tiers/0"),  # bounded last tier
    ],
)
def test_tiers_that_overlap_leave_a_gap_or_end_are_refused(
    client: TestClient, operator: dict[str, str], acme: Caller, tiers: list[Any], pointer: str
) -> None:
    card = {"prices": [{"metric": "task_completed", "tiers": tiers}]}
    pointers = _pointers(client.post("/v1/contracts", headers=operator, json=_contract(acme, rate_card=card)))
    assert f"/version/rate_card/prices/0/{pointer}" in pointers


def test_sla_bands_that_are_not_monotonic_are_refused(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    bands = [{"below": 98, "credit_percent": 10}, {"below": 95, "credit_percent": 5}]
    body = _contract(acme, sla_credits={"metrics": {"resolution": bands}})
    pointers = _pointers(client.post("/v1/contracts", headers=operator, json=body))
    assert pointers == ["/version/sla_credits/metrics/resolution/bands/1/credit_percent"]


def test_a_credit_cap_above_100_percent_is_refused(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    terms = {"metrics": {"resolution": [{"below": 98, "credit_percent": 5}]}, "cap_percent": 120}
    body = _contract(acme, sla_credits=terms)
    assert _pointers(client.post("/v1/contracts", headers=operator, json=body)) == [
        "/version/sla_credits/cap_percent"
    ]


def test_a_vat_number_of_the_wrong_shape_is_refused(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    body = _contract(acme, client_vat_number="FR123")
    assert _pointers(client.post("/v1/contracts", headers=operator, json=body)) == [
        "/version/client_vat_number"
    ]


def test_a_billing_email_of_the_wrong_shape_is_refused(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    body = _contract(acme, billing_email="compta at acme")
    assert _pointers(client.post("/v1/contracts", headers=operator, json=body)) == ["/version/billing_email"]


def test_an_unknown_currency_is_refused(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    body = _contract(acme, currency="XYZ")
    assert "/version/currency" in _pointers(client.post("/v1/contracts", headers=operator, json=body))


def test_a_new_version_may_not_take_effect_inside_a_finalised_period(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    contract = make_contract(db, acme.tenant.organization)
    record_usage(db, acme.tenant.organization, "task_completed", 2, datetime(2026, 10, 5, tzinfo=UTC))
    with db.session() as session:
        bind(session, AccessScope.everything())
        close.close(session, acme.tenant.organization.id, "2026-10", timedelta(hours=1), finalise=True)
    body = {"issuing_entity": "IE", "currency": "EUR", "rate_card": RATE_CARD, "effective_from": "2026-10-15"}
    answer = client.post(f"/v1/contracts/{contract.id}/versions", headers=operator, json=body)
    assert _pointers(answer) == ["/effective_from"]


def test_usage_dated_in_a_finalised_period_is_accepted_as_an_adjustment_of_the_next(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    make_contract(db, acme.tenant.organization)
    with db.session() as session:
        bind(session, AccessScope.everything())
        close.close(session, acme.tenant.organization.id, "2026-10", timedelta(hours=1), finalise=True)
    event = {
        "tenant_id": str(acme.tenant.id),
        "metric": "task_completed",
        "quantity": 1,
        "occurred_at": "2026-10-20T10:00:00Z",
        "idempotency_key": "late-1",
    }
    answer = client.post("/v1/usage-events", headers=operator, json={"events": [event]})
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][0]
    assert result["status"] == "accepted"
    assert result["adjustment"] == {"period": "2026-10", "billed_in": "2026-11"}


def test_a_manual_item_in_another_currency_than_the_contracts_is_rejected(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    make_contract(db, acme.tenant.organization)
    event = {
        "tenant_id": str(acme.tenant.id),
        "metric": "task_completed",
        "quantity": 1,
        "occurred_at": "2026-11-20T10:00:00Z",
        "idempotency_key": "manual-1",
        "reason": "Weekend migration support",
        "unit_price": {"amount": "350.00", "currency": "PLN"},
    }
    result = client.post("/v1/usage-events", headers=operator, json={"events": [event]}).json()["results"][0]
    assert result["status"] == "rejected"
    assert [e["pointer"] for e in result["errors"]] == ["/events/0/unit_price/currency"]


def test_a_client_reads_its_invoice_and_its_pdf_and_another_client_gets_404(
    client: TestClient, db: Database, acme: Caller
) -> None:
    make_issuing_entity(db)
    make_contract(db, acme.tenant.organization)
    record_usage(
        db,
        acme.tenant.organization,
        "task_completed",
        4,
        datetime(2026, 10, 5, tzinfo=UTC),
        task_kind="support_ticket",
    )
    with db.session() as session:
        bind(session, AccessScope.everything())
        invoice = close.close(
            session, acme.tenant.organization.id, "2026-10", timedelta(hours=1), finalise=True
        )
        assert invoice is not None
        invoice_id = invoice.id
    mine = client.get(f"/v1/invoices/{invoice_id}", headers=acme.headers)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["total"] == body["subtotal"] + body["tax"] and body["lines"][0]["amount"] == 940
    assert body["lines"][0]["description"]  # words in the invoice's language
    pdf = client.get(f"/v1/invoices/{invoice_id}/pdf", headers=acme.headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    other = make_tenant(db)
    as_other = bearer(token(client, other.client_id, other.client_secret))
    assert client.get(f"/v1/invoices/{invoice_id}", headers=as_other).status_code == 404
    assert client.get(f"/v1/invoices/{invoice_id}/pdf", headers=as_other).status_code == 404
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    as_provider = bearer(token(client, provider.client_id, provider.client_secret))
    assert client.get(f"/v1/invoices/{invoice_id}", headers=as_provider).status_code == 404
    assert client.get("/v1/invoices", headers=as_provider).status_code == 404


def test_the_preview_shows_the_open_period_as_it_stands(
    client: TestClient, db: Database, acme: Caller
) -> None:
    make_issuing_entity(db)
    make_contract(db, acme.tenant.organization)
    record_usage(
        db, acme.tenant.organization, "task_completed", 2, datetime.now(UTC), task_kind="support_ticket"
    )
    preview = client.get("/v1/invoices/preview", headers=acme.headers)
    assert preview.status_code == 200, preview.text
    assert preview.json()["status"] == "preview" and preview.json()["subtotal"] == 470


def _finalised(db: Database, acme: Caller) -> str:
    make_contract(db, acme.tenant.organization)
    at = datetime(2026, 10, 5, tzinfo=UTC)
    record_usage(db, acme.tenant.organization, "task_completed", 4, at, task_kind="support_ticket")
    with db.session() as session:
        bind(session, AccessScope.everything())
        invoice = close.close(
            session, acme.tenant.organization.id, "2026-10", timedelta(hours=1), finalise=True
        )
        assert invoice is not None
        return str(invoice.id)


def test_a_credit_note_corrects_a_finalised_invoice_without_editing_it(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    invoice_id = _finalised(db, acme)
    before = client.get(f"/v1/invoices/{invoice_id}", headers=operator).json()
    note = client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        headers=operator,
        json={"amount": 235, "reason": "Duplicate ticket"},
    )
    assert note.status_code == 201, note.text
    body = note.json()
    assert body["kind"] == "credit_note" and body["subtotal"] == -235 and body["corrects_id"] == invoice_id
    assert body["number"].startswith("IE-2026-") and body["number"] != before["number"]
    assert client.get(f"/v1/invoices/{invoice_id}", headers=operator).json() == before  # untouched
    document = client.get(f"/v1/invoices/{body['id']}/html", headers=operator).text
    assert f"Avoir relatif à la facture {before['number']}" in document  # the client's language
    too_much = client.post(
        f"/v1/invoices/{invoice_id}/credit-notes", headers=operator, json={"amount": 10**6, "reason": "x"}
    )
    assert too_much.status_code == 422


def test_reissuing_voids_the_invoice_and_issues_its_period_again(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    invoice_id = _finalised(db, acme)
    reissued = client.post(f"/v1/invoices/{invoice_id}/reissue", headers=operator)
    assert reissued.status_code == 201, reissued.text
    assert reissued.json()["corrects_id"] == invoice_id and reissued.json()["period"] == "2026-10"
    assert client.get(f"/v1/invoices/{invoice_id}", headers=operator).json()["status"] == "void"
    again = client.post(f"/v1/invoices/{invoice_id}/reissue", headers=operator)
    assert again.status_code == 409  # a void invoice is not voided twice


def test_a_client_may_not_correct_its_own_invoice(client: TestClient, db: Database, acme: Caller) -> None:
    make_issuing_entity(db)
    invoice_id = _finalised(db, acme)
    answer = client.post(
        f"/v1/invoices/{invoice_id}/credit-notes", headers=acme.headers, json={"reason": "mine"}
    )
    assert answer.status_code == 403
