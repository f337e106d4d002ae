"""The team lead's board: each team's agents with presence and load, the depth of the
queues it serves by language, by queue and by skill, the oldest waiting task, the tasks at SLA risk; and the
agents' default capacity, changed in place (the rest is edited in ``team_editing``).
Refreshed every 15 seconds while open."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from services.core.deps import DbSession
from services.core.pagination import PageRequest
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.routing import stats
from services.web.deps import Member
from services.web.portal import page
from services.workforce import agents, teams
from services.workforce.schemas import AgentUpdate
from tenants.principal import Permission

router = APIRouter(
    route_class=UnitOfWorkRoute, prefix="/teams", include_in_schema=False, dependencies=[Depends(csrf.verify)]
)


def _boards(session: DbSession, viewer: Member) -> list[dict[str, object]]:
    found, _next = teams.list_teams(session, viewer, PageRequest(limit=50, after=None))
    boards = []
    for team in found:
        team_agents, _next = agents.list_agents(session, viewer, PageRequest(limit=200, after=None), team.id)
        boards.append(
            {
                "team": team,
                "stats": stats.team_stats(session, viewer, team.id),
                "agents": {str(a.id): a for a in team_agents},
                "names": {str(k): v for k, v in agents.display_names(session, team_agents).items()},
            }
        )
    return boards


@router.get("")
def board(request: Request, session: DbSession, viewer: Member) -> Response:
    viewer.require(Permission.WORKFORCE_MANAGE)
    return page(request, session, viewer, "teams/board.html", boards=_boards(session, viewer))


@router.get("/live")
def live(request: Request, session: DbSession, viewer: Member) -> Response:
    viewer.require(Permission.WORKFORCE_MANAGE)
    return page(request, session, viewer, "teams/_boards.html", boards=_boards(session, viewer))


@router.post("/agents/{agent_id}/capacity")
def set_capacity(
    agent_id: uuid.UUID, session: DbSession, viewer: Member, capacity: Annotated[int, Form(ge=0, le=100)]
) -> Response:
    kept = agents.get_agent(session, viewer, agent_id).capacity  # per-kind capacities stay as they are
    agents.update_agent(session, viewer, agent_id, AgentUpdate(capacity={**kept, "*": capacity}))
    return RedirectResponse("/teams", status_code=303)
