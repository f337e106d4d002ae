"""Contracts, rate cards, SLA credit terms and invoices in and out of the API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.billing import credits, rating
from services.billing.models import TaxMode

Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]
Percent = Annotated[Decimal, Field(max_digits=9, decimal_places=4, allow_inf_nan=False)]


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first: Amount
    up_to: Amount | None = None
    unit_price: Amount
    flat_fee: Amount = Decimal(0)


class PriceIn(BaseModel):
    """A metric's price: a flat ``unit_price`` or ``tiers`` (graduated or volume)."""

    model_config = ConfigDict(extra="forbid")

    metric: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
    task_kind: str | None = None
    unit_price: Amount | None = None
    tiers: list[TierIn] = []
    mode: rating.TierMode = rating.TierMode.GRADUATED

    def price(self) -> rating.Price:
        return rating.Price(
            metric=self.metric,
            unit_price=self.unit_price,
            tiers=tuple(rating.Tier(t.first, t.up_to, t.unit_price, t.flat_fee) for t in self.tiers),
            mode=self.mode,
            task_kind=self.task_kind,
        )


class SurchargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: Literal["out_of_hours", "language"]
    percent: Percent
    languages: list[str] = []

    def surcharge(self) -> rating.Surcharge:
        return rating.Surcharge(percent=self.percent, when=self.when, languages=tuple(self.languages))


class RateCard(BaseModel):
    """Prices per metric (and task kind), surcharges in percent and a monthly minimum.
    ``currency``, if given, must be the contract's."""

    model_config = ConfigDict(extra="forbid")

    currency: str | None = None
    prices: list[PriceIn] = []
    surcharges: list[SurchargeIn] = []
    minimum: Amount = Decimal(0)  # per month, major units, prorated by days in force

    def price_for(self, metric: str, task_kind: str | None) -> rating.Price | None:
        """The most specific price: the metric's for this task kind, else its general one."""
        general = None
        for candidate in self.prices:
            if candidate.metric != metric:
                continue
            if candidate.task_kind == task_kind and task_kind is not None:
                return candidate.price()
            if candidate.task_kind is None:
                general = candidate.price()
        return general


class BandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    below: Percent
    credit_percent: Percent


class CreditTerms(BaseModel):
    """Monthly attainment per SLA metric to a credit of the month's charges, in bands
    (``below`` descending, credit ascending), all metrics together capped."""

    model_config = ConfigDict(extra="forbid")

    metrics: dict[Literal["first_response", "resolution", "next_update"], list[BandIn]] = {}
    cap_percent: Percent = Decimal(100)

    def bands(self, metric: str) -> list[credits.Band]:
        return [credits.Band(b.below, b.credit_percent) for b in self.metrics.get(metric, [])]  # type: ignore[call-overload]


Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class ContractVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: date | None = None  # default: the first day of the current month
    issuing_entity: Annotated[str, StringConstraints(min_length=1, max_length=8)]  # its code
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(examples=["EUR"])]
    billing_timezone: str = "Europe/Paris"
    locale: str | None = None  # default: the client's
    payment_terms_days: Annotated[int, Field(ge=0, le=120)] = 30
    tax_mode: TaxMode = TaxMode.AUTO
    vat_rate: Annotated[Decimal, Field(ge=0, lt=100, decimal_places=4)] = Decimal(20)
    client_vat_number: str | None = None
    client_address: Annotated[str, StringConstraints(max_length=1000)] = ""
    billing_email: Email | None = None
    rate_card: RateCard
    sla_credits: CreditTerms = CreditTerms()


class ContractCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: uuid.UUID
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    version: ContractVersionIn


class ContractVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    version: int
    effective_from: date
    issuing_entity_id: uuid.UUID
    currency: str
    billing_timezone: str
    locale: str
    payment_terms_days: int
    tax_mode: TaxMode
    vat_rate: Decimal
    client_vat_number: str | None
    client_address: str
    billing_email: str | None = None
    rate_card: dict[str, Any]
    sla_credits: dict[str, Any]
    created_at: datetime


class ContractOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    versions: list[ContractVersionOut]


class IssuingEntityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,8}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    vat_number: str
    address: Annotated[str, StringConstraints(max_length=1000)]
    email: str = ""


class IssuingEntityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    country: str
    vat_number: str
    address: str
    email: str


class LineOut(BaseModel):
    id: uuid.UUID
    position: int
    kind: str
    description: str
    metric: str | None
    quantity: Decimal
    unit_price: Decimal | None
    amount: int
    tax_rate: Decimal
    details: dict[str, Any]
    evidence: str | None = None  # the evidence's URL, for a credit line


class TaxLineOut(BaseModel):
    rate: Decimal
    taxable: int
    tax: int


class InvoiceOut(BaseModel):
    id: uuid.UUID | None  # None for the live preview
    tenant_id: uuid.UUID
    kind: str
    number: str | None
    status: str
    period: str
    currency: str
    locale: str
    timezone: str  # the contract's billing timezone: the period's days are its days
    period_start: datetime
    period_end: datetime
    lines: list[LineOut]
    subtotal: int
    tax: int
    total: int
    tax_lines: list[TaxLineOut]
    reverse_charge: bool
    issued_on: date | None
    due_on: date | None
    seller: dict[str, Any]
    buyer: dict[str, Any]
    corrects_id: uuid.UUID | None
    stripe_invoice_id: str | None
