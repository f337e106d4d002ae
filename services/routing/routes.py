"""HTTP of routing: an agent's next task and own tasks, release, assignment by hand, an
agent's removal from their team, and the routing trace of a task."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from services.core.deps import DbSession
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.identity.deps import CurrentPrincipal
from services.routing import assignments, claim, departures, offers, stats, traces
from services.routing.candidates import held_tasks
from services.routing.schemas import AssignmentIn, RejectIn
from services.work import documents
from services.work.models import Task
from services.work.schemas import TaskOut
from services.workforce.agents import require_agent
from tenants.principal import Permission

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["routing"], responses=PROBLEM_RESPONSES)


def _task(task: Task) -> JSONResponse:
    return JSONResponse(documents.task_document(task), headers={"ETag": f'"{task.revision}"'})


@router.post(
    "/agents/me/next-task",
    response_model=TaskOut,
    summary="Take the best task you may handle now",
    responses={204: {"description": "Nothing you may take now; Routing-Reason says why"}},
)
def next_task(session: DbSession, principal: CurrentPrincipal) -> Response:
    principal.require(Permission.TASKS_WRITE)
    taken = claim.next_task(session, principal)
    if taken.task is None:
        return Response(status_code=204, headers={"Routing-Reason": taken.reason or "nothing_eligible"})
    return _task(taken.task)


@router.get("/agents/me/tasks", summary="The tasks you hold")
def my_tasks(session: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require(Permission.TASKS_READ)
    agent = require_agent(session, principal)
    tasks = held_tasks(session, agent.id)
    return {"items": [documents.task_document(task) for task in tasks], "next_cursor": None}


@router.delete(
    "/agents/{agent_id}", summary="Remove an agent from their team; what they were given goes back"
)
def remove_agent(agent_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    """409 while the agent works a task (in progress, or waiting for the client): hand it
    to another agent first. Tasks given and not started go back to their queues."""
    returned = departures.remove_agent(session, principal, agent_id)
    return {"id": str(agent_id), "tasks_returned": returned}


@router.post("/tasks/{task_id}/release", response_model=TaskOut, summary="Give a task back to its queue")
def release(task_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> JSONResponse:
    return _task(assignments.release(session, principal, task_id))


@router.post("/tasks/{task_id}/assignment", response_model=TaskOut, summary="Give a task to an agent by hand")
def assign(
    task_id: uuid.UUID, body: AssignmentIn, session: DbSession, principal: CurrentPrincipal
) -> JSONResponse:
    return _task(assignments.assign_by_hand(session, principal, task_id, body.agent_id))


@router.get("/tasks/{task_id}/routing", summary="Why the task was routed where it was, or why not yet")
def routing(task_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    return traces.routing_of(session, principal, task_id)


@router.get("/queues/{queue_id}/stats", summary="A queue now: depth, oldest waiting, agents, SLA risk")
def queue_stats(queue_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    return stats.queue_stats(session, principal, queue_id)


@router.get("/teams/{team_id}/stats", summary="A team now: its agents' presence and load, its queues")
def team_stats(team_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    return stats.team_stats(session, principal, team_id)


@router.get("/offers", summary="The tasks offered to you now (push queues)")
def my_offers(session: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    rows = offers.my_offers(session, principal)
    items = [
        {
            "id": str(offer.id),
            "task": documents.task_document(task),
            "offered_at": documents.iso(offer.offered_at),
            "expires_at": documents.iso(offer.expires_at),
        }
        for offer, task in rows
    ]
    return {"items": items, "next_cursor": None}


@router.post("/offers/{offer_id}/accept", response_model=TaskOut, summary="Take the task offered to you")
def accept_offer(offer_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> JSONResponse:
    return _task(offers.accept(session, principal, offer_id))


@router.post("/offers/{offer_id}/reject", summary="Let the offered task go to the next agent")
def reject_offer(
    offer_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal, body: RejectIn | None = None
) -> dict[str, Any]:
    offer = offers.reject(session, principal, offer_id, body.reason if body else None)
    return {"id": str(offer.id), "status": offer.status.value}
