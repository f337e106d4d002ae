"""Who is acting, for which organisation, with which roles, seeing which tenants."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Literal

from services.core.errors import Forbidden, InsufficientScope
from tenants.scoping import AccessScope


class OrgKind(enum.StrEnum):
    CLIENT = "client"
    PROVIDER = "provider"
    OPERATOR = "operator"


class Role(enum.StrEnum):
    CLIENT_ADMIN = "client_admin"
    CLIENT_SUBMITTER = "client_submitter"
    CLIENT_VIEWER = "client_viewer"
    PROVIDER_ADMIN = "provider_admin"
    TEAM_LEAD = "team_lead"
    AGENT = "agent"
    ACCOUNT_MANAGER = "account_manager"
    PLATFORM_ADMIN = "platform_admin"


ROLES_BY_KIND: dict[OrgKind, frozenset[Role]] = {
    OrgKind.CLIENT: frozenset({Role.CLIENT_ADMIN, Role.CLIENT_SUBMITTER, Role.CLIENT_VIEWER}),
    OrgKind.PROVIDER: frozenset({Role.PROVIDER_ADMIN, Role.TEAM_LEAD, Role.AGENT}),
    OrgKind.OPERATOR: frozenset({Role.ACCOUNT_MANAGER, Role.PLATFORM_ADMIN}),
}


class Permission(enum.StrEnum):
    """What an action needs. API clients hold them as OAuth scopes; users through roles."""

    ORG_READ = "org:read"
    API_CLIENTS_MANAGE = "api_clients:manage"
    QUEUES_MANAGE = "queues:manage"  # queues and task kinds
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"  # submit, edit, comment, attach, transition
    WEBHOOKS_MANAGE = "webhooks:manage"
    SLA_READ = "sla:read"  # the contract's SLA: policies, clocks, attainment, breaches
    SLA_MANAGE = "sla:manage"  # calendars and policies: the operator sets them for a client
    WORKFORCE_MANAGE = "workforce:manage"  # a provider's teams and agents
    ENGAGEMENTS_MANAGE = "engagements:manage"  # which team serves which client queue: the operator
    TASKS_ASSIGN = "tasks:assign"  # give a task to an agent by hand: team leads, operators
    BILLING_READ = "billing:read"  # a client's usage, contract and invoices
    BILLING_MANAGE = "billing:manage"  # contracts, usage items, closing periods: the operator


_READ = frozenset({Permission.ORG_READ, Permission.TASKS_READ})
_WORK = _READ | {Permission.TASKS_WRITE}
# A client reads its contract's SLA and its invoices; providers never see a client's contract.
_CLIENT_READ = _READ | {Permission.SLA_READ, Permission.BILLING_READ}

PERMISSIONS_BY_ROLE: dict[Role, frozenset[Permission]] = {
    Role.CLIENT_ADMIN: frozenset(Permission)
    - {
        Permission.SLA_MANAGE,
        Permission.WORKFORCE_MANAGE,
        Permission.ENGAGEMENTS_MANAGE,
        Permission.TASKS_ASSIGN,
        Permission.BILLING_MANAGE,
    },
    Role.CLIENT_SUBMITTER: _WORK | _READ | {Permission.SLA_READ},
    Role.CLIENT_VIEWER: _CLIENT_READ,
    Role.PROVIDER_ADMIN: _WORK
    | {Permission.API_CLIENTS_MANAGE, Permission.WORKFORCE_MANAGE, Permission.TASKS_ASSIGN},
    Role.TEAM_LEAD: _WORK | {Permission.WORKFORCE_MANAGE, Permission.TASKS_ASSIGN},
    Role.AGENT: _WORK,
    Role.ACCOUNT_MANAGER: _READ
    | {
        Permission.SLA_READ,
        Permission.SLA_MANAGE,
        Permission.ENGAGEMENTS_MANAGE,
        Permission.TASKS_ASSIGN,
        Permission.BILLING_READ,
        Permission.BILLING_MANAGE,
    },
    Role.PLATFORM_ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    subject_id: uuid.UUID
    subject_kind: Literal["user", "api_client"]
    org_id: uuid.UUID
    org_kind: OrgKind
    roles: frozenset[Role]
    permissions: frozenset[Permission]
    # The tenants whose rows it may see; None means all of them (platform admins).
    tenant_ids: frozenset[uuid.UUID] | None
    display_name: str = ""
    locale: str | None = None  # the user's own choice, if any
    org_locale: str = "en"  # the organisation's default
    timezone: str | None = None  # for showing times: the user's, else the organisation's
    # A provider's (client tenant, queue) pairs, from its engagements (``tenants.grants``):
    # resolved for every request, never remembered with the principal.
    granted_queues: frozenset[tuple[uuid.UUID, uuid.UUID]] = frozenset()
    # (client tenant, queue, team) of its revoked engagements: what the team held there.
    held_queues: frozenset[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = frozenset()
    # An agent's own id (a provider user who is not a lead), with the grants: of a queue's
    # tasks, they reach those waiting, offered to them or held by them.
    agent_id: uuid.UUID | None = None
    # The name the agent goes by with clients, if their provider shows one (with the grants).
    public_name: str = ""

    @property
    def access(self) -> AccessScope:
        if self.tenant_ids is None:
            return AccessScope.everything()
        return AccessScope(
            self.tenant_ids,
            granted_queues=self.granted_queues,
            held_queues=self.held_queues,
            agent_id=self.agent_id,
        )

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission in self.permissions:
            return
        if self.subject_kind == "api_client":
            raise InsufficientScope(
                f"scope {permission.value} is required", extra={"scope": permission.value}
            )
        raise Forbidden()


def permissions_for_roles(roles: frozenset[Role]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= PERMISSIONS_BY_ROLE[role]
    return frozenset(granted)
