"""Contracts and their versions, and issuing entities: set by the operator, read by the client.

A contract is the account manager's (or an operator API client's) to set, for a client
of their portfolio; the client reads its own; a provider never sees one (404). A new
version takes effect from a day in the billing timezone, never inside a period already
finalised, so an issued invoice can always be recomputed from the versions it used.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.billing import credits, rating, tax
from services.billing.models import (
    FINAL_STATUSES,
    Contract,
    ContractVersion,
    Invoice,
    InvoiceKind,
    IssuingEntity,
)
from services.billing.schemas import ContractCreate, ContractVersionIn, IssuingEntityIn
from services.core import money
from services.core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from services.core.i18n import available_locales
from services.core.time import utcnow
from services.metering.service import BUILTIN_METRICS
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import fetch, narrowed_to


def require_operator(principal: Principal) -> None:
    principal.require(Permission.BILLING_MANAGE)
    if principal.org_kind is not OrgKind.OPERATOR:
        raise Forbidden("contracts and invoices are the operator's to set")


def require_reader(principal: Principal) -> None:
    """Clients read their own, operators their portfolio's; a provider learns nothing."""
    if principal.org_kind is OrgKind.PROVIDER:
        raise NotFound()
    principal.require(Permission.BILLING_READ)


def client_of(session: Session, tenant_id: uuid.UUID, pointer: str = "/tenant_id") -> Organization:
    organization = fetch(session, Organization, tenant_id)
    if organization is None or organization.kind is not OrgKind.CLIENT:
        raise NotFound("no such client organisation", errors=[FieldError(pointer, "no such client")])
    return organization


# ------------------------------------------------------------------ issuing entities


def create_issuing_entity(session: Session, principal: Principal, data: IssuingEntityIn) -> IssuingEntity:
    require_operator(principal)
    if principal.tenant_ids is not None:
        raise Forbidden("issuing entities are set by a platform administrator")
    problem = tax.vat_number_error(data.vat_number)
    if problem:
        raise ValidationFailed(errors=[FieldError("/vat_number", problem)])
    if session.scalar(select(IssuingEntity.id).where(IssuingEntity.code == data.code)) is not None:
        raise Conflict(
            f"an issuing entity with code {data.code} exists", errors=[FieldError("/code", "taken")]
        )
    entity = IssuingEntity(**data.model_dump() | {"vat_number": tax.normalise_vat_number(data.vat_number)})
    session.add(entity)
    session.flush()
    return entity


def list_issuing_entities(session: Session, principal: Principal) -> Sequence[IssuingEntity]:
    require_operator(principal)
    return session.scalars(select(IssuingEntity).order_by(IssuingEntity.code)).all()


# ------------------------------------------------------------------ contracts


def create_contract(session: Session, principal: Principal, data: ContractCreate) -> Contract:
    require_operator(principal)
    client = client_of(session, data.tenant_id)
    with narrowed_to(session, client.id):
        if session.scalar(select(Contract.id)) is not None:
            raise Conflict(
                "the client has a contract: add a version to it", errors=[FieldError("/tenant_id", "has one")]
            )
    contract = Contract(tenant_id=client.id, name=data.name)
    session.add(contract)
    session.flush()
    _add_version(session, principal, client, contract, data.version, "/version")
    return contract


def add_version(
    session: Session, principal: Principal, contract_id: uuid.UUID, data: ContractVersionIn
) -> ContractVersion:
    contract = fetch(session, Contract, contract_id, lock=True)
    if contract is None or principal.org_kind is OrgKind.PROVIDER:
        raise NotFound()
    require_operator(principal)
    return _add_version(session, principal, client_of(session, contract.tenant_id), contract, data, "")


def _add_version(
    session: Session,
    principal: Principal,
    client: Organization,
    contract: Contract,
    data: ContractVersionIn,
    at: str,
) -> ContractVersion:
    entity = session.scalar(select(IssuingEntity).where(IssuingEntity.code == data.issuing_entity))
    errors = version_errors(data, at)
    if entity is None:
        errors.append(FieldError(f"{at}/issuing_entity", "no such issuing entity"))
    previous = versions_of(session, contract.id)
    effective = data.effective_from or _first_of_month(data.billing_timezone)
    if previous and data.currency != previous[-1].currency:
        errors.append(FieldError(f"{at}/currency", "a contract keeps its currency: make a new contract"))
    if previous and data.billing_timezone != previous[-1].billing_timezone:
        message = "a contract keeps its billing timezone: its periods would overlap or leave a gap"
        errors.append(FieldError(f"{at}/billing_timezone", message))
    if previous and effective < previous[-1].effective_from:
        errors.append(
            FieldError(f"{at}/effective_from", f"before the version in force ({previous[-1].effective_from})")
        )
    finalised = last_finalised_period(session, client.id)
    if finalised and month_of_day(effective) <= finalised:
        errors.append(FieldError(f"{at}/effective_from", f"inside {finalised}, a finalised period"))
    if errors:
        raise ValidationFailed(errors=errors)
    assert entity is not None
    version = ContractVersion(
        tenant_id=client.id,
        contract_id=contract.id,
        version=len(previous) + 1,
        effective_from=effective,
        issuing_entity_id=entity.id,
        currency=data.currency,
        billing_timezone=data.billing_timezone,
        locale=data.locale or client.default_locale,
        payment_terms_days=data.payment_terms_days,
        tax_mode=data.tax_mode,
        vat_rate=data.vat_rate,
        client_vat_number=tax.normalise_vat_number(data.client_vat_number)
        if data.client_vat_number
        else None,
        client_address=data.client_address,
        billing_email=data.billing_email.lower() if data.billing_email else None,
        rate_card=data.rate_card.model_dump(mode="json"),
        sla_credits=data.sla_credits.model_dump(mode="json"),
        created_by=principal.subject_id,
    )
    session.add(version)
    session.flush()
    return version


