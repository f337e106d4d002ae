"""The billing pages: the account manager's invoices across the portfolio (status,
totals, margin) and a client's contract editing; a client's invoices with the live
preview of the open period; one invoice, as the client will read it, with its PDF."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from services.billing import contracts, invoices, margin
from services.billing.models import Invoice, InvoiceStatus
from services.billing.schemas import ContractCreate, ContractVersionIn, InvoiceOut
from services.core import money
from services.core.deps import DbSession
from services.core.errors import DomainError, FieldError, Forbidden, NotFound
from services.core.i18n import _
from services.core.pagination import PageRequest
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.sla import overview
from services.web.deps import Member
from services.web.portal import page
from tenants.models import Organization
from tenants.principal import OrgKind, Principal
from tenants.scoping import fetch

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False, dependencies=[Depends(csrf.verify)])
STATUS_LABELS = {
    "draft": _("Draft"),
    "pending_sync": _("Issued"),
    "open": _("Sent"),
    "paid": _("Paid"),
    "payment_failed": _("Payment failed"),
    "void": _("Void"),
    "preview": _("Preview"),
}


def _operator(viewer: Principal) -> None:
    contracts.require_reader(viewer)
    if viewer.org_kind is not OrgKind.OPERATOR:
        raise Forbidden()


@dataclass(frozen=True)
class Row:
    invoice: Invoice
    client: str
    total: str
    revenue: str
    cost: str  # the provider teams' cost of the hours, per currency
    margin: str | None  # revenue minus cost, where they share the currency


def _rows(session: DbSession, viewer: Principal, found: list[Invoice], locale: str) -> list[Row]:
    names = {o.id: o.name for o in overview.client_tenants(session, viewer)}
    rows = []
    for invoice in found:
        cost = margin.provider_cost(session, invoice.tenant_id, invoice.period_start, invoice.period_end)
        same = cost.get(invoice.currency)
        rows.append(
            Row(
                invoice=invoice,
                client=names.get(invoice.tenant_id, str(invoice.tenant_id)),
                total=money.format_money(invoice.total, invoice.currency, locale),
                revenue=money.format_money(invoice.subtotal, invoice.currency, locale),
                cost=" + ".join(money.format_money(v, c, locale) for c, v in sorted(cost.items())) or "—",
                margin=money.format_money(invoice.subtotal - same, invoice.currency, locale)
                if same is not None
                else None,
            )
        )
    return rows


@router.get("/billing")
def invoices_page(
    request: Request,
    session: DbSession,
    viewer: Member,
    status: Annotated[str, Query(max_length=16)] = "",
    period: Annotated[str, Query(max_length=7)] = "",
) -> Response:
    if viewer.org_kind is OrgKind.CLIENT:
        return RedirectResponse("/portal/invoices", status_code=303)
    _operator(viewer)
    chosen = InvoiceStatus(status) if status in {s.value for s in InvoiceStatus} else None
    found, _next = invoices.list_invoices(
        session, viewer, PageRequest(limit=200, after=None), status=chosen, period=period or None
    )
    ordered = sorted(found, key=lambda i: (i.period, i.number or ""), reverse=True)
    return page(
        request,
        session,
        viewer,
        "billing/invoices.html",
        rows=_rows(session, viewer, ordered, request.state.locale),
        clients=overview.client_tenants(session, viewer),
        status=status,
        period=period,
        statuses=[s.value for s in InvoiceStatus],
        status_labels=STATUS_LABELS,
    )


@router.get("/billing/invoices/{invoice_id}")
def invoice_page(request: Request, invoice_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    invoice = invoices.get_invoice(session, viewer, invoice_id)
    document = invoices.invoice_out(session, viewer, invoice)
    return page(
        request,
        session,
        viewer,
        "billing/invoice.html",
        invoice=document,
        document_url=f"/v1/invoices/{invoice.id}/html",
        pdf_url=f"/v1/invoices/{invoice.id}/pdf",
        status_labels=STATUS_LABELS,
        total=money.format_money(document.total, document.currency, request.state.locale),
        back="/billing" if viewer.org_kind is OrgKind.OPERATOR else "/portal/invoices",
    )


# ---------------------------------------------------------------- the client's invoices


@router.get("/portal/invoices")
def client_invoices_page(request: Request, session: DbSession, viewer: Member) -> Response:
    if viewer.org_kind is OrgKind.OPERATOR:
        return RedirectResponse("/billing", status_code=303)
    if viewer.org_kind is not OrgKind.CLIENT:
        raise NotFound()
    found, _next = invoices.list_invoices(session, viewer, PageRequest(limit=200, after=None))
    locale = request.state.locale
    try:
        preview: InvoiceOut | None = invoices.preview(session, viewer, None)
    except NotFound:
        preview = None  # no contract yet
    return page(
        request,
        session,
        viewer,
        "billing/client.html",
        invoices=sorted(found, key=lambda i: (i.period, i.number or ""), reverse=True),
        preview=preview,
        money=lambda minor, currency: money.format_money(minor, currency, locale),
        status_labels=STATUS_LABELS,
    )


# ---------------------------------------------------------------- contract editing


def _client(session: DbSession, viewer: Principal, tenant_id: uuid.UUID) -> Organization:
    _operator(viewer)
    found = fetch(session, Organization, tenant_id)
    if found is None or found.kind is not OrgKind.CLIENT:
        raise NotFound()
    return found


@router.get("/billing/contracts/{tenant_id}")
def contract_page(request: Request, tenant_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    client = _client(session, viewer, tenant_id)
    return _contract_form(request, session, viewer, client, None, [])


def _contract_form(
    request: Request,
    session: DbSession,
    viewer: Principal,
    client: Organization,
    submitted: dict[str, Any] | None,
    errors: list[FieldError],
    status_code: int = 200,
) -> Response:
    contract = contracts.contract_of(session, client.id)
    versions = contracts.versions_of(session, contract.id) if contract else []
    current = versions[-1] if versions else None
    values = submitted or {
        "effective_from": "",
        "issuing_entity": _entity_code(session, viewer, current.issuing_entity_id) if current else "",
        "currency": current.currency if current else client.currency,
        "billing_timezone": current.billing_timezone if current else client.timezone,
        "locale": current.locale if current else client.default_locale,
        "payment_terms_days": current.payment_terms_days if current else 30,
        "tax_mode": current.tax_mode.value if current else "auto",
        "vat_rate": str(current.vat_rate) if current else "20",
        "client_vat_number": (current.client_vat_number or "") if current else "",
        "client_address": current.client_address if current else "",
        "billing_email": (current.billing_email or "") if current else "",
        "rate_card": json.dumps(
            current.rate_card if current else {"prices": []}, indent=2, ensure_ascii=False
        ),
        "sla_credits": json.dumps(current.sla_credits if current else {"metrics": {}}, indent=2),
    }
    response = page(
        request,
        session,
        viewer,
        "billing/contract.html",
        client=client,
        contract=contract,
        versions=versions,
        values=values,
        errors={e.pointer: e.message for e in errors},
        entities=contracts.list_issuing_entities(session, viewer),
    )
    response.status_code = status_code
    return response


def _entity_code(session: DbSession, viewer: Principal, entity_id: uuid.UUID) -> str:
    return next((e.code for e in contracts.list_issuing_entities(session, viewer) if e.id == entity_id), "")


FORM_FIELDS = (
    "effective_from", "issuing_entity", "currency", "billing_timezone", "locale", "payment_terms_days",
    "tax_mode", "vat_rate", "client_vat_number", "client_address", "billing_email", "rate_card",
    "sla_credits",
)  # fmt: skip


@router.post("/billing/contracts/{tenant_id}")
async def save_contract(
    request: Request, tenant_id: uuid.UUID, session: DbSession, viewer: Member
) -> Response:
    """A new version of the client's contract (its first creates the contract); a bad
    field shows the form again with the message next to it, nothing saved."""
    client = _client(session, viewer, tenant_id)
    form = await request.form()
    submitted = {name: str(form.get(name, "")).strip() for name in FORM_FIELDS}
    data: dict[str, Any] = {k: v for k, v in submitted.items() if v and k not in ("rate_card", "sla_credits")}
    errors: list[FieldError] = []
    for name in ("rate_card", "sla_credits"):
        try:
            data[name] = json.loads(submitted[name] or "{}")
        except json.JSONDecodeError as exc:
            errors.append(FieldError(f"/{name}", f"not JSON: {exc.msg} (line {exc.lineno})"))
    try:
        version = ContractVersionIn.model_validate(data)
    except ValidationError as exc:
        errors += [
            FieldError("/" + "/".join(str(p) for p in error["loc"]), error["msg"]) for error in exc.errors()
        ]
    if errors:
        return _contract_form(request, session, viewer, client, submitted, errors, 422)
    try:
        with session.begin_nested():
            existing = contracts.contract_of(session, client.id)
            if existing is None:
                contracts.create_contract(
                    session, viewer, ContractCreate(tenant_id=client.id, name=client.name, version=version)
                )
            else:
                contracts.add_version(session, viewer, existing.id, version)
    except DomainError as error:
        found = [FieldError(e.pointer.removeprefix("/version"), e.message) for e in error.errors]
        return _contract_form(
            request, session, viewer, client, submitted, found or [FieldError("", str(error))], 422
        )
    return RedirectResponse(f"/billing/contracts/{client.id}?saved=1", status_code=303)
