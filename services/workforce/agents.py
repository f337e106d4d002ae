"""Agents: a provider's users in a team, with what they can do and whether they are there.

Presence is kept alive by heartbeats (``PUT /v1/agents/me/presence``): an agent is online
or away until ``presence_expires_at`` and offline after it, so one whose browser closed is
offline within ``presence_ttl_seconds`` without anyone writing it down. Going online
makes the next claim possible at once (agents pull); releasing or finishing a task does too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, FieldError, NotFound
from services.core.pagination import PageRequest, fetch_page
from services.core.time import utcnow
from services.identity.models import User
from services.workforce import profiles
from services.workforce.models import Agent, Presence, Team
from services.workforce.schemas import AgentCreate, AgentUpdate
from services.workforce.teams import get_team, require_manager
from tenants.models import Membership
from tenants.principal import Permission, Principal, Role
from tenants.scoping import fetch, narrowed_to


def create_agent(session: Session, principal: Principal, data: AgentCreate) -> Agent:
    """An agent for a user of the team's own provider, who holds the agent role there."""
    require_manager(principal)
    team = get_team(session, principal, data.team_id)
    with narrowed_to(session, team.tenant_id):  # a user of the team's own provider
        user = fetch(session, User, data.user_id)
    if user is None:
        raise NotFound(
            "no such user", errors=[FieldError("/user_id", "no such user in the team's organisation")]
        )
    is_agent = session.scalar(
        select(Membership.id).where(Membership.user_id == user.id, Membership.role == Role.AGENT)
    )
    if is_agent is None:
        raise Conflict(
            "the user does not hold the agent role", errors=[FieldError("/user_id", "not an agent")]
        )
    if session.scalar(select(Agent.id).where(Agent.user_id == user.id)) is not None:
        raise Conflict("the user is an agent already", errors=[FieldError("/user_id", "already an agent")])
    errors: list[FieldError] = []
    agent = Agent(
        tenant_id=team.tenant_id,
        user_id=user.id,
        team_id=team.id,
        languages=profiles.languages(_dumped(data.languages), "/languages", errors),
        skills=profiles.skills(_dumped(data.skills)),
        calendar=profiles.calendar(data.calendar, "/calendar", errors),
        capacity=profiles.capacity(data.capacity, errors) or {},
        public_name=data.public_name,
        presence=Presence.OFFLINE,
    )
    profiles.raise_if(errors)
    session.add(agent)
    session.flush()
    return agent


def staffable_users(session: Session, principal: Principal, team: Team) -> list[User]:
    """The users of the team's provider who hold the agent role and are no agent yet: whom
    ``create_agent`` takes, by name."""
    require_manager(principal)
    with narrowed_to(session, team.tenant_id):
        staffed = select(Agent.user_id)
        agent_role = select(Membership.user_id).where(Membership.role == Role.AGENT)
        query = (
            select(User).where(User.id.in_(agent_role), User.id.not_in(staffed)).order_by(User.display_name)
        )
        return list(session.scalars(query))


def _dumped(items: Sequence[BaseModel] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [item.model_dump() for item in items]


def update_agent(session: Session, principal: Principal, agent_id: uuid.UUID, data: AgentUpdate) -> Agent:
    agent = get_agent(session, principal, agent_id)  # 404 before 403
    require_manager(principal)
    fields = data.model_dump(exclude_unset=True)
    errors: list[FieldError] = []
    if fields.get("team_id") is not None:
        with narrowed_to(session, agent.tenant_id):  # a team of the agent's own provider
            team = get_team(session, principal, fields["team_id"])
        agent.team_id = team.id
    if "languages" in fields:
        agent.languages = profiles.languages(fields["languages"], "/languages", errors)
    if "skills" in fields:
        agent.skills = profiles.skills(fields["skills"])
    if "calendar" in fields:
        agent.calendar = profiles.calendar(fields["calendar"], "/calendar", errors)
    if fields.get("capacity") is not None:
        agent.capacity = profiles.capacity(fields["capacity"], errors) or {}
    if "public_name" in fields:
        agent.public_name = fields["public_name"]
    profiles.raise_if(errors)
    session.flush()
    return agent


def get_agent(session: Session, principal: Principal, agent_id: uuid.UUID, *, lock: bool = False) -> Agent:
    """``lock``: the row for the transaction, as whatever gives the agent work takes it
    (see ``routing.departures``)."""
    principal.require(Permission.ORG_READ)
    agent = fetch(session, Agent, agent_id, lock=lock)
    if agent is None:
        raise NotFound("no such agent")
    return agent


def list_agents(
    session: Session, principal: Principal, page: PageRequest, team_id: uuid.UUID | None = None
) -> tuple[Sequence[Agent], str | None]:
    principal.require(Permission.ORG_READ)
    query = select(Agent)
    if team_id is not None:
        query = query.where(Agent.team_id == team_id)
    return fetch_page(session, query, Agent.id, page)


def team_agents(session: Session, principal: Principal, team_ids: Iterable[uuid.UUID]) -> Sequence[Agent]:
    """Every agent of those teams the principal sees (none of another provider's)."""
    principal.require(Permission.ORG_READ)
    return session.scalars(select(Agent).where(Agent.team_id.in_(list(team_ids))).order_by(Agent.id)).all()


def agent_of(session: Session, principal: Principal, *, lock: bool = False) -> Agent | None:
    """The caller's own agent record, if it is one."""
    if principal.subject_kind != "user":
        return None
    query = select(Agent).where(Agent.user_id == principal.subject_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def require_agent(session: Session, principal: Principal, *, lock: bool = False) -> Agent:
    agent = agent_of(session, principal, lock=lock)
    if agent is None:
        raise NotFound("you are not an agent of any team")
    return agent


def presence_of(agent: Agent, now: datetime) -> Presence:
    """What the agent is now: online or away only while the heartbeat is fresh."""
    if (
        agent.presence is Presence.OFFLINE
        or agent.presence_expires_at is None
        or agent.presence_expires_at <= now
    ):
        return Presence.OFFLINE
    return agent.presence


def set_presence(session: Session, principal: Principal, presence: Presence, ttl_seconds: int) -> Agent:
    """The agent's own switch, and its heartbeat (the same call again keeps it alive)."""
    agent = require_agent(session, principal)
    now = utcnow()
    agent.presence = presence
    agent.presence_expires_at = None if presence is Presence.OFFLINE else now + timedelta(seconds=ttl_seconds)
    session.flush()
    return agent


def team_of(session: Session, agent: Agent) -> Team:
    team = fetch(session, Team, agent.team_id)
    assert team is not None  # the agent's own team, of the same tenant (foreign key)
    return team


def display_names(session: Session, agents: Sequence[Agent]) -> dict[uuid.UUID, str]:
    ids = {agent.user_id for agent in agents}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    by_user = {row.id: row.display_name for row in rows}
    return {agent.id: by_user.get(agent.user_id, "") for agent in agents}
