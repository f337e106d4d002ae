"""HTTP of billing: contracts, issuing entities, invoices (JSON, HTML, PDF), their
evidence, corrections, closing by hand, and Stripe's webhooks."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from services.billing import close, contracts, invoices, render, stripe_webhooks
from services.billing.models import Contract, InvoiceStatus
from services.billing.schemas import (
    ContractCreate,
    ContractOut,
    ContractVersionIn,
    ContractVersionOut,
    InvoiceOut,
    IssuingEntityIn,
    IssuingEntityOut,
)
from services.core.deps import AppSettings, DbSession
from services.core.errors import FieldError, ValidationFailed
from services.core.pagination import Page, PageRequest, page_request
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.core.time import PERIOD_PATTERN
from services.identity.deps import CurrentPrincipal
from services.sla import reports
from services.sla.schemas import ClockWithLog
from tenants.principal import Principal

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["billing"], responses=PROBLEM_RESPONSES)
Paging = Annotated[PageRequest, Depends(page_request)]
PDF: dict[int | str, dict[str, Any]] = {200: {"content": {"application/pdf": {"schema": {"type": "string"}}}}}
CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


def _contract_out(session: DbSession, contract: Contract) -> ContractOut:
    return ContractOut(
        id=contract.id,
        tenant_id=contract.tenant_id,
        name=contract.name,
        versions=[ContractVersionOut.model_validate(v) for v in contracts.versions_of(session, contract.id)],
    )


@router.post("/contracts", response_model=ContractOut, status_code=201, summary="A client's contract")
def create_contract(body: ContractCreate, session: DbSession, principal: CurrentPrincipal) -> ContractOut:
    return _contract_out(session, contracts.create_contract(session, principal, body))


@router.get("/contracts", response_model=Page[ContractOut])
def list_contracts(
    session: DbSession, principal: CurrentPrincipal, tenant_id: uuid.UUID | None = None
) -> Page[ContractOut]:
    found = contracts.list_contracts(session, principal, tenant_id)
    return Page(items=[_contract_out(session, c) for c in found], next_cursor=None)


@router.get("/contracts/{contract_id}", response_model=ContractOut)
def get_contract(contract_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> ContractOut:
    return _contract_out(session, contracts.get_contract(session, principal, contract_id))


@router.post(
    "/contracts/{contract_id}/versions",
    response_model=ContractOut,
    status_code=201,
    summary="A new version of the contract, in force from a day (prices, tax, SLA credits)",
)
def add_contract_version(
    contract_id: uuid.UUID, body: ContractVersionIn, session: DbSession, principal: CurrentPrincipal
) -> ContractOut:
    contracts.add_version(session, principal, contract_id, body)
    return _contract_out(session, contracts.get_contract(session, principal, contract_id))


@router.post("/issuing-entities", response_model=IssuingEntityOut, status_code=201)
def create_issuing_entity(
    body: IssuingEntityIn, session: DbSession, principal: CurrentPrincipal
) -> IssuingEntityOut:
    return IssuingEntityOut.model_validate(contracts.create_issuing_entity(session, principal, body))


@router.get("/issuing-entities", response_model=Page[IssuingEntityOut])
def list_issuing_entities(session: DbSession, principal: CurrentPrincipal) -> Page[IssuingEntityOut]:
    found = contracts.list_issuing_entities(session, principal)
    return Page(items=[IssuingEntityOut.model_validate(e) for e in found], next_cursor=None)


# ------------------------------------------------------------------ invoices


@router.get("/invoices", response_model=Page[InvoiceOut])
def list_invoices(
    session: DbSession,
    principal: CurrentPrincipal,
    page: Paging,
    tenant_id: uuid.UUID | None = None,
    status: InvoiceStatus | None = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
) -> Page[InvoiceOut]:
    found, next_cursor = invoices.list_invoices(session, principal, page, tenant_id, status, period)
    return Page(items=[invoices.invoice_out(session, principal, i) for i in found], next_cursor=next_cursor)


@router.get("/invoices/preview", response_model=InvoiceOut, summary="The open period as it stands now")
def preview_invoice(
    session: DbSession, principal: CurrentPrincipal, tenant_id: uuid.UUID | None = None
) -> InvoiceOut:
    return invoices.preview(session, principal, tenant_id)


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
def get_invoice(invoice_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> InvoiceOut:
    return invoices.invoice_out(session, principal, invoices.get_invoice(session, principal, invoice_id))


def _document(session: DbSession, principal: Principal, invoice_id: uuid.UUID) -> InvoiceOut:
    return invoices.invoice_out(session, principal, invoices.get_invoice(session, principal, invoice_id))


@router.get("/invoices/{invoice_id}/pdf", responses=PDF, response_class=Response)
def invoice_pdf(
    invoice_id: uuid.UUID, request: Request, session: DbSession, principal: CurrentPrincipal
) -> Response:
    document = _document(session, principal, invoice_id)
    name = document.number or f"draft-{document.period}"
    return Response(
        render.pdf(document, base_url=str(request.base_url)),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@router.get("/invoices/{invoice_id}/html", response_class=Response)
def invoice_html(invoice_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> Response:
    return Response(render.html(_document(session, principal, invoice_id)), media_type="text/html")


@router.get(
    "/invoices/{invoice_id}/lines/{line_id}/evidence",
    response_model=Page[ClockWithLog],
    responses=CSV,
    summary="The breaches behind an SLA credit line, each with its clock log (CSV with Accept)",
)
def line_evidence(
    invoice_id: uuid.UUID,
    line_id: uuid.UUID,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    page: Paging,
    format: Annotated[
        str | None, Query(pattern="^(json|csv)$", description="csv: as with Accept: text/csv")
    ] = None,
) -> Response | Page[ClockWithLog]:
    found, next_cursor = invoices.evidence(session, principal, invoice_id, line_id, page)
    if format == "csv" or "text/csv" in request.headers.get("accept", ""):
        return Response(
            reports.breaches_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="evidence-{line_id}.csv"'},
        )
    return Page(items=found, next_cursor=next_cursor)


class CreditNoteIn(BaseModel):
    amount: Annotated[int | None, Field(gt=0)] = None  # minor units of the net total; None: all of it
    reason: Annotated[str, Field(min_length=1, max_length=500)]


@router.post("/invoices/{invoice_id}/credit-notes", response_model=InvoiceOut, status_code=201)
def create_credit_note(
    invoice_id: uuid.UUID, body: CreditNoteIn, session: DbSession, principal: CurrentPrincipal
) -> InvoiceOut:
    note = invoices.credit_note(session, principal, invoice_id, body.amount, body.reason)
    return invoices.invoice_out(session, principal, note)


@router.post("/invoices/{invoice_id}/reissue", response_model=InvoiceOut, status_code=201)
def reissue_invoice(
    invoice_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal, settings: AppSettings
) -> InvoiceOut:
    """Void the invoice and issue its period again from the contract and usage as they are."""
    grace = timedelta(hours=settings.invoice_grace_hours)
    return invoices.invoice_out(session, principal, invoices.reissue(session, principal, invoice_id, grace))


class CloseIn(BaseModel):
    period: Annotated[str, Field(pattern=PERIOD_PATTERN)]
    tenant_id: uuid.UUID
    finalise: bool = False  # at once, without waiting for the grace period


@router.post("/billing/close", response_model=InvoiceOut, summary="Close a client's period by hand")
def close_period(
    body: CloseIn, session: DbSession, principal: CurrentPrincipal, settings: AppSettings
) -> InvoiceOut:
    contracts.require_operator(principal)
    contracts.client_of(session, body.tenant_id)
    grace = timedelta(hours=settings.invoice_grace_hours)
    invoice = close.close(session, body.tenant_id, body.period, grace, finalise=body.finalise)
    if invoice is None:
        raise ValidationFailed(errors=[FieldError("/tenant_id", "the client has no contract in force then")])
    return invoices.invoice_out(session, principal, invoice)


stripe_router = APIRouter(route_class=UnitOfWorkRoute, tags=["billing"], responses=PROBLEM_RESPONSES)


async def _raw_body(request: Request) -> bytes:
    return await request.body()  # the signature is over the bytes as sent


@stripe_router.post("/stripe/webhooks", summary="Stripe's events: invoices paid, failed or voided")
def stripe_webhook(
    request: Request,
    payload: Annotated[bytes, Depends(_raw_body)],
    session: DbSession,
    settings: AppSettings,
) -> dict[str, str]:
    """Verified by the ``Stripe-Signature`` header (400 and no change when it is wrong);
    a duplicate or an older event than the state it would change is answered and ignored."""
    return {
        "outcome": stripe_webhooks.handle(session, payload, request.headers.get("Stripe-Signature"), settings)
    }
