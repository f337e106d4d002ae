"""The team lead's forms for a team and an agent, new or changed: a team's name, country
and hourly cost, languages with their levels, skills with their proficiency, the staffing
calendar; an agent's person (a user of the provider with the agent role), capacity per
task kind and the name shown to clients; an agent's removal from the team, confirmed on a
page that says what becomes of what they hold.

Lists are typed one entry a line or separated by commas, as they read ("fr C1", "claims
4", "claim 3": ``form_text``); the calendar as a weekly grid (``calendar_form``). What
the services refuse (an unknown language, a level out of range, a calendar never open)
is said in one line over the form, which keeps what was typed."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from services.core import i18n
from services.core.deps import DbSession
from services.core.errors import Conflict, DomainError
from services.core.i18n import _
from services.core.pagination import PageRequest
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.routing import departures
from services.routing.candidates import held_tasks
from services.sla.calendar_spec import DAYS
from services.web.calendar_form import calendar_fields, spec_from, typed_from
from services.web.deps import Member
from services.web.form_text import Unreadable, amount_written, entries, minor_units, number, written
from services.web.portal import page
from services.work.models import TaskStatus
from services.workforce import agents, teams
from services.workforce.models import Team
from services.workforce.schemas import AgentCreate, AgentUpdate, TeamCreate, TeamUpdate
from tenants import service as tenancy
from tenants.principal import OrgKind

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
    typed: Mapping[str, object],
    calendar: dict[str, str],
    problem: Exception | None = None,
) -> Response:
    """The form, with what is stored or what was typed; 422 with the fault over it.
    ``typed["creating"]``: "team" or "agent" for a new one."""
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


# A new team's grid before anything is typed: office hours on weekdays.
_OFFICE_HOURS = {"weekly": {day: [["09:00", "17:00"]] for day in DAYS[:5]}}


@router.get("/new")
def new_team_form(request: Request, session: DbSession, viewer: Member) -> Response:
    teams.require_manager(viewer)
    typed = {"creating": "team", "team": "yes", "currency": "EUR", "providers": _providers(session, viewer)}
    calendar = typed_from({**_OFFICE_HOURS, "timezone": viewer.timezone or ""})
    return _edit_page(request, session, viewer, "/teams/new", _new_team(request), typed, calendar)


@router.post("/new")
def create_team(
    request: Request,
    session: DbSession,
    viewer: Member,
    calendar: Annotated[dict[str, str], Depends(calendar_fields)],
    name: Annotated[str, Form(max_length=200)] = "",
    country: Annotated[str, Form(max_length=8)] = "",
    cost: Annotated[str, Form(max_length=32)] = "",
    currency: Annotated[str, Form(max_length=8)] = "",
    languages: Annotated[str, Form()] = "",
    skills: Annotated[str, Form()] = "",
    provider_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The team works in its calendar's time zone; an operator names its provider."""
    try:
        spec = spec_from(calendar) or {}
        data = TeamCreate.model_validate(
            {
                "name": name.strip(),
                "country": country.strip(),
                "timezone": spec.get("timezone", ""),
                "calendar": spec,
                "languages": _spoken(languages),
                "skills": _skilled(skills),
                "hourly_cost": _hourly_cost(request, cost, currency),
                "provider_id": provider_id or None,
            }
        )
        teams.create_team(session, viewer, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        typed = {
            "creating": "team",
            "team": "yes",
            "name": name,
            "team_country": country,
            "cost": cost,
            "currency": currency,
            "languages": languages,
            "skills": skills,
            "provider_id": provider_id,
            "providers": _providers(session, viewer),
        }
        return _edit_page(request, session, viewer, "/teams/new", _new_team(request), typed, calendar, exc)
    return RedirectResponse("/teams", status_code=303)


def _spoken(text: str) -> list[dict[str, str]]:
    """ "fr C1, en B2" as the services take languages."""
    return [{"code": code, "level": level} for code, level in entries(text)]


def _skilled(text: str) -> list[dict[str, object]]:
    """ "claims 4" as the services take skills."""
    return [{"name": name, "level": number(value, name)} for name, value in entries(text)]


def _providers(session: DbSession, viewer: Member) -> list[tuple[str, str]]:
    """For an operator, the provider organisations a team may be made for (a provider
    makes its own)."""
    if viewer.org_kind is not OrgKind.OPERATOR:
        return []
    found, _next = tenancy.list_organizations(session, PageRequest(limit=200, after=None))
    return sorted((str(org.id), org.name) for org in found if org.kind is OrgKind.PROVIDER)


def _new_team(request: Request) -> str:
    return i18n.gettext(request.state.locale, _("New team"))


def _hourly_cost(request: Request, cost: str, currency: str) -> dict[str, object]:
    return {"amount": minor_units(cost, currency, request.state.locale), "currency": currency.strip().upper()}


@router.get("/{team_id}/edit")
def team_form(request: Request, team_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    team = teams.get_team(session, viewer, team_id)
    teams.require_manager(viewer)
    stored = {
        "team": "yes",
        "name": team.name,
        "cost": amount_written(team.hourly_cost_amount, team.hourly_cost_currency, request.state.locale),
        "currency": team.hourly_cost_currency,
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
    name: Annotated[str, Form(max_length=200)] = "",
    cost: Annotated[str, Form(max_length=32)] = "",
    currency: Annotated[str, Form(max_length=8)] = "",
    languages: Annotated[str, Form()] = "",
    skills: Annotated[str, Form()] = "",
) -> Response:
    """An empty calendar, name or cost keeps the team's (a team always has them)."""
    team = teams.get_team(session, viewer, team_id)  # 404 for another provider's team
    try:
        if not cost.strip() and currency.strip().upper() not in ("", team.hourly_cost_currency):
            raise Unreadable(_("Type the hourly cost in %(currency)s too"), currency=currency.strip().upper())
        data = TeamUpdate.model_validate(
            {
                "name": name.strip() or None,
                "hourly_cost": _hourly_cost(request, cost, currency) if cost.strip() else None,
                "languages": _spoken(languages),
                "skills": _skilled(skills),
                "calendar": spec_from(calendar),
            }
        )
        teams.update_team(session, viewer, team.id, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        typed = {"team": "yes", "name": name, "cost": cost, "currency": currency}
        typed |= {"languages": languages, "skills": skills}
        return _edit_page(request, session, viewer, f"/teams/{team_id}/edit", team.name, typed, calendar, exc)
    return RedirectResponse("/teams", status_code=303)


@router.get("/{team_id}/agents/new")
def new_agent_form(request: Request, team_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    team = teams.get_team(session, viewer, team_id)  # 404 for another provider's team
    typed = {"creating": "agent", "agent": "yes", "capacity": "* 1"}
    return _agent_page(request, session, viewer, team, typed)


@router.post("/{team_id}/agents/new")
def create_agent(
    request: Request,
    team_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    calendar: Annotated[dict[str, str], Depends(calendar_fields)],
    user_id: Annotated[str, Form(max_length=64)] = "",
    languages: Annotated[str, Form()] = "",
    skills: Annotated[str, Form()] = "",
    capacity: Annotated[str, Form()] = "",
    public_name: Annotated[str, Form()] = "",
) -> Response:
    """Empty languages, skills or calendar: the agent has the team's."""
    team = teams.get_team(session, viewer, team_id)
    try:
        data = AgentCreate.model_validate(
            {
                "user_id": user_id,
                "team_id": team.id,
                "languages": _spoken(languages) or None,
                "skills": _skilled(skills) or None,
                "calendar": spec_from(calendar),
                "capacity": {kind: number(count, kind) for kind, count in entries(capacity)},
                "public_name": public_name.strip() or None,
            }
        )
        agents.create_agent(session, viewer, data)
    except (DomainError, ValidationError, ValueError) as exc:
        session.rollback()
        typed = {"creating": "agent", "agent": "yes", "user_id": user_id, "capacity": capacity}
        typed |= {"languages": languages, "skills": skills, "public_name": public_name}
        return _agent_page(request, session, viewer, team, typed, calendar, exc)
    return RedirectResponse("/teams", status_code=303)


def _agent_page(
    request: Request,
    session: DbSession,
    viewer: Member,
    team: Team,
    typed: Mapping[str, object],
    calendar: dict[str, str] | None = None,
    problem: Exception | None = None,
) -> Response:
    """The new agent's form: whom of the provider's people, and what differs from the team."""
    people = [
        (str(user.id), user.display_name, user.email)
        for user in agents.staffable_users(session, viewer, team)
    ]
    action = f"/teams/{team.id}/agents/new"
    heading = i18n.gettext(request.state.locale, _("New agent in %(team)s"), team=team.name)
    grid = calendar or typed_from(None)
    return _edit_page(request, session, viewer, action, heading, {**typed, "people": people}, grid, problem)


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
                "languages": _spoken(languages) or None,
                "skills": _skilled(skills) or None,
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


@router.get("/agents/{agent_id}/remove")
def removal_form(request: Request, agent_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    return _removal_page(request, session, viewer, agent_id)


@router.post("/agents/{agent_id}/remove")
def remove_agent(request: Request, agent_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    try:
        departures.remove_agent(session, viewer, agent_id)
    except Conflict as exc:
        session.rollback()
        return _removal_page(request, session, viewer, agent_id, exc)
    return RedirectResponse("/teams", status_code=303)


def _removal_page(
    request: Request, session: DbSession, viewer: Member, agent_id: uuid.UUID, problem: Conflict | None = None
) -> Response:
    """What removing the agent does to what they hold, and the button that does it."""
    agent = agents.get_agent(session, viewer, agent_id)  # 404 for another provider's
    teams.require_manager(viewer)
    held = held_tasks(session, agent.id)
    response = page(
        request,
        session,
        viewer,
        "teams/remove.html",
        agent=agent,
        name=agents.display_names(session, [agent])[agent.id],
        team=teams.get_team(session, viewer, agent.team_id),
        given=[task for task in held if task.status is TaskStatus.ASSIGNED],
        worked=[task for task in held if task.status is not TaskStatus.ASSIGNED],
    )
    if problem is not None:
        response.status_code = 409
    return response
