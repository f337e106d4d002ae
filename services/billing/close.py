"""Closing a period: usage rated into an invoice's lines, credits, minimum and tax.

The usage is aggregated by the database (one ``GROUP BY`` per contract version in force
during the period), never loaded event by event, so a close holds no more in memory for
ten million events than for ten (bench/billing_close.py). An invoice covers the usage of
its period recorded up to its cut-off; usage of an earlier period recorded after that
period's cut-off is billed here as adjustments. Everything is computed again on every
close of a draft, so closing twice gives the same invoice and a close that crashed half
way (one transaction per tenant) is simply run again.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.billing import contracts, credits, numbering, rating, tax
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
from services.billing.schemas import CreditTerms, RateCard
from services.core import money
from services.core.errors import FieldError, ValidationFailed
from services.core.time import month_bounds, month_of, utcnow
from services.metering.models import UsageEvent
from services.sla import reports
from tenants.models import Organization
from tenants.scoping import fetch, narrowed_to

# Shares of a tiered charge (a surcharge on part of it) divide; twelve places are far
# below a minor unit, and the line is rounded once, afterwards.
_SHARE = Context(prec=38)
_SHARE_QUANTUM = Decimal("1e-12")


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
        }
        return seller, buyer


def compute(
    session: Session, tenant_id: uuid.UUID, period: str, cutoff: datetime, previous_cutoff: datetime | None
) -> Computed | None:
    """The invoice of ``period`` as the usage recorded up to ``cutoff`` makes it (None: the
    client has no contract in force during the period)."""
    contract = contracts.contract_of(session, tenant_id)
    if contract is None:
        return None
    versions = contracts.versions_of(session, contract.id)
    if not versions:
        return None
    zone = versions[-1].billing_timezone
    start, end = month_bounds(period, zone)
    first_day, end_day = _day(start, zone), _day(end, zone)
    slices = rating.days_in_force([v.effective_from for v in versions], first_day, end_day)
    if not slices:
        return None
    days_in_period = (end_day - first_day).days
    lines: list[Line] = []
    cumulative: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    minimum = Decimal(0)
    for index, slice_start, slice_end in slices:
        version = versions[index]
        card = RateCard.model_validate(version.rate_card)
        since, until = _instant(slice_start, zone), _instant(slice_end, zone)
        part = {"version": version.version, "from": slice_start.isoformat(), "to": slice_end.isoformat()}
        groups = _usage(session, tenant_id, since, until, cutoff, after=None)
        lines += _rated(card, groups, cumulative, part if len(slices) > 1 else {})
        minimum += rating.prorated(
            card.minimum,
            (slice_end - slice_start).days,
            days_in_period,
            days_before=(slice_start - first_day).days,
        )
    lines += _adjustments(session, tenant_id, versions, start, zone, cutoff, previous_cutoff)
    charges = sum((line.amount for line in lines), Decimal(0))
    if charges < minimum:
        lines.append(Line(LineKind.MINIMUM, minimum - charges, Decimal(1), details={"minimum": str(minimum)}))
    version = versions[slices[-1][0]]
    base = max(charges, minimum)
    lines += _credits(session, tenant_id, version, start, end, base)
    entity = session.get(IssuingEntity, version.issuing_entity_id)
    client = fetch(session, Organization, tenant_id)
    assert entity is not None and client is not None
    treatment = (
        tax.treatment(entity.country, client.country, version.client_vat_number, version.vat_rate)
        if version.tax_mode is TaxMode.AUTO
        else tax.TaxTreatment(version.vat_rate, reverse_charge=False)
    )
    return Computed(
        tenant_id=tenant_id,
        period=period,
        contract=contract,
        version=version,
        entity=entity,
        client=client,
        period_start=start,
        period_end=end,
        lines=lines,
        rounded=[money.to_minor(line.amount, version.currency) for line in lines],
        tax_rate=treatment.rate,
        reverse_charge=treatment.reverse_charge,
    )


def _day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def _instant(day: date, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))


@dataclass(frozen=True)
class Group:
    """Usage of one kind, summed by the database."""

    metric: str
    task_kind: str | None
    language: str | None
    out_of_hours: bool
    unit_price: Decimal | None
    reason: str | None
    quantity: Decimal
    events: int
    occurred_period: str | None = None  # adjustments: the period the usage belongs to


def _usage(
    session: Session,
    tenant_id: uuid.UUID,
    since: datetime,
    until: datetime,
    cutoff: datetime,
    after: datetime | None,
) -> list[Group]:
    dimensions = (
        UsageEvent.metric,
        UsageEvent.task_kind,
        UsageEvent.language,
        UsageEvent.out_of_hours,
        UsageEvent.unit_price,
        UsageEvent.reason,
    )
    query = (
        select(*dimensions, func.sum(UsageEvent.quantity), func.count())
        .where(
            UsageEvent.occurred_at >= since, UsageEvent.occurred_at < until, UsageEvent.recorded_at <= cutoff
        )
        .group_by(*dimensions)
        .order_by(*dimensions)
    )
    if after is not None:
        query = query.where(UsageEvent.recorded_at > after)
    with narrowed_to(session, tenant_id):
        found = session.execute(query).all()
    return [
        Group(metric, kind, language, bool(ooh), price, reason if price is not None else None, total, count)
        for metric, kind, language, ooh, price, reason, total, count in found
        if total
    ]


def _rated(
    card: RateCard,
    groups: list[Group],
    cumulative: dict[tuple[str, str | None], Decimal],
    part: dict[str, Any],
) -> list[Line]:
    """Usage lines (one per metric and task kind), manual items, then surcharges. Tiers
    count the whole period: a slice's units continue from the slices before it."""
    lines: list[Line] = []
    by_price: dict[tuple[str, str | None], list[Group]] = defaultdict(list)
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
        else:
            by_price[(group.metric, group.task_kind)].append(group)
    priced: list[tuple[Line, list[Group]]] = []
    for (metric, kind), members in sorted(by_price.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        price = card.price_for(metric, kind)
        if price is None:
            continue  # measured, not billed (SLA outcomes, say)
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


def _adjustments(
    session: Session,
    tenant_id: uuid.UUID,
    versions: list[ContractVersion],
    start: datetime,
    zone: str,
    cutoff: datetime,
    previous_cutoff: datetime | None,
) -> list[Line]:
    """Usage of earlier periods recorded after the last finalised invoice's cut-off,
    priced on its own by the version in force when it happened."""
    if previous_cutoff is None:
        return []
    lines = []
    oldest = _instant(versions[0].effective_from, zone)
    for group in _usage(session, tenant_id, oldest, start, cutoff, after=previous_cutoff):
        lines += _adjusted(session, tenant_id, versions, zone, group, previous_cutoff, cutoff)
    return lines


def _adjusted(
    session: Session,
    tenant_id: uuid.UUID,
    versions: list[ContractVersion],
    zone: str,
    group: Group,
    previous_cutoff: datetime,
    cutoff: datetime,
) -> list[Line]:
    periods = _periods_of(session, tenant_id, group, zone, previous_cutoff, cutoff)
    lines = []
    for period, quantity in periods.items():
        day = month_bounds(period, zone)[0]
        version = max(
            (v for v in versions if _instant(v.effective_from, zone) <= day),
            key=lambda v: v.version,
            default=versions[0],
        )
        unit: Decimal | None = group.unit_price
        if unit is not None:
            amount = quantity * unit
        else:
            price = RateCard.model_validate(version.rate_card).price_for(group.metric, group.task_kind)
            if price is None:
                continue
            amount = rating.charge(price, abs(quantity)) * (1 if quantity > 0 else -1)
            unit = price.unit_price
        details = {"period": period, "task_kind": group.task_kind, "reason": group.reason}
        lines.append(Line(LineKind.ADJUSTMENT, amount, quantity, group.metric, unit, details))
    return lines


def _periods_of(
    session: Session, tenant_id: uuid.UUID, group: Group, zone: str, after: datetime, cutoff: datetime
) -> dict[str, Decimal]:
    """A late group's quantity by the month it happened in (it may span several)."""
    query = select(UsageEvent.occurred_at, UsageEvent.quantity).where(
        UsageEvent.metric == group.metric,
        UsageEvent.recorded_at > after,
        UsageEvent.recorded_at <= cutoff,
    )
    for column, value in ((UsageEvent.task_kind, group.task_kind), (UsageEvent.unit_price, group.unit_price)):
        query = query.where(column.is_(None) if value is None else column == value)
    by_period: dict[str, Decimal] = defaultdict(Decimal)
    with narrowed_to(session, tenant_id):
        for occurred_at, quantity in session.execute(query):
            by_period[month_of(occurred_at, zone)] += quantity
    return {p: q for p, q in sorted(by_period.items()) if q}


def _credits(
    session: Session,
    tenant_id: uuid.UUID,
    version: ContractVersion,
    start: datetime,
    end: datetime,
    base: Decimal,
) -> list[Line]:
    """One negative line per SLA metric whose monthly attainment falls in a band; the
    credits of all metrics together stop at the cap."""
    terms = CreditTerms.model_validate(version.sla_credits)
    if not terms.metrics or base <= 0:
        return []
    rows = reports.attainment_of(session, reports.ReportFilter(since=start, until=end, tenant_id=tenant_id))
    met: dict[str, int] = defaultdict(int)
    breached: dict[str, int] = defaultdict(int)
    for row in rows:
        met[row.metric.value] += row.met
        breached[row.metric.value] += row.breached
    lines, left = [], terms.cap_percent
    for metric in sorted(terms.metrics):
        counted = met[metric] + breached[metric]
        if not counted or left <= 0:
            continue
        attainment = (Decimal(met[metric]) * 100 / counted).quantize(Decimal("0.01"))
        percent = min(credits.credit_percent(attainment, terms.bands(metric), terms.cap_percent), left)
        if not percent:
            continue
        left -= percent
        details = {
            "sla_metric": metric,
            "attainment": str(attainment),
            "met": met[metric],
            "breached": breached[metric],
            "percent": str(percent),
        }
        lines.append(Line(LineKind.CREDIT, -credits.credit_amount(base, percent), base, details=details))
    return lines


# ------------------------------------------------------------------ storing


def close(
    session: Session, tenant_id: uuid.UUID, period: str, grace: timedelta, finalise: bool = False
) -> Invoice | None:
    """The tenant's invoice for ``period``: created as a draft, recomputed while it is one,
    finalised (numbered, frozen) once its grace period is over or when asked. A final
    invoice is returned as it is: closing is idempotent."""
    now = utcnow()
    if month_bounds(period, contracts.zone_of(session, tenant_id))[1] > now:
        raise ValidationFailed(errors=[FieldError("/period", "the period is not over: see the preview")])
    invoice = current_invoice(session, tenant_id, period, lock=True)
    if invoice is not None and invoice.status is not InvoiceStatus.DRAFT:
        return invoice
    computed = compute(session, tenant_id, period, now, previous_cutoff(session, tenant_id, period))
    if computed is None:
        return None
    if invoice is None:
        invoice = Invoice(
            tenant_id=tenant_id,
            period=period,
            contract_id=computed.contract.id,
            closed_at=now,
            finalise_after=now + grace,
            payment_terms_days=computed.version.payment_terms_days,
            issuing_entity_id=computed.entity.id,
            currency=computed.version.currency,
            locale=computed.version.locale,
            timezone=computed.version.billing_timezone,
            period_start=computed.period_start,
            period_end=computed.period_end,
            cutoff_at=now,
        )
        session.add(invoice)
        session.flush()
    store(session, invoice, computed, now)
    if finalise or now >= invoice.finalise_after:
        numbering.finalise(session, invoice, computed)
    return invoice


def current_invoice(
    session: Session, tenant_id: uuid.UUID, period: str, lock: bool = False
) -> Invoice | None:
    query = select(Invoice).where(
        Invoice.period == period, Invoice.kind == InvoiceKind.INVOICE, Invoice.status != InvoiceStatus.VOID
    )
    if lock:
        query = query.with_for_update()
    with narrowed_to(session, tenant_id):
        return session.scalars(query).first()


def previous_cutoff(session: Session, tenant_id: uuid.UUID, period: str) -> datetime | None:
    """The cut-off of the last finalised invoice before ``period``: usage of earlier periods
    recorded after it is adjusted on this one."""
    with narrowed_to(session, tenant_id):
        return session.scalar(
            select(func.max(Invoice.cutoff_at)).where(
                Invoice.kind == InvoiceKind.INVOICE,
                Invoice.period < period,
                Invoice.status != InvoiceStatus.DRAFT,
                Invoice.status != InvoiceStatus.VOID,
            )
        )


def store(session: Session, invoice: Invoice, computed: Computed, now: datetime) -> None:
    """Replace a draft's lines and totals with ``computed``."""
    session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
    rate = computed.tax_rate
    for position, (line, amount) in enumerate(zip(computed.lines, computed.rounded, strict=True)):
        session.add(
            InvoiceLine(
                tenant_id=invoice.tenant_id,
                invoice_id=invoice.id,
                position=position,
                kind=line.kind,
                metric=line.metric,
                quantity=line.quantity.quantize(Decimal("0.000001")),
                unit_price=line.unit_price,
                amount=amount,
                tax_rate=rate,
                details=line.details,
            )
        )
    invoice.subtotal, invoice.tax = computed.subtotal, computed.tax
    invoice.total = invoice.subtotal + invoice.tax
    invoice.tax_lines = computed.tax_lines
    invoice.reverse_charge = computed.reverse_charge
    invoice.seller, invoice.buyer = computed.parties()
    invoice.cutoff_at = now
    session.flush()
