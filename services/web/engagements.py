"""The operator's engagements page: which provider team serves which client queue, made
and revoked here (a residency rule that excludes the team is said on the form); and a
task's routing trace, as the operator reads it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from services.core.deps import DbSession
from services.core.errors import DomainError
from services.core.pagination import PageRequest
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.routing import traces
from services.web.deps import Member
from services.web.portal import page
from services.work import queues
from services.workforce import agents, engagements, teams
from services.workforce.models import EngagementRank
from services.workforce.schemas import EngagementCreate
from tenants import service as tenancy
from tenants.principal import Permission

router = APIRouter(
    route_class=UnitOfWorkRoute,
    prefix="/operator",
    include_in_schema=False,
    dependencies=[Depends(csrf.verify)],
)
ALL = PageRequest(limit=200, after=None)


def _page(request: Request, session: DbSession, viewer: Member, problem: str | None = None) -> Response:
    viewer.require(Permission.ENGAGEMENTS_MANAGE)
    found, _next = engagements.list_engagements(session, viewer, ALL)
    all_queues, _next = queues.list_queues(session, ALL)
    all_teams, _next = teams.list_teams(session, viewer, ALL)
    organizations, _next = tenancy.list_organizations(session, ALL)
    response = page(
        request,
        session,
        viewer,
        "operator/engagements.html",
        engagements=found,
        queues={q.id: q for q in all_queues},
        teams={t.id: t for t in all_teams},
        organizations={o.id: o for o in organizations},
        ranks=[rank.value for rank in EngagementRank],
        problem=problem,
    )
    if problem:
        response.status_code = 422
    return response


@router.get("/engagements")
def engagements_page(request: Request, session: DbSession, viewer: Member) -> Response:
    return _page(request, session, viewer)


@router.post("/engagements")
def create_engagement(
    request: Request,
    session: DbSession,
    viewer: Member,
    queue_id: Annotated[str, Form()],
    team_id: Annotated[str, Form()],
    rank: Annotated[str, Form()] = "primary",
    share: Annotated[str, Form()] = "",
) -> Response:
    try:
        data = EngagementCreate.model_validate(
            {"queue_id": queue_id, "team_id": team_id, "rank": rank, "share": int(share) if share else None}
        )
        engagements.create_engagement(session, viewer, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        message = (
            "; ".join(e.message for e in exc.errors)
            if isinstance(exc, DomainError) and exc.errors
            else str(exc)
        )
        return _page(request, session, viewer, message)
    return RedirectResponse("/operator/engagements", status_code=303)


@router.post("/engagements/{engagement_id}/revoke")
def revoke(engagement_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    engagements.revoke_engagement(session, viewer, engagement_id)
    return RedirectResponse("/operator/engagements", status_code=303)


@router.get("/tasks/{task_id}/routing")
def routing_page(request: Request, task_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    trace = traces.routing_of(session, viewer, task_id)
    all_teams, _next = teams.list_teams(session, viewer, ALL)
    team_agents, _next = agents.list_agents(session, viewer, ALL)
    return page(
        request,
        session,
        viewer,
        "operator/routing.html",
        trace=trace,
        team_names={str(team.id): team.name for team in all_teams},
        agent_names={str(id_): name for id_, name in agents.display_names(session, team_agents).items()},
        at=datetime.fromisoformat,
    )
