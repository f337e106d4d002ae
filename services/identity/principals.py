"""Turning an authenticated user or API client into a ``Principal``."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.identity.models import ApiClient, User
from tenants.models import Membership, Organization, PortfolioAssignment
from tenants.principal import OrgKind, Permission, Principal, Role, permissions_for_roles
from tenants.scoping import fetch


def _organization(session: Session, organization_id: uuid.UUID) -> Organization:
    organization = fetch(session, Organization, organization_id)
    if organization is None:
        raise LookupError(f"organisation {organization_id} not readable while authenticating")
    return organization


def visible_tenants(
    session: Session, user_id: uuid.UUID, org_id: uuid.UUID, roles: frozenset[Role]
) -> frozenset[uuid.UUID] | None:
    if Role.PLATFORM_ADMIN in roles:
        return None
    visible = {org_id}
    if Role.ACCOUNT_MANAGER in roles:
        visible |= set(
            session.scalars(
                select(PortfolioAssignment.tenant_id).where(PortfolioAssignment.account_manager_id == user_id)
            )
        )
        # The operator's supply side: an account manager engages providers' teams on the
        # queues of their clients, so sees the providers (their teams, agents and load).
        visible |= set(session.scalars(select(Organization.id).where(Organization.kind == OrgKind.PROVIDER)))
    return frozenset(visible)


def for_user(session: Session, user: User) -> Principal:
    """Must run while the session may read identity tables (authentication scope)."""
    organization = _organization(session, user.tenant_id)
    roles = frozenset(
        session.scalars(
            # Memberships are only ever created in the user's own organisation.
            select(Membership.role).where(Membership.user_id == user.id)
        )
    )
    return Principal(
        subject_id=user.id,
        subject_kind="user",
        org_id=organization.id,
        org_kind=OrgKind(organization.kind),
        roles=roles,
        permissions=permissions_for_roles(roles),
        tenant_ids=visible_tenants(session, user.id, organization.id, roles),
        display_name=user.display_name,
        locale=user.locale,
        org_locale=organization.default_locale,
        timezone=user.timezone or organization.timezone,
    )


def for_api_client(organization: Organization, client: ApiClient, scopes: str) -> Principal:
    """An API client acts for its own organisation, within the scopes of its token. A
    client of the operator is the platform's own integration (contracts, SLA policies):
    like a platform admin, who alone may create it, it reaches every tenant."""
    granted = frozenset(p for p in Permission if p.value in scopes.split())
    is_operator = OrgKind(organization.kind) is OrgKind.OPERATOR
    return Principal(
        subject_id=client.id,
        subject_kind="api_client",
        org_id=organization.id,
        org_kind=OrgKind(organization.kind),
        roles=frozenset(),
        permissions=granted,
        tenant_ids=None if is_operator else frozenset({organization.id}),
        display_name=client.name,
        org_locale=organization.default_locale,
    )
