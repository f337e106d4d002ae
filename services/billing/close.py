"""Closing a period: usage rated into each client's invoice, with surcharges, the minimum,
SLA credits, adjustments and tax; then stored, and finalised once the grace period is over.

What a close reads comes from ``readings``, for a whole batch of clients in a few
statements. An invoice covers the usage of its period recorded up to its cut-off; usage
of an earlier period recorded after that period's cut-off is billed here as adjustments.
A draft is computed again on every close, so closing twice gives the same invoice, and a
close that crashed half way (one transaction per batch) is simply run again.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from services.billing import credits, numbering, rating, tax
from services.billing.models import (
    Contract,
    ContractVersion,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    IssuingEntity,
    LineKind,
    TaxMode,
)
from services.billing.readings import Client, Group, Readings, read
from services.billing.schemas import CreditTerms, RateCard
from services.core import money
from services.core.errors import FieldError, ValidationFailed
from services.core.ids import new_id
from services.core.time import month_of, utcnow
from tenants.models import Organization
from tenants.scoping import insert_rows, narrowed_to

# Shares of a tiered charge (a surcharge on part of it) divide; twelve places are far
# below a minor unit, and the line is rounded once, afterwards.
_SHARE = Context(prec=38)
_SHARE_QUANTUM = Decimal("1e-12")
NOT_OVER = "the period is not over: see the preview"


@dataclass
class Line:
    kind: LineKind
    amount: Decimal  # exact, major units; rounded once when stored
    quantity: Decimal = Decimal(0)
    metric: str | None = None
    unit_price: Decimal | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Computed:
    """An invoice before it is stored (or shown as the live preview)."""

    tenant_id: uuid.UUID
    period: str
    contract: Contract
    version: ContractVersion  # in force at the period's end: currency, tax, credits
    entity: IssuingEntity
    client: Organization
    period_start: datetime
    period_end: datetime
    lines: list[Line]
    rounded: list[int]
    tax_rate: Decimal
    reverse_charge: bool

    @property
    def subtotal(self) -> int:
        return sum(self.rounded)

    @property
    def tax_lines(self) -> list[dict[str, Any]]:
        by_rate = tax.tax_by_rate([(self.tax_rate, self.subtotal)], self.version.currency)
        return [
            {"rate": str(rate), "taxable": self.subtotal, "tax": amount} for rate, amount in by_rate.items()
        ]

    @property
    def tax(self) -> int:
        return sum(line["tax"] for line in self.tax_lines)

    def parties(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Seller and buyer as the invoice states them (frozen with it at finalisation)."""
        entity, client, version = self.entity, self.client, self.version
        seller = {
            "name": entity.name,
            "address": entity.address,
            "country": entity.country,
            "vat_number": entity.vat_number,
            "email": entity.email,
        }
        buyer = {
            "name": client.name,
            "address": version.client_address,
            "country": client.country,
            "vat_number": version.client_vat_number,
            "email": version.billing_email,
        }
        return seller, buyer


def compute(readings: Readings, tenant_id: uuid.UUID) -> Computed | None:
    """The client's invoice of the period as ``readings`` has it (None: no contract in
    force during the period)."""
    client = readings.clients.get(tenant_id)
    if client is None:
        return None
    lines: list[Line] = []
    cumulative: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    minimum = Decimal(0)
    several = len(client.slices) > 1
    for part in client.slices:
        card = RateCard.model_validate(part.version.rate_card)
        of_slice = {
            "version": part.version.version,
            "from": part.first.isoformat(),
            "to": part.end.isoformat(),
        }
        lines += _rated(card, client.usage.get(part.first, []), cumulative, of_slice if several else {})
        days, before = (part.end - part.first).days, (part.first - client.first_day).days
        minimum += rating.prorated(card.minimum, days, client.days, days_before=before)
    version = client.slices[-1].version
    currency = version.currency
    # The minimum is compared in minor units with the lines as they will be rounded, so that
    # a topped-up invoice shows the minimum exactly; adjustments belong to earlier periods.
    own = sum(money.to_minor(line.amount, currency) for line in lines)
    floor = money.to_minor(minimum, currency)
    if own < floor:
        top_up = money.from_minor(floor - own, currency)
        lines.append(Line(LineKind.MINIMUM, top_up, Decimal(1), details={"minimum": str(minimum)}))
    # SLA credits are a share of the period's service charges: usage, surcharges, minimum.
    base = sum((line.amount for line in lines if line.kind is not LineKind.MANUAL), Decimal(0))
    lines += _credits(client, version, base)
    lines += _adjustments(client)
    entity = readings.entities[version.issuing_entity_id]
    organization = client.organization
    treatment = (
        tax.treatment(entity.country, organization.country, version.client_vat_number, version.vat_rate)
        if version.tax_mode is TaxMode.AUTO
        else tax.TaxTreatment(version.vat_rate, reverse_charge=False)
    )
    return Computed(
        tenant_id=tenant_id,
        period=readings.period,
        contract=client.contract,
        version=version,
        entity=entity,
        client=organization,
        period_start=client.start,
        period_end=client.end,
        lines=lines,
        rounded=[money.to_minor(line.amount, version.currency) for line in lines],
        tax_rate=treatment.rate,
        reverse_charge=treatment.reverse_charge,
    )


