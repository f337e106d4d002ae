"""The agent's workspace: presence, the "Next task" button, the tasks they hold, and the
page of one task (payload, attachments, conversation with the client, actions, SLA slack),
whose status, actions and conversation refresh in place every 5 seconds. A team lead
reads the same page, and hands the task to one of the provider's agents from it.

Pages call the same services as the API (``routing.claim``, ``work.service``), so a task
taken here is taken exactly as by ``POST /v1/agents/me/next-task``. While the agent is
online, the page sends a heartbeat every 30 seconds; a closed browser sends none, and the
agent is offline within ``presence_ttl_seconds``.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from services.core.deps import AppSettings, DbSession
from services.core.errors import DomainError, ValidationFailed
from services.core.pagination import PageRequest
from services.core.route_class import UnitOfWorkRoute
from services.core.time import utcnow
from services.identity import csrf
from services.routing import assignments, candidates, claim, offers
from services.routing.candidates import held_tasks
from services.sla import slack
from services.web.deps import Member
from services.web.portal import page
from services.work import attachments, lifecycle, queues, service
from services.work.history import Actor
from services.work.models import HELD_STATUSES, CommentVisibility, Task, TaskStatus
from services.workforce import agents
from services.workforce.models import Presence
from tenants.principal import Permission

router = APIRouter(
    route_class=UnitOfWorkRoute,
    prefix="/workspace",
    include_in_schema=False,
    dependencies=[Depends(csrf.verify)],
)
HEARTBEAT_SECONDS = 30


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("")
def workspace(
    request: Request,
    session: DbSession,
    viewer: Member,
    reason: Annotated[str | None, Query(max_length=32)] = None,
    problem: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    agent = agents.require_agent(session, viewer)
    held = held_tasks(session, agent.id)
    return page(
        request,
        session,
        viewer,
        "workspace/home.html",
        agent=agent,
        offered=_offered(session, viewer),
        presence=agents.presence_of(agent, utcnow()).value,
        held=held,
        reason=reason,
        problem=problem,
        heartbeat_seconds=HEARTBEAT_SECONDS,
    )


def _offered(session: DbSession, viewer: Member) -> list[dict[str, object]]:
    now = utcnow()
    return [
        {"offer": offer, "task": task, "seconds": max(0, int((offer.expires_at - now).total_seconds()))}
        for offer, task in offers.my_offers(session, viewer)
    ]


@router.get("/held")
def held_fragment(request: Request, session: DbSession, viewer: Member) -> Response:
    """The offers and held tasks, refreshed in place while the page is open."""
    agent = agents.require_agent(session, viewer)
    return page(
        request,
        session,
        viewer,
        "workspace/_held.html",
        held=held_tasks(session, agent.id),
        offered=_offered(session, viewer),
    )


@router.post("/offers/{offer_id}/accept")
def accept_offer(offer_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    try:
        task = offers.accept(session, viewer, offer_id)
    except DomainError as exc:
        session.rollback()
        return _redirect(f"/workspace?{_problem(exc)}")
    return _redirect(f"/workspace/tasks/{task.id}")


@router.post("/offers/{offer_id}/reject")
def reject_offer(offer_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    try:
        offers.reject(session, viewer, offer_id, None)
    except DomainError as exc:
        session.rollback()
        return _redirect(f"/workspace?{_problem(exc)}")
    return _redirect("/workspace")


@router.post("/presence")
def set_presence(
    session: DbSession,
    viewer: Member,
    settings: AppSettings,
    presence: Annotated[Presence, Form()],
) -> Response:
    agents.set_presence(session, viewer, presence, settings.presence_ttl_seconds)
    return _redirect("/workspace")


@router.post("/heartbeat")
def heartbeat(session: DbSession, viewer: Member, settings: AppSettings) -> Response:
    agent = agents.require_agent(session, viewer)
    current = agents.presence_of(agent, utcnow())
    if current is not Presence.OFFLINE:
        agents.set_presence(session, viewer, current, settings.presence_ttl_seconds)
    return Response(status_code=204)


@router.post("/next")
def next_task(session: DbSession, viewer: Member, settings: AppSettings) -> Response:
    """Asking for work is being available: an offline agent goes online first."""
    agent = agents.require_agent(session, viewer)
    if agents.presence_of(agent, utcnow()) is not Presence.ONLINE:
        agents.set_presence(session, viewer, Presence.ONLINE, settings.presence_ttl_seconds)
    try:
        taken = claim.next_task(session, viewer)
    except claim.AgentUnavailable as exc:
        return _redirect(f"/workspace?reason={exc.extra.get('reason', 'presence')}")
    if taken.task is None:
        return _redirect(f"/workspace?reason={taken.reason}")
    return _redirect(f"/workspace/tasks/{taken.task.id}")


@router.get("/tasks/{task_id}")
def task_page(
    request: Request,
    task_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    problem: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    task = service.get_task(session, viewer, task_id)
    return page(
        request,
        session,
        viewer,
        "workspace/task.html",
        **_task_now(session, viewer, task),
        files=attachments.list_for_task(session, viewer, task.id),
        hand_to=_agents_to_hand_to(session, viewer, task),
        problem=problem,
    )


@router.get("/tasks/{task_id}/live")
def task_live(request: Request, task_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    """The task's status, time left, actions and conversation, refreshed in place while its
    page is open: the client's answer shows without a reload."""
    task = service.get_task(session, viewer, task_id)
    return page(request, session, viewer, "workspace/_task_live.html", **_task_now(session, viewer, task))


