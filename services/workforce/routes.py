"""HTTP of the workforce: teams, agents, presence, engagements."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.core.deps import AppSettings, DbSession
from services.core.pagination import Page, PageRequest, page_request
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.core.time import utcnow
from services.identity.deps import CurrentPrincipal
from services.workforce import agents, engagements, teams
from services.workforce.models import Agent, Engagement, Team
from services.workforce.schemas import (
    AgentCreate,
    AgentOut,
    AgentUpdate,
    EngagementCreate,
    EngagementOut,
    Money,
    PresenceIn,
    SkillLevel,
    SpokenLanguage,
    TeamCreate,
    TeamOut,
    TeamUpdate,
)

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["workforce"], responses=PROBLEM_RESPONSES)
Paging = Annotated[PageRequest, Depends(page_request)]


def team_out(team: Team) -> TeamOut:
    return TeamOut(
        id=team.id,
        provider_id=team.tenant_id,
        name=team.name,
        country=team.country,
        timezone=team.timezone,
        calendar=team.calendar,
        languages=[SpokenLanguage(**entry) for entry in team.languages],
        skills=[SkillLevel(**entry) for entry in team.skills],
        hourly_cost=Money(amount=team.hourly_cost_amount, currency=team.hourly_cost_currency),
        created_at=team.created_at,
    )


def agent_out(agent: Agent, display_name: str) -> AgentOut:
    return AgentOut(
        id=agent.id,
        user_id=agent.user_id,
        team_id=agent.team_id,
        display_name=display_name,
        languages=None if agent.languages is None else [SpokenLanguage(**e) for e in agent.languages],
        skills=None if agent.skills is None else [SkillLevel(**e) for e in agent.skills],
        calendar=agent.calendar,
        capacity=agent.capacity,
        presence=agents.presence_of(agent, utcnow()),
        presence_expires_at=agent.presence_expires_at,
        public_name=agent.public_name,
    )


def engagement_out(engagement: Engagement) -> EngagementOut:
    return EngagementOut.model_validate(engagement, from_attributes=True)


# ---------------------------------------------------------------- teams


@router.post("/teams", response_model=TeamOut, status_code=201, summary="Create a team")
def create_team(body: TeamCreate, session: DbSession, principal: CurrentPrincipal) -> TeamOut:
    return team_out(teams.create_team(session, principal, body))


@router.get("/teams", response_model=Page[TeamOut], summary="Teams you may see")
def list_teams(session: DbSession, principal: CurrentPrincipal, page: Paging) -> Page[TeamOut]:
    rows, cursor = teams.list_teams(session, principal, page)
    return Page(items=[team_out(team) for team in rows], next_cursor=cursor)


@router.get("/teams/{team_id}", response_model=TeamOut, summary="One team")
def get_team(team_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> TeamOut:
    return team_out(teams.get_team(session, principal, team_id))


@router.patch("/teams/{team_id}", response_model=TeamOut, summary="Change a team")
def update_team(
    team_id: uuid.UUID, body: TeamUpdate, session: DbSession, principal: CurrentPrincipal
) -> TeamOut:
    return team_out(teams.update_team(session, principal, team_id, body))


# ---------------------------------------------------------------- agents ("me" first)


@router.get("/agents/me", response_model=AgentOut, summary="Your own agent record")
def my_agent(session: DbSession, principal: CurrentPrincipal) -> AgentOut:
    agent = agents.require_agent(session, principal)
    return agent_out(agent, principal.display_name)


@router.put(
    "/agents/me/presence", response_model=AgentOut, summary="Go online, away or offline (and heartbeat)"
)
def set_presence(
    body: PresenceIn, session: DbSession, principal: CurrentPrincipal, settings: AppSettings
) -> AgentOut:
    agent = agents.set_presence(session, principal, body.presence, settings.presence_ttl_seconds)
    return agent_out(agent, principal.display_name)


@router.post("/agents", response_model=AgentOut, status_code=201, summary="Make a provider's user an agent")
def create_agent(body: AgentCreate, session: DbSession, principal: CurrentPrincipal) -> AgentOut:
    agent = agents.create_agent(session, principal, body)
    return agent_out(agent, agents.display_names(session, [agent]).get(agent.id, ""))


@router.get("/agents", response_model=Page[AgentOut], summary="Agents you may see")
def list_agents(
    session: DbSession,
    principal: CurrentPrincipal,
    page: Paging,
    team_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[AgentOut]:
    rows, cursor = agents.list_agents(session, principal, page, team_id)
    names = agents.display_names(session, rows)
    return Page(items=[agent_out(agent, names.get(agent.id, "")) for agent in rows], next_cursor=cursor)


@router.get("/agents/{agent_id}", response_model=AgentOut, summary="One agent")
def get_agent(agent_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> AgentOut:
    agent = agents.get_agent(session, principal, agent_id)
    return agent_out(agent, agents.display_names(session, [agent]).get(agent.id, ""))


@router.patch("/agents/{agent_id}", response_model=AgentOut, summary="Change an agent")
def update_agent(
    agent_id: uuid.UUID, body: AgentUpdate, session: DbSession, principal: CurrentPrincipal
) -> AgentOut:
    agent = agents.update_agent(session, principal, agent_id, body)
    return agent_out(agent, agents.display_names(session, [agent]).get(agent.id, ""))


# ---------------------------------------------------------------- engagements


@router.post(
    "/engagements", response_model=EngagementOut, status_code=201, summary="Engage a team on a queue"
)
def create_engagement(
    body: EngagementCreate, session: DbSession, principal: CurrentPrincipal
) -> EngagementOut:
    return engagement_out(engagements.create_engagement(session, principal, body))


@router.get("/engagements", response_model=Page[EngagementOut], summary="Active engagements you may see")
def list_engagements(
    session: DbSession,
    principal: CurrentPrincipal,
    page: Paging,
    queue_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[EngagementOut]:
    rows, cursor = engagements.list_engagements(session, principal, page, queue_id)
    return Page(items=[engagement_out(row) for row in rows], next_cursor=cursor)


@router.get("/engagements/{engagement_id}", response_model=EngagementOut, summary="One engagement")
def get_engagement(
    engagement_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> EngagementOut:
    return engagement_out(engagements.get_engagement(session, principal, engagement_id))


@router.delete("/engagements/{engagement_id}", response_model=EngagementOut, summary="Revoke an engagement")
def revoke_engagement(
    engagement_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> EngagementOut:
    return engagement_out(engagements.revoke_engagement(session, principal, engagement_id))
