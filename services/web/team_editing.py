"""The team lead's editing of a team and of an agent: languages with their levels, skills
with their proficiency, the staffing calendar, and an agent's capacity per task kind.

Lists are typed one entry a line or separated by commas, as they read ("fr C1", "claims
4", "claim 3"); the calendar is the SLA engine's spec, as JSON. What the services refuse
(an unknown language, a level out of range, a calendar never open) is said in one line
over the form, which keeps what was typed."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from services.core import i18n
from services.core.deps import DbSession
from services.core.errors import DomainError
from services.core.i18n import _
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.web.deps import Member
from services.web.portal import page
from services.workforce import agents, teams
from services.workforce.schemas import AgentUpdate, TeamUpdate

router = APIRouter(
    route_class=UnitOfWorkRoute, prefix="/teams", include_in_schema=False, dependencies=[Depends(csrf.verify)]
)
_SEPARATORS = re.compile(r"[,\n]")


class Unreadable(ValueError):
    """What was typed cannot be read; said in the viewer's language."""

    def __init__(self, message: str, **variables: str) -> None:
        super().__init__(message % variables)
        self.message, self.variables = message, variables


def entries(text: str) -> list[tuple[str, str]]:
    """ "fr C1, en B2" as [("fr", "C1"), ("en", "B2")]; a name may hold spaces ("data
    entry 3"), its value is the last word."""
    found = []
    for part in _SEPARATORS.split(text):
        words = part.split()
        if not words:
            continue
        if len(words) < 2:
            raise Unreadable(_("“%(entry)s” needs a name and a value, as in “fr C1”"), entry=part.strip())
        found.append((" ".join(words[:-1]), words[-1]))
    return found


def written(pairs: list[dict[str, Any]] | None, name: str, value: str) -> str:
    return ", ".join(f"{pair[name]} {pair[value]}" for pair in pairs or [])


def _number(value: str, of: str) -> int:
    if not value.lstrip("-").isdigit():
        raise Unreadable(_("%(name)s: “%(value)s” is not a whole number"), name=of, value=value)
    return int(value)


def _calendar(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        spec = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Unreadable(_("The calendar is not valid JSON: %(fault)s"), fault=str(exc)) from exc
    if not isinstance(spec, dict):
        raise Unreadable(_("The calendar is a JSON object, as shown"))
    return spec


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
    problem: Exception | None = None,
) -> Response:
    """The form, with what is stored or what was typed; 422 with the fault over it."""
    said = _problem(request, problem) if problem is not None else None
    context = {"capacity": None, **typed}
    response = page(
        request, session, viewer, "teams/edit.html", action=action, heading=heading, problem=said, **context
    )
    if said:
        response.status_code = 422
    return response


def _spec(calendar: dict[str, Any] | None) -> str:
    return orjson.dumps(calendar, option=orjson.OPT_INDENT_2).decode() if calendar else ""


@router.get("/{team_id}/edit")
def team_form(request: Request, team_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    team = teams.get_team(session, viewer, team_id)
    teams.require_manager(viewer)
    stored = {
        "languages": written(team.languages, "code", "level"),
        "skills": written(team.skills, "name", "level"),
        "calendar": _spec(team.calendar),
    }
    return _edit_page(request, session, viewer, f"/teams/{team.id}/edit", team.name, stored)


@router.post("/{team_id}/edit")
def edit_team(
    request: Request,
    team_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    languages: Annotated[str, Form()] = "",
    skills: Annotated[str, Form()] = "",
    calendar: Annotated[str, Form()] = "",
) -> Response:
    team = teams.get_team(session, viewer, team_id)  # 404 for another provider's team
    try:
        data = TeamUpdate.model_validate(
            {
                "languages": [{"code": code, "level": level} for code, level in entries(languages)],
                "skills": [{"name": n, "level": _number(v, n)} for n, v in entries(skills)],
                "calendar": _calendar(calendar),
            }
        )
        teams.update_team(session, viewer, team.id, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        typed = {"languages": languages, "skills": skills, "calendar": calendar}
        return _edit_page(request, session, viewer, f"/teams/{team_id}/edit", team.name, typed, exc)
    return RedirectResponse("/teams", status_code=303)


@router.get("/agents/{agent_id}/edit")
def agent_form(request: Request, agent_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    agent = agents.get_agent(session, viewer, agent_id)
    teams.require_manager(viewer)
    stored = {
        "agent": "yes",
        "languages": written(agent.languages, "code", "level"),
        "skills": written(agent.skills, "name", "level"),
        "calendar": _spec(agent.calendar),
        "capacity": ", ".join(f"{kind} {count}" for kind, count in agent.capacity.items()),
    }
    name = agents.display_names(session, [agent])[agent.id]
    return _edit_page(request, session, viewer, f"/teams/agents/{agent.id}/edit", name, stored)


@router.post("/agents/{agent_id}/edit")
def edit_agent(
    request: Request,
    agent_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    languages: Annotated[str, Form()] = "",
    skills: Annotated[str, Form()] = "",
    calendar: Annotated[str, Form()] = "",
    capacity: Annotated[str, Form()] = "",
) -> Response:
    """Empty languages, skills or calendar: the agent has the team's."""
    agent = agents.get_agent(session, viewer, agent_id)
    try:
        data = AgentUpdate.model_validate(
            {
                "languages": [{"code": c, "level": lvl} for c, lvl in entries(languages)] or None,
                "skills": [{"name": n, "level": _number(v, n)} for n, v in entries(skills)] or None,
                "calendar": _calendar(calendar),
                "capacity": {kind: _number(count, kind) for kind, count in entries(capacity)} or None,
            }
        )
        agents.update_agent(session, viewer, agent.id, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        typed = {
            "agent": "yes",
            "languages": languages,
            "skills": skills,
            "calendar": calendar,
            "capacity": capacity,
        }
        name = agents.display_names(session, [agent])[agent.id]
        return _edit_page(request, session, viewer, f"/teams/agents/{agent_id}/edit", name, typed, exc)
    return RedirectResponse("/teams", status_code=303)
