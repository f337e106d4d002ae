"""A provider's teams: created and changed by its admins and team leads (or the operator)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import FieldError, Forbidden, NotFound, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from services.workforce import profiles
from services.workforce.models import Team
from services.workforce.schemas import TeamCreate, TeamUpdate
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import fetch


def provider_of(session: Session, principal: Principal, provider_id: uuid.UUID | None) -> uuid.UUID:
    """The provider a workforce change is for: the caller's own, or the one an operator names."""
    if principal.org_kind is OrgKind.PROVIDER:
        if provider_id not in (None, principal.org_id):
            raise NotFound("no such provider", errors=[FieldError("/provider_id", "no such provider")])
        return principal.org_id
    if principal.org_kind is not OrgKind.OPERATOR:
        raise Forbidden("teams and agents belong to provider organisations")
    if provider_id is None:
        raise ValidationFailed(errors=[FieldError("/provider_id", "name the provider organisation")])
    provider = fetch(session, Organization, provider_id)
    if provider is None or provider.kind is not OrgKind.PROVIDER:
        raise NotFound("no such provider", errors=[FieldError("/provider_id", "no such provider")])
    return provider.id


def require_manager(principal: Principal) -> None:
    principal.require(Permission.WORKFORCE_MANAGE)
    if principal.org_kind is OrgKind.CLIENT:
        raise Forbidden("teams and agents belong to provider organisations")


def create_team(session: Session, principal: Principal, data: TeamCreate) -> Team:
    require_manager(principal)
    tenant_id = provider_of(session, principal, data.provider_id)
    errors: list[FieldError] = []
    country = data.country.upper()
    profiles.place(country, data.timezone, errors)
    calendar = profiles.calendar(data.calendar, "/calendar", errors)
    spoken = profiles.languages([lang.model_dump() for lang in data.languages], "/languages", errors)
    profiles.currency(data.hourly_cost.currency, "/hourly_cost/currency", errors)
    profiles.raise_if(errors)
    team = Team(
        tenant_id=tenant_id,
        name=data.name,
        country=country,
        timezone=data.timezone,
        calendar=calendar or {},
        languages=spoken or [],
        skills=profiles.skills([s.model_dump() for s in data.skills]) or [],
        hourly_cost_amount=data.hourly_cost.amount,
        hourly_cost_currency=data.hourly_cost.currency,
    )
    session.add(team)
    session.flush()
    return team


def update_team(session: Session, principal: Principal, team_id: uuid.UUID, data: TeamUpdate) -> Team:
    team = get_team(session, principal, team_id)  # 404 before 403: existence is not told
    require_manager(principal)
    fields = data.model_dump(exclude_unset=True)
    errors: list[FieldError] = []
    profiles.place(None, fields.get("timezone"), errors)
    if fields.get("calendar") is not None:
        team.calendar = profiles.calendar(fields["calendar"], "/calendar", errors) or team.calendar
    if fields.get("languages") is not None:
        team.languages = profiles.languages(fields["languages"], "/languages", errors) or []
    if fields.get("hourly_cost") is not None:
        profiles.currency(fields["hourly_cost"]["currency"], "/hourly_cost/currency", errors)
        team.hourly_cost_amount = fields["hourly_cost"]["amount"]
        team.hourly_cost_currency = fields["hourly_cost"]["currency"]
    profiles.raise_if(errors)
    if fields.get("skills") is not None:
        team.skills = profiles.skills(fields["skills"]) or []
    for name in ("name", "timezone"):
        if fields.get(name) is not None:
            setattr(team, name, fields[name])
    session.flush()
    return team


def get_team(session: Session, principal: Principal, team_id: uuid.UUID) -> Team:
    """Through the scope: a client, or another provider, finds no team."""
    principal.require(Permission.ORG_READ)
    team = fetch(session, Team, team_id)
    if team is None:
        raise NotFound("no such team")
    return team


def list_teams(
    session: Session, principal: Principal, page: PageRequest
) -> tuple[Sequence[Team], str | None]:
    principal.require(Permission.ORG_READ)
    return fetch_page(session, select(Team), Team.id, page)
