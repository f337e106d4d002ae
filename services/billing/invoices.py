"""Reading invoices (and the live preview of the open period), their evidence, and
correcting a finalised one: by a credit note, or by voiding it and issuing it again."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.billing import close, contracts, descriptions, numbering, readings, tax
from services.billing.models import (
    FINAL_STATUSES,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
)
from services.billing.schemas import InvoiceOut, LineOut, TaxLineOut
from services.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from services.core.time import month_of, utcnow
from services.sla import reports
from services.sla.schemas import ClockWithLog
from tenants.principal import OrgKind, Principal
from tenants.scoping import fetch, narrowed_to


def get_invoice(session: Session, principal: Principal, invoice_id: uuid.UUID) -> Invoice:
    contracts.require_reader(principal)
    invoice = fetch(session, Invoice, invoice_id)
    if invoice is None:
        raise NotFound()
    return invoice


def list_invoices(
    session: Session,
    principal: Principal,
    page: PageRequest,
    tenant_id: uuid.UUID | None = None,
    status: InvoiceStatus | None = None,
    period: str | None = None,
) -> tuple[Sequence[Invoice], str | None]:
    contracts.require_reader(principal)
    query = select(Invoice)
    if status is not None:
        query = query.where(Invoice.status == status)
    if period is not None:
        query = query.where(Invoice.period == period)
    with narrowed_to(session, tenant_id):
        return fetch_page(session, query, Invoice.id, page)


def lines_of(session: Session, invoice: Invoice) -> Sequence[InvoiceLine]:
    return session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.position)
    ).all()


def invoice_out(
    session: Session, principal: Principal, invoice: Invoice, locale: str | None = None
) -> InvoiceOut:
    locale = locale or invoice.locale
    lines = [
        LineOut(
            id=line.id,
            position=line.position,
            kind=line.kind.value,
            description=descriptions.describe(locale, line.kind, line.metric, line.details),
            metric=line.metric,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
            tax_rate=line.tax_rate,
            details=line.details,
            evidence=f"/v1/invoices/{invoice.id}/lines/{line.id}/evidence"
            if line.kind is LineKind.CREDIT
            else None,
        )
        for line in lines_of(session, invoice)
    ]
    return InvoiceOut(
        id=invoice.id,
        tenant_id=invoice.tenant_id,
        kind=invoice.kind.value,
        number=invoice.number,
        status=invoice.status.value,
        period=invoice.period,
        currency=invoice.currency,
        locale=invoice.locale,
        timezone=invoice.timezone,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        lines=lines,
        subtotal=invoice.subtotal,
        tax=invoice.tax,
        total=invoice.total,
        tax_lines=[TaxLineOut(**line) for line in invoice.tax_lines],
        reverse_charge=invoice.reverse_charge,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        seller=invoice.seller,
        buyer=invoice.buyer,
        corrects_id=invoice.corrects_id,
        stripe_invoice_id=invoice.stripe_invoice_id,
    )


def preview(session: Session, principal: Principal, tenant_id: uuid.UUID | None) -> InvoiceOut:
    """The open period as it stands now, computed and not stored."""
    contracts.require_reader(principal)
    tenant_id = tenant_id or (principal.org_id if principal.org_kind is OrgKind.CLIENT else None)
    if tenant_id is None:
        raise ValidationFailed(errors=[FieldError("/tenant_id", "name the client organisation")])
    contracts.client_of(session, tenant_id)
    now = utcnow()
    period = month_of(now, contracts.zone_of(session, tenant_id))
    computed = close.compute(readings.read(session, [tenant_id], period, now), tenant_id)
    if computed is None:
        raise NotFound(
            "the client has no contract in force", errors=[FieldError("/tenant_id", "no contract")]
        )
    locale = computed.version.locale
    seller, buyer = computed.parties()
    return InvoiceOut(
        id=None,
        tenant_id=tenant_id,
        kind=InvoiceKind.INVOICE.value,
        number=None,
        status="preview",
        period=period,
        currency=computed.version.currency,
        locale=locale,
        timezone=computed.version.billing_timezone,
        period_start=computed.period_start,
        period_end=computed.period_end,
        lines=[
            LineOut(
                id=uuid.UUID(int=position),
                position=position,
                kind=line.kind.value,
                description=descriptions.describe(locale, line.kind, line.metric, line.details),
                metric=line.metric,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=amount,
                tax_rate=computed.tax_rate,
                details=line.details,
            )
            for position, (line, amount) in enumerate(zip(computed.lines, computed.rounded, strict=True))
        ],
        subtotal=computed.subtotal,
        tax=computed.tax,
        total=computed.subtotal + computed.tax,
        tax_lines=[TaxLineOut(**line) for line in computed.tax_lines],
        reverse_charge=computed.reverse_charge,
        issued_on=None,
        due_on=None,
        seller=seller,
        buyer=buyer,
        corrects_id=None,
        stripe_invoice_id=None,
    )


def evidence(
    session: Session, principal: Principal, invoice_id: uuid.UUID, line_id: uuid.UUID, page: PageRequest
) -> tuple[list[ClockWithLog], str | None]:
    """The breaches behind a credit line: each breached clock of its metric in the
    period, with its whole log."""
    invoice = get_invoice(session, principal, invoice_id)
    line = fetch(session, InvoiceLine, line_id)
    if line is None or line.invoice_id != invoice.id or line.kind is not LineKind.CREDIT:
        raise NotFound()
    where = reports.ReportFilter(
        since=invoice.period_start,
        until=invoice.period_end,
        tenant_id=invoice.tenant_id,
        metric=reports.Metric(line.details["sla_metric"]),
    )
    return reports.breaches_of(session, where, page)


# ------------------------------------------------------------------ corrections


def void(session: Session, principal: Principal, invoice_id: uuid.UUID) -> Invoice:
    """Void a finalised, unpaid invoice; closing its period again issues a new one."""
    invoice = get_invoice(session, principal, invoice_id)
    contracts.require_operator(principal)
    invoice = fetch(session, Invoice, invoice.id, lock=True) or invoice
    if invoice.status not in FINAL_STATUSES or invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
        raise Conflict(
            f"a {invoice.status.value} invoice cannot be voided"
            + ("; correct it with a credit note" if invoice.status is InvoiceStatus.PAID else ""),
            extra={"status": invoice.status.value},
        )
    invoice.status = InvoiceStatus.VOID
    session.flush()
    return invoice


def reissue(session: Session, principal: Principal, invoice_id: uuid.UUID, grace: timedelta) -> Invoice:
    """Void an invoice and issue its period again from the contract and usage as they are."""
    voided = void(session, principal, invoice_id)
    reissued = close.close(
        session, voided.tenant_id, voided.period, grace, finalise=True, cutoff=voided.cutoff_at
    )
    if reissued is None:
        raise Conflict("the client has no contract in force for that period")
    reissued.corrects_id = voided.id
    return reissued


def credit_note(
    session: Session, principal: Principal, invoice_id: uuid.UUID, amount: int | None, reason: str
) -> Invoice:
    """A credit note against a finalised invoice: all of it (tax included), or ``amount``
    of its net total, taxed at the invoice's rate."""
    invoice = get_invoice(session, principal, invoice_id)
    contracts.require_operator(principal)
    if (
        invoice.status not in FINAL_STATUSES
        or invoice.status is InvoiceStatus.VOID
        or invoice.kind is not InvoiceKind.INVOICE
    ):
        raise Conflict("only a finalised invoice is credited", extra={"status": invoice.status.value})
    fetch(session, Invoice, invoice.id, lock=True)  # two credit notes at once see each other
    credited = -(
        session.scalar(
            select(func.coalesce(func.sum(Invoice.subtotal), 0)).where(
                Invoice.kind == InvoiceKind.CREDIT_NOTE, Invoice.corrects_id == invoice.id
            )
        )
        or 0
    )
    left = invoice.subtotal - credited
    net = left if amount is None else amount
    if not 0 < net <= left:
        raise ValidationFailed(
            errors=[FieldError("/amount", f"between 1 and {left}, what is left to credit")]
        )
    rate = Decimal(invoice.tax_lines[0]["rate"]) if invoice.tax_lines else Decimal(0)
    tax_amount = tax.tax_by_rate([(rate, net)], invoice.currency)[rate]
    now = utcnow()
    issued_on = now.astimezone(ZoneInfo(invoice.timezone)).date()  # as an invoice's (numbering)
    note = Invoice(
        tenant_id=invoice.tenant_id,
        kind=InvoiceKind.CREDIT_NOTE,
        period=invoice.period,
        status=InvoiceStatus.PENDING_SYNC,
        contract_id=invoice.contract_id,
        issuing_entity_id=invoice.issuing_entity_id,
        currency=invoice.currency,
        locale=invoice.locale,
        timezone=invoice.timezone,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        subtotal=-net,
        tax=-tax_amount,
        total=-(net + tax_amount),
        tax_lines=[{"rate": str(rate), "taxable": -net, "tax": -tax_amount}],
        reverse_charge=invoice.reverse_charge,
        seller=invoice.seller,
        buyer=invoice.buyer,
        payment_terms_days=0,
        closed_at=now,
        finalise_after=now,
        finalised_at=now,
        cutoff_at=invoice.cutoff_at,
        corrects_id=invoice.id,
        issued_on=issued_on,
        due_on=issued_on,
    )
    note.number = numbering.next_number(session, invoice.issuing_entity_id, issued_on.year)
    session.add(note)
    session.flush()
    session.add(
        InvoiceLine(
            tenant_id=invoice.tenant_id,
            invoice_id=note.id,
            position=0,
            kind=LineKind.MANUAL,
            quantity=Decimal(1),
            amount=-net,
            tax_rate=rate,
            details={"reason": reason, "credits": invoice.number},
        )
    )
    session.flush()
    return note
