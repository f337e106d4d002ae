"""Onboarding and reading organisations."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from zoneinfo import available_timezones

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from tenants.models import Organization, PortfolioAssignment
from tenants.principal import OrgKind
from tenants.scoping import current_scope, fetch

# Sensible defaults per country for onboarding; every one can be overridden.
COUNTRY_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "FR": ("fr", "Europe/Paris", "EUR"),
    "DE": ("de", "Europe/Berlin", "EUR"),
    "ES": ("es", "Europe/Madrid", "EUR"),
    "IT": ("it", "Europe/Rome", "EUR"),
    "BE": ("fr", "Europe/Brussels", "EUR"),
    "NL": ("en", "Europe/Amsterdam", "EUR"),
    "SE": ("sv", "Europe/Stockholm", "SEK"),
    "DK": ("da", "Europe/Copenhagen", "DKK"),
    "PL": ("pl", "Europe/Warsaw", "PLN"),
    "RO": ("ro", "Europe/Bucharest", "RON"),
    "BG": ("bg", "Europe/Sofia", "BGN"),
    "HU": ("hu", "Europe/Budapest", "HUF"),
    "IN": ("en", "Asia/Kolkata", "INR"),
    "PH": ("en", "Asia/Manila", "PHP"),
    "IE": ("en", "Europe/Dublin", "EUR"),
    "GB": ("en", "Europe/London", "GBP"),
}


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:80] or "org"


def _validate(country: str, locale: str, timezone: str, currency: str) -> list[FieldError]:
    problems: list[FieldError] = []
    if not re.fullmatch(r"[A-Z]{2}", country) or Locale("en").territories.get(country) is None:
        problems.append(FieldError("/country", f"{country!r} is not an ISO 3166-1 alpha-2 country code"))
    try:
        Locale.parse(locale.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        problems.append(FieldError("/default_locale", f"{locale!r} is not a known locale"))
    if timezone not in available_timezones():
        problems.append(FieldError("/timezone", f"{timezone!r} is not an IANA time zone"))
    if currency not in list_currencies():
        problems.append(FieldError("/currency", f"{currency!r} is not an ISO 4217 currency"))
    return problems


def create_organization(
    session: Session,
    *,
    kind: OrgKind,
    name: str,
    country: str,
    default_locale: str | None = None,
    timezone: str | None = None,
    currency: str | None = None,
) -> Organization:
    """Onboard an organisation; only a session that sees every tenant may do it."""
    scope = current_scope(session)
    if scope is None or scope.tenant_ids is not None:
        raise PermissionError("onboarding needs the platform's access scope")
    country = country.strip().upper()
    fallback = COUNTRY_DEFAULTS.get(country, ("en", "UTC", "EUR"))
    locale, zone, money = default_locale or fallback[0], timezone or fallback[1], currency or fallback[2]
    problems = _validate(country, locale, zone, money)
    if not name.strip():
        problems.insert(0, FieldError("/name", "must not be empty"))
    if problems:
        raise ValidationFailed(errors=problems)
    slug = slugify(name)
    if session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None:
        raise Conflict(f"an organisation named {name!r} exists")
    organization = Organization(
        kind=kind,
        name=name.strip(),
        slug=slug,
        country=country,
        default_locale=locale,
        timezone=zone,
        currency=money,
    )
    session.add(organization)
    session.flush()
    return organization


def assign_account_manager(session: Session, client: Organization, account_manager_id: uuid.UUID) -> None:
    """Put a client in an account manager's portfolio (no-op if it is there)."""
    if client.kind != OrgKind.CLIENT:
        raise ValidationFailed(
            errors=[FieldError("/tenant_id", "only client organisations have account managers")]
        )
    existing = session.scalar(
        select(PortfolioAssignment.id).where(
            PortfolioAssignment.tenant_id == client.id,
            PortfolioAssignment.account_manager_id == account_manager_id,
        )
    )
    if existing is None:
        session.add(PortfolioAssignment(tenant_id=client.id, account_manager_id=account_manager_id))
        session.flush()


def get_organization(session: Session, organization_id: uuid.UUID) -> Organization:
    organization = fetch(session, Organization, organization_id)
    if organization is None:
        raise NotFound()
    return organization


def list_organizations(session: Session, page: PageRequest) -> tuple[Sequence[Organization], str | None]:
    return fetch_page(session, select(Organization), Organization.id, page)