def version_errors(data: ContractVersionIn, at: str) -> list[FieldError]:
    """Everything wrong with a version that needs no database, each with its pointer."""
    errors: list[FieldError] = []
    if not money.is_currency(data.currency):
        errors.append(FieldError(f"{at}/currency", "not an ISO 4217 currency"))
    card = data.rate_card
    if card.currency is not None and card.currency != data.currency:
        errors.append(FieldError(f"{at}/rate_card/currency", f"the contract's currency is {data.currency}"))
    try:
        ZoneInfo(data.billing_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(FieldError(f"{at}/billing_timezone", "not an IANA timezone"))
    if data.locale is not None and data.locale not in available_locales():
        errors.append(FieldError(f"{at}/locale", f"one of {', '.join(available_locales())}"))
    if data.client_vat_number:
        problem = tax.vat_number_error(data.client_vat_number)
        if problem:
            errors.append(FieldError(f"{at}/client_vat_number", problem))
    for index, price in enumerate(card.prices):
        for pointer, message in rating.price_errors(price.price()):
            errors.append(FieldError(f"{at}/rate_card/prices/{index}{pointer}", message))
    seen = set()
    for index, price in enumerate(card.prices):
        key = (price.metric, price.task_kind)
        if key in seen:
            errors.append(
                FieldError(f"{at}/rate_card/prices/{index}", "this metric and task kind are priced twice")
            )
        seen.add(key)
    for index, surcharge in enumerate(card.surcharges):
        for pointer, message in rating.surcharge_errors(surcharge.surcharge()):
            errors.append(FieldError(f"{at}/rate_card/surcharges/{index}{pointer}", message))
    terms = data.sla_credits
    for metric in terms.metrics:
        for pointer, message in credits.band_errors(terms.bands(metric), terms.cap_percent):
            where = "/cap_percent" if pointer == "/cap" else f"/metrics/{metric}{pointer}"
            errors.append(FieldError(f"{at}/sla_credits{where}", message))
    if not terms.metrics:
        for _pointer, message in credits.band_errors([], terms.cap_percent):
            errors.append(FieldError(f"{at}/sla_credits/cap_percent", message))
    return errors


def _first_of_month(zone: str) -> date:
    try:
        now = utcnow().astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        now = utcnow()
    return date(now.year, now.month, 1)


def month_of_day(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def get_contract(session: Session, principal: Principal, contract_id: uuid.UUID) -> Contract:
    require_reader(principal)
    contract = fetch(session, Contract, contract_id)
    if contract is None:
        raise NotFound()
    return contract


def list_contracts(session: Session, principal: Principal, tenant_id: uuid.UUID | None) -> Sequence[Contract]:
    require_reader(principal)
    with narrowed_to(session, tenant_id):
        return session.scalars(select(Contract).order_by(Contract.created_at, Contract.id)).all()


def versions_of(session: Session, contract_id: uuid.UUID) -> list[ContractVersion]:
    return list(
        session.scalars(
            select(ContractVersion)
            .where(ContractVersion.contract_id == contract_id)
            .order_by(ContractVersion.effective_from, ContractVersion.version)
        )
    )


def contract_of(session: Session, tenant_id: uuid.UUID) -> Contract | None:
    with narrowed_to(session, tenant_id):
        return session.scalars(select(Contract)).first()


def version_on(session: Session, tenant_id: uuid.UUID, day: date | None = None) -> ContractVersion | None:
    """The version in force on ``day`` (default: today in its timezone), else the first."""
    contract = contract_of(session, tenant_id)
    if contract is None:
        return None
    versions = versions_of(session, contract.id)
    if not versions:
        return None
    if day is None:
        day = utcnow().astimezone(ZoneInfo(versions[-1].billing_timezone)).date()
    in_force = [v for v in versions if v.effective_from <= day]
    return in_force[-1] if in_force else versions[0]


def last_finalised_period(session: Session, tenant_id: uuid.UUID) -> str | None:
    with narrowed_to(session, tenant_id):
        return session.scalar(
            select(func.max(Invoice.period)).where(
                Invoice.kind == InvoiceKind.INVOICE, Invoice.status.in_(FINAL_STATUSES)
            )
        )


def zone_of(session: Session, tenant_id: uuid.UUID) -> str:
    version = version_on(session, tenant_id)
    return version.billing_timezone if version else "UTC"


def contract_metrics(session: Session, tenant_id: uuid.UUID) -> frozenset[str]:
    """The metrics a client's contract prices beyond the built-in ones."""
    contract = contract_of(session, tenant_id)
    if contract is None:
        return frozenset()
    named = {p["metric"] for v in versions_of(session, contract.id) for p in v.rate_card.get("prices", [])}
    return frozenset(named - BUILTIN_METRICS)
