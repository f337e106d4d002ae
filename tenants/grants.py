"""A provider principal's grants: the client queues its teams are engaged on.

Resolved for every request, after the principal (which the token cache may remember), so
that a revoked engagement takes the visibility away with the next request. The workforce
context knows engagements; it registers the resolver here (``services.models`` loads it),
so identity, which binds every request's scope, depends on no other context.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy.orm import Session

from tenants.principal import OrgKind, Principal
from tenants.scoping import AccessScope, bind


class Grants(NamedTuple):
    # The (client tenant, queue) pairs engaged on.
    engaged: frozenset[tuple[uuid.UUID, uuid.UUID]]
    # The (client tenant, queue, team) of the engagements revoked, whose team keeps the
    # tasks it holds there (``AccessScope.held_queues``).
    revoked: frozenset[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]
    # The agent's id, if the principal is an agent (not a lead): see ``AccessScope.agent_id``.
    agent_id: uuid.UUID | None = None
    # The name the agent goes by with clients ("": none): see ``Principal.public_name``.
    public_name: str = ""


Resolver = Callable[[Session, Principal], Grants]
_resolvers: list[Resolver] = []


def register(resolver: Resolver) -> Resolver:
    if resolver not in _resolvers:
        _resolvers.append(resolver)
    return resolver


def acting(session: Session, principal: Principal) -> Principal:
    """Scope ``session`` to ``principal``, with its grants if it is a provider's."""
    if principal.org_kind is OrgKind.PROVIDER and _resolvers:
        bind(session, AccessScope.authentication())  # engagements are read like identity tables
        granted: set[tuple[uuid.UUID, uuid.UUID]] = set()
        held: set[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = set()
        agent_id: uuid.UUID | None = None
        public_name = ""
        for resolve in _resolvers:
            found = resolve(session, principal)
            granted |= found.engaged
            held |= found.revoked
            agent_id = agent_id or found.agent_id
            public_name = public_name or found.public_name
        principal = dataclasses.replace(
            principal,
            granted_queues=frozenset(granted),
            held_queues=frozenset(held),
            agent_id=agent_id,
            public_name=public_name,
        )
    bind(session, principal.access)
    return principal