def _task_now(session: DbSession, viewer: Member, task: Task) -> dict[str, object]:
    comments, _next = service.list_comments(session, viewer, task.id, PageRequest(limit=200, after=None))
    agent = agents.agent_of(session, viewer)
    mine = agent is not None and task.assignee_id == agent.id and task.status in HELD_STATUSES
    actions = [a.value for a in lifecycle.allowed_actions(task.status, Actor.of(viewer).side)] if mine else []
    return {
        "task": task,
        "queue": queues.get_queue(session, task.queue_id),
        "comments": comments,
        "actions": actions,
        "can_release": mine and task.status.value == "assigned",
        "seconds_left": slack.seconds_left(session, task),
    }


@router.post("/tasks/{task_id}/transitions")
def transition(
    task_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    action: Annotated[str, Form(max_length=32)],
    revision: Annotated[int, Form()],
    comment: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    if action not in {a.value for a in lifecycle.PUBLIC_ACTIONS}:
        raise ValidationFailed(f"unknown action {action}")
    try:
        service.transition(
            session, viewer, task_id, lifecycle.Action(action), comment or None, expected_revision=revision
        )
    except DomainError as exc:
        session.rollback()
        return _redirect(f"/workspace/tasks/{task_id}?{_problem(exc)}")
    return _redirect("/workspace" if action == "resolve" else f"/workspace/tasks/{task_id}")


def _problem(exc: DomainError) -> str:
    return urlencode({"problem": str(exc)[:200]})


@router.post("/tasks/{task_id}/comments")
def add_comment(
    task_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    body: Annotated[str, Form(min_length=1, max_length=20_000)],
    visibility: Annotated[CommentVisibility, Form()] = CommentVisibility.CLIENT,
) -> Response:
    service.add_comment(session, viewer, task_id, body, visibility)
    return _redirect(f"/workspace/tasks/{task_id}#conversation")


@router.post("/tasks/{task_id}/assignment")
def hand_to_agent(
    task_id: uuid.UUID, session: DbSession, viewer: Member, agent_id: Annotated[uuid.UUID, Form()]
) -> Response:
    """The hard constraints hold as for the API's; the one that fails is said over the page."""
    try:
        assignments.assign_by_hand(session, viewer, task_id, agent_id)
    except DomainError as exc:
        session.rollback()
        return _redirect(f"/workspace/tasks/{task_id}?{_problem(exc)}")
    return _redirect(f"/workspace/tasks/{task_id}")


def _agents_to_hand_to(session: DbSession, viewer: Member, task: Task) -> list[tuple[str, str, str]]:
    """For a team lead: the agents (id, name, presence) of the teams serving the task's
    queue, whom the task may be handed to."""
    if not viewer.has(Permission.TASKS_ASSIGN) or task.status not in _HANDED_OVER_FROM:
        return []
    serving = {e.team_id for e in candidates.active_engagements(session, queue_id=task.queue_id)}
    found = agents.team_agents(session, viewer, serving)
    names = agents.display_names(session, found)
    now = utcnow()
    listed = [(str(a.id), names.get(a.id, ""), agents.presence_of(a, now).value) for a in found]
    return sorted(listed, key=lambda entry: entry[1])


# Where a lead may give a task by hand: waiting for an agent, or held by one.
_HANDED_OVER_FROM = frozenset({TaskStatus.QUEUED, TaskStatus.REOPENED, TaskStatus.ESCALATED, *HELD_STATUSES})


@router.post("/tasks/{task_id}/release")
def release(task_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    assignments.release(session, viewer, task_id)
    return _redirect("/workspace")