def _rated(
    card: RateCard,
    groups: list[Group],
    cumulative: dict[tuple[str, str | None], Decimal],
    part: dict[str, Any],
) -> list[Line]:
    """Usage lines (one per price: a metric's price for one task kind, or its general price
    for every other kind together), manual items, then surcharges. Tiers count the whole
    period under one price: a slice's units continue from the slices before it."""
    lines: list[Line] = []
    by_price: dict[tuple[str, str | None], list[Group]] = defaultdict(list)
    prices: dict[tuple[str, str | None], rating.Price] = {}
    for group in groups:
        if group.unit_price is not None:
            lines.append(
                Line(
                    LineKind.MANUAL,
                    group.quantity * group.unit_price,
                    group.quantity,
                    group.metric,
                    group.unit_price,
                    {"reason": group.reason, **part},
                )
            )
            continue
        price = card.price_for(group.metric, group.task_kind)
        if price is None:
            continue  # measured, not billed (SLA outcomes, say)
        prices[(group.metric, price.task_kind)] = price
        by_price[(group.metric, price.task_kind)].append(group)
    priced: list[tuple[Line, list[Group]]] = []
    for (metric, kind), members in sorted(by_price.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        price = prices[(metric, kind)]
        quantity = sum((g.quantity for g in members), Decimal(0))
        before = cumulative[(metric, kind)]
        cumulative[(metric, kind)] = before + quantity
        amount = rating.charge(price, before + quantity) - rating.charge(price, before)
        details = {"task_kind": kind, **part}
        if price.tiers:
            details["tiered"] = price.mode.value
        line = Line(LineKind.USAGE, amount, quantity, metric, price.unit_price, details)
        lines.append(line)
        priced.append((line, members))
    for surcharge_in in card.surcharges:
        surcharge = surcharge_in.surcharge()
        base = Decimal(0)
        for line, members in priced:
            matching = sum(
                (
                    g.quantity
                    for g in members
                    if rating.surcharge_applies(surcharge, language=g.language, out_of_hours=g.out_of_hours)
                ),
                Decimal(0),
            )
            if matching and line.quantity:
                with localcontext(_SHARE):
                    base += (line.amount * matching / line.quantity).quantize(_SHARE_QUANTUM)
        if base:
            details = {
                "when": surcharge.when,
                "languages": list(surcharge.languages),
                "percent": str(surcharge.percent),
            }
            lines.append(
                Line(
                    LineKind.SURCHARGE, rating.surcharge_amount(base, surcharge), base, details=details | part
                )
            )
    return lines


def _adjustments(client: Client) -> list[Line]:
    """Usage of earlier periods recorded after their invoices' cut-off: one line per period,
    price and day's version, priced where it would have been on its period's invoice (the
    units continue the tiers from what that period billed), by the version in force on the
    day it happened. Surcharges and the minimum of that period are not recomputed."""
    totals: dict[tuple[str, int, str, str | None, Decimal | None, str | None], Decimal] = defaultdict(Decimal)
    for late in client.late:
        period = month_of(late.occurred_at, client.zone)
        version = _version_on(client.versions, late.occurred_at.astimezone(ZoneInfo(client.zone)).date())
        key = (period, version.version, late.metric, late.task_kind, late.unit_price, late.reason)
        totals[key] += late.quantity
    by_version = {v.version: v for v in client.versions}
    lines = []
    for (period, number, metric, kind, unit, reason), quantity in sorted(
        totals.items(), key=lambda i: str(i[0])
    ):
        if not quantity:
            continue
        if unit is not None:
            amount = quantity * unit
        else:
            price = RateCard.model_validate(by_version[number].rate_card).price_for(metric, kind)
            if price is None:
                continue
            billed = client.billed.get((period, metric, price.task_kind), Decimal(0))
            after = max(billed + quantity, Decimal(0))
            amount = rating.charge(price, after) - rating.charge(price, max(billed, Decimal(0)))
            client.billed[(period, metric, price.task_kind)] = after  # a second line continues
            unit, kind = price.unit_price, price.task_kind
        details = {"period": period, "task_kind": kind, "reason": reason}
        lines.append(Line(LineKind.ADJUSTMENT, amount, quantity, metric, unit, details))
    return lines


def _version_on(versions: list[ContractVersion], day: date) -> ContractVersion:
    """The version in force on ``day`` (else the first)."""
    in_force = [v for v in versions if v.effective_from <= day]
    return in_force[-1] if in_force else versions[0]


def _credits(client: Client, version: ContractVersion, base: Decimal) -> list[Line]:
    """One negative line per SLA metric whose monthly attainment falls in a band; the
    credits of all metrics together stop at the cap."""
    terms = CreditTerms.model_validate(version.sla_credits)
    if not terms.metrics or base <= 0:
        return []
    lines, left = [], terms.cap_percent
    for metric in sorted(terms.metrics):
        met, breached = client.attainment.get(metric, (0, 0))
        if not met + breached or left <= 0:
            continue
        exact = Decimal(met) * 100 / (met + breached)  # compared unrounded: 97.9975 is below 98
        attainment = exact.quantize(Decimal("0.01"))
        percent = min(credits.credit_percent(exact, terms.bands(metric), terms.cap_percent), left)
        if not percent:
            continue
        left -= percent
        details = {
            "sla_metric": metric,
            "attainment": str(attainment),
            "met": met,
            "breached": breached,
            "percent": str(percent),
        }
        lines.append(Line(LineKind.CREDIT, -credits.credit_amount(base, percent), base, details=details))
    return lines


# ------------------------------------------------------------------ storing


@dataclass
class Closed:
    invoices: dict[uuid.UUID, Invoice] = field(default_factory=dict)
    refused: dict[uuid.UUID, str] = field(default_factory=dict)  # client -> why it was not closed


def close(
    session: Session,
    tenant_id: uuid.UUID,
    period: str,
    grace: timedelta,
    finalise: bool = False,
    cutoff: datetime | None = None,
) -> Invoice | None:
    """The client's invoice for ``period`` (None: no contract in force then); see ``close_batch``."""
    closed = close_batch(session, [tenant_id], period, grace, finalise, cutoff)
    if tenant_id in closed.refused:
        raise ValidationFailed(errors=[FieldError("/period", closed.refused[tenant_id])])
    return closed.invoices.get(tenant_id)


def close_batch(
    session: Session,
    tenant_ids: Iterable[uuid.UUID],
    period: str,
    grace: timedelta,
    finalise: bool = False,
    cutoff: datetime | None = None,
) -> Closed:
    """Each client's invoice for ``period``: created as a draft, computed again while it is
    one, finalised (numbered, frozen) once its grace period is over or when asked. A final
    invoice is returned as it is: closing is idempotent. A period not over in a client's
    billing timezone is refused for that client. ``cutoff``: the usage recorded up to when
    (default now); a reissue keeps the voided invoice's, whose later usage was adjusted on
    later invoices already."""
    session.connection()  # SQLite: the write lock first, then the clock (see metering.ingest)
    now = utcnow()
    wanted = set(tenant_ids)
    closed = Closed()
    with narrowed_to(session, wanted):
        existing = {
            invoice.tenant_id: invoice
            for invoice in session.scalars(_CURRENT.where(Invoice.period == period).with_for_update())
        }
    if cutoff is None:
        due = any(i.status is InvoiceStatus.DRAFT and i.finalise_after <= now for i in existing.values())
        cutoff = _cutoff(session, finalising=finalise or grace <= timedelta(0) or due) or now
    drafts = []
    for tenant_id in wanted:
        invoice = existing.get(tenant_id)
        if invoice is not None and invoice.status is not InvoiceStatus.DRAFT:
            closed.invoices[tenant_id] = invoice
        else:
            drafts.append(tenant_id)
    readings = read(session, drafts, period, cutoff)
    redone: list[tuple[Invoice, Computed]] = []
    fresh: list[Computed] = []
    for tenant_id in sorted(drafts):
        client = readings.clients.get(tenant_id)
        if client is None:
            continue
        if client.end > now:
            closed.refused[tenant_id] = NOT_OVER
            continue
        computed = compute(readings, tenant_id)
        assert computed is not None
        if tenant_id in existing:
            redone.append((existing[tenant_id], computed))
        else:
            fresh.append(computed)
    done = redone + _new_drafts(session, fresh, now, grace, cutoff)
    _store(session, done, replaced=[invoice.id for invoice, _ in redone], cutoff=cutoff)
    closed.invoices.update((invoice.tenant_id, invoice) for invoice, _ in done)
    numbering.finalise(session, [invoice for invoice, _ in done if finalise or now >= invoice.finalise_after])
    return closed


def _cutoff(session: Session, finalising: bool) -> datetime | None:
    """PostgreSQL, for a close that may finalise: the ledger's cut-off, read from the clock
    that stamps usage events (migration 0012) once inserts in flight have committed. The
    SHARE lock waits for them and holds new ones until this close commits (a few seconds a
    month for a batch of clients), so every event is on exactly one invoice."""
    if not finalising or session.get_bind().dialect.name != "postgresql":
        return None
    session.execute(text("LOCK TABLE usage_events IN SHARE MODE"))
    return session.execute(text("SELECT clock_timestamp()")).scalar_one()


_CURRENT = select(Invoice).where(Invoice.kind == InvoiceKind.INVOICE, Invoice.status != InvoiceStatus.VOID)


def current_invoice(session: Session, tenant_id: uuid.UUID, period: str) -> Invoice | None:
    with narrowed_to(session, tenant_id):
        return session.scalars(_CURRENT.where(Invoice.period == period)).first()


def _totals(computed: Computed, cutoff: datetime) -> dict[str, Any]:
    seller, buyer = computed.parties()
    return {
        "subtotal": computed.subtotal,
        "tax": computed.tax,
        "total": computed.subtotal + computed.tax,
        "tax_lines": computed.tax_lines,
        "reverse_charge": computed.reverse_charge,
        "seller": seller,
        "buyer": buyer,
        "cutoff_at": cutoff,
    }


def _new_drafts(
    session: Session, fresh: list[Computed], now: datetime, grace: timedelta, cutoff: datetime
) -> list[tuple[Invoice, Computed]]:
    """New drafts inserted by one statement (a thousand ORM inserts cost more than the
    close's reading), then read back as objects for numbering."""
    if not fresh:
        return []
    rows = [
        {
            "id": new_id(),
            "tenant_id": computed.tenant_id,
            "kind": InvoiceKind.INVOICE,
            "period": computed.period,
            "status": InvoiceStatus.DRAFT,
            "number": None,
            "contract_id": computed.contract.id,
            "issuing_entity_id": computed.entity.id,
            "currency": computed.version.currency,
            "locale": computed.version.locale,
            "timezone": computed.version.billing_timezone,
            "period_start": computed.period_start,
            "period_end": computed.period_end,
            "payment_terms_days": computed.version.payment_terms_days,
            "issued_on": None,
            "due_on": None,
            "closed_at": now,
            "finalise_after": now + grace,
            "finalised_at": None,
            "corrects_id": None,
            "stripe_invoice_id": None,
            "stripe_state_at": 0,
            "sync_attempts": 0,
            "sync_error": None,
            "created_at": now,
            **_totals(computed, cutoff),
        }
        for computed in fresh
    ]
    insert_rows(session, Invoice, rows)
    made = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.id.in_([r["id"] for r in rows])))}
    return [(made[row["id"]], computed) for row, computed in zip(rows, fresh, strict=True)]


def _store(
    session: Session, done: list[tuple[Invoice, Computed]], replaced: list[uuid.UUID], cutoff: datetime
) -> None:
    """The drafts' lines (those of drafts computed again replaced) in one statement, and
    the totals of the drafts computed again."""
    if replaced:
        session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id.in_(replaced)))
    rows = []
    for invoice, computed in done:
        for position, (line, amount) in enumerate(zip(computed.lines, computed.rounded, strict=True)):
            rows.append(
                {
                    "id": new_id(),
                    "tenant_id": invoice.tenant_id,
                    "invoice_id": invoice.id,
                    "position": position,
                    "kind": line.kind,
                    "metric": line.metric,
                    "quantity": line.quantity.quantize(Decimal("0.000001")),
                    "unit_price": line.unit_price,
                    "amount": amount,
                    "tax_rate": computed.tax_rate,
                    "details": line.details,
                }
            )
        if invoice.id in replaced:
            for name, value in _totals(computed, cutoff).items():
                setattr(invoice, name, value)
    insert_rows(session, InvoiceLine, rows)
    session.flush()
