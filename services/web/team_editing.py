"""The team lead's editing of a team and of an agent: languages with their levels, skills
with their proficiency, the staffing calendar, and an agent's capacity per task kind.

Lists are typed one entry a line or separated by commas, as they read ("fr C1", "claims
4", "claim 3": ``form_text``); the calendar as a weekly grid (``calendar_form``). What
the services refuse (an unknown language, a level out of range, a calendar never open)
is said in one line over the form, which keeps what was typed."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from services.core import i18n
from services.core.deps import DbSession
from services.core.errors import DomainError
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.sla.calendar_spec import DAYS
from services.web.calendar_form import calendar_fields, spec_from, typed_from
from services.web.deps import Member
from services.web.form_text import Unreadable, entries, number, written
from services.web.portal import page
from services.workforce import agents, teams
from services.workforce.schemas import AgentUpdate, TeamUpdate

router = APIRouter(
    route_class=UnitOfWorkRoute, prefix="/teams", include_in_schema=False, dependencies=[Depends(csrf.verify)]
)


def _problem(request: Request, exc: Exception) -> str:
    if isinstance(exc, Unreadable):
        return i18n.gettext(request.state.locale, exc.message, **exc.variables)
    if isinstance(exc, DomainError) and exc.errors:
        return "; ".join(f"{e.pointer}: {e.message}" for e in exc.errors)
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"/{'/'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
    return str(exc)


def _edit_page(
    request: Request,
    session: DbSession,
    viewer: Member,
    action: str,
    heading: str,
    typed: dict[str, str],
    calendar: dict[str, str],
    problem: Exception | None = None,
) -> Response:
    """The form, with what is stored or what was typed; 422 with the fault over it."""
    said = _problem(request, problem) if problem is not None else None
    context = {"capacity": None, **typed}
    response = page(
        request,
        session,
        viewer,
        "teams/edit.html",
        action=action,
        heading=heading,
        problem=said,
        calendar=calendar,
        days=DAYS,
        **context,
    )
    if said:
        response.status_code = 422
    return response


@router.get("/{team_id}/edit")
def team_form(request: Request, team_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    team = teams.get_team(session, viewer, team_id)
    teams.require_manager(viewer)
    stored = {
        "languages": written(team.languages, "code", "level"),
        "skills": written(team.skills, "name", "level"),
    }
    calendar = typed_from(team.calendar)
    return _edit_page(request, session, viewer, f"/teams/{team.id}/edit", team.name, stored, calendar)


@router.post("/{team_id}/edit")
def edit_team(
    request: Request,
    team_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    calendar: Annotated[dict[str, str], Depends(calendar_fields)],
    languages: Annotated[str, Form()] = "",
    skills: Annotated[str, Form()] = "",
) -> Response:
    """An empty calendar keeps the team's (a team always has one)."""
    team = teams.get_team(session, viewer, team_id)  # 404 for another provider's team
    try:
        data = TeamUpdate.model_validate(
            {
                "languages": [{"code": code, "level": level} for code, level in entries(languages)],
                "skills": [{"name": n, "level": number(v, n)} for n, v in entries(skills)],
                "calendar": spec_from(calendar),
            }
        )
        teams.update_team(session, viewer, team.id, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        typed = {"languages": languages, "skills": skills}
        return _edit_page(request, session, viewer, f"/teams/{team_id}/edit", team.name, typed, calendar, exc)
    return RedirectResponse("/teams", status_code=303)


@router.get("/agents/{agent_id}/edit")
def agent_form(request: Request, agent_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    agent = agents.get_agent(session, viewer, agent_id)
    teams.require_manager(viewer)
    stored = {
        "agent": "yes",
        "languages": written(agent.languages, "code", "level"),
        "skills": written(agent.skills, "name", "level"),
        "capacity": ", ".join(f"{kind} {count}" for kind, count in agent.capacity.items()),
        "public_name": agent.public_name or "",
    }
    name = agents.display_names(session, [agent])[agent.id]
    calendar = typed_from(agent.calendar)
    return _edit_page(request, session, viewer, f"/teams/agents/{agent.id}/edit", name, stored, calendar)


@router.post("/agents/{agent_id}/edit")
def edit_agent(
    request: Request,
    agent_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    calendar: Annotated[dict[str, str], Depends(calendar_fields)],
    languages: Annotated[str, Form()] = "",
    skills: Annotated[str, Form()] = "",
    capacity: Annotated[str, Form()] = "",
    public_name: Annotated[str, Form()] = "",
) -> Response:
    """Empty languages, skills or calendar: the agent has the team's; an empty name shown
    to clients: none."""
    agent = agents.get_agent(session, viewer, agent_id)
    try:
        data = AgentUpdate.model_validate(
            {
                "languages": [{"code": c, "level": lvl} for c, lvl in entries(languages)] or None,
                "skills": [{"name": n, "level": number(v, n)} for n, v in entries(skills)] or None,
                "calendar": spec_from(calendar),
                "capacity": {kind: number(count, kind) for kind, count in entries(capacity)} or None,
                "public_name": public_name.strip() or None,
            }
        )
        agents.update_agent(session, viewer, agent.id, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        typed = {
            "agent": "yes",
            "languages": languages,
            "skills": skills,
            "capacity": capacity,
            "public_name": public_name,
        }
        name = agents.display_names(session, [agent])[agent.id]
        return _edit_page(
            request, session, viewer, f"/teams/agents/{agent_id}/edit", name, typed, calendar, exc
        )
    return RedirectResponse("/teams", status_code=303)
