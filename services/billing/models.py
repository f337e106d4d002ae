"""Contracts (versioned), issuing entities, invoices and their lines.

A contract version is never edited: a change is a new version effective from a day in
the contract's billing timezone, so every day of a period is priced by the version in
force on it, and an invoice can be recomputed and defended. A finalised invoice is never
edited either: it is corrected by a credit note, or voided and reissued.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin, Micros, str_enum
from services.core.time import utcnow
from tenants.scoping import TenantOwned


class IssuingEntity(IdMixin, Base):
    """A legal entity of the operator that issues invoices (one per region, say), with
    its own gap-free numbering: ``<code>-<year>-<number>``. Platform reference data, not
    a tenant's: its details are copied onto every invoice it issues."""

    __tablename__ = "issuing_entities"

    code: Mapped[str] = mapped_column(String(8), unique=True)  # the numbering prefix: "FR"
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    vat_number: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvoiceNumberCounter(Base):
    """The last number an issuing entity gave in a year: taken under this row's lock at
    finalisation. One row per year, since clients of one entity in different timezones
    may be issued in two years at once around New Year."""

    __tablename__ = "invoice_number_counters"

    issuing_entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuing_entities.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)


class Contract(IdMixin, TenantOwned, Base):
    """A client's contract with the operator: one per client, in versions."""

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Stripe: one customer per client, and the zero-price subscription its invoice items attach to.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64))


class TaxMode(enum.StrEnum):
    AUTO = "auto"  # reverse charge for EU cross-border B2B with a VAT number, else domestic
    DOMESTIC = "domestic"


class ContractVersion(IdMixin, TenantOwned, Base):
    __tablename__ = "contract_versions"
    __table_args__ = (UniqueConstraint("tenant_id", "contract_id", "version"),)

    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date)  # a day in ``billing_timezone``
    issuing_entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuing_entities.id"))
    currency: Mapped[str] = mapped_column(String(3))
    billing_timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))  # the invoice's language
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    tax_mode: Mapped[TaxMode] = mapped_column(str_enum(TaxMode, 16))
    vat_rate: Mapped[Decimal] = mapped_column(Micros())  # percent, the domestic rate
    client_vat_number: Mapped[str | None] = mapped_column(String(20))
    client_address: Mapped[str] = mapped_column(Text, default="")
    billing_email: Mapped[str | None] = mapped_column(String(320))  # where Stripe sends the invoice
    # The rate card and SLA credit terms, as ``schemas.RateCard`` and ``schemas.CreditTerms``.
    rate_card: Mapped[dict[str, Any]] = mapped_column(JSON)
    sla_credits: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvoiceKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"  # closed, still taking late usage during the grace period; recomputed freely
    PENDING_SYNC = "pending_sync"  # finalised and numbered; not yet in Stripe
    OPEN = "open"  # sent through Stripe, awaiting payment
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    VOID = "void"


FINAL_STATUSES = frozenset(set(InvoiceStatus) - {InvoiceStatus.DRAFT})


class Invoice(IdMixin, TenantOwned, Base):
    """One per client and period (a partial unique index: at most one that is not void)."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index(
            "uq_invoices_tenant_id_period",
            "tenant_id",
            "period",
            unique=True,
            postgresql_where=text("kind = 'invoice' AND status <> 'void'"),
            sqlite_where=text("kind = 'invoice' AND status <> 'void'"),
        ),
        Index("ix_invoices_status_finalise_after", "status", "finalise_after"),
        UniqueConstraint("tenant_id", "number"),
    )

    kind: Mapped[InvoiceKind] = mapped_column(str_enum(InvoiceKind, 16), default=InvoiceKind.INVOICE)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM, in the contract's billing timezone
    status: Mapped[InvoiceStatus] = mapped_column(str_enum(InvoiceStatus, 16), default=InvoiceStatus.DRAFT)
    number: Mapped[str | None] = mapped_column(String(32))
    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"))
    issuing_entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuing_entities.id"))
    currency: Mapped[str] = mapped_column(String(3))
    locale: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{rate, taxable, tax}]
    reverse_charge: Mapped[bool] = mapped_column(default=False)
    seller: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # copied when issued
    buyer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    issued_on: Mapped[date | None] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    finalise_after: Mapped[datetime]
    finalised_at: Mapped[datetime | None]
    # Usage recorded up to here is on this invoice; later usage of its period is adjusted on the next.
    cutoff_at: Mapped[datetime]
    corrects_id: Mapped[uuid.UUID | None]  # a credit note or a reissue: the invoice it corrects
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(64))
    # The Stripe event time of the last state applied: an older event never undoes a newer one.
    stripe_state_at: Mapped[int] = mapped_column(BigInteger, default=0)
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0)
    sync_error: Mapped[str | None] = mapped_column(String(500))
    # Voided here after it reached Stripe: when Stripe's copy was voided (or its draft deleted) too.
    stripe_voided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LineKind(enum.StrEnum):
    USAGE = "usage"
    SURCHARGE = "surcharge"
    MINIMUM = "minimum"  # the top-up to the monthly minimum commitment
    MANUAL = "manual"  # an operator's priced item, with its reason
    ADJUSTMENT = "adjustment"  # usage of an earlier, finalised period, recorded after it closed
    CREDIT = "credit"  # an SLA service credit: negative, with its evidence


class InvoiceLine(IdMixin, TenantOwned, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_invoice_id_position", "invoice_id", "position"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[LineKind] = mapped_column(str_enum(LineKind, 16))
    metric: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Micros())
    unit_price: Mapped[Decimal | None] = mapped_column(Micros())  # major units; None for tiered lines
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units, rounded once, half-even
    tax_rate: Mapped[Decimal] = mapped_column(Micros())
    # What the line says, rendered in the invoice's locale: task kind, language, version,
    # days, tiers, attainment and credit percent, the adjusted period...
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
