"""Who holds a task: assignment, release, hand-over by a team lead, and what the end of
the work does to the holder.

Every assignment goes through the lifecycle (``work.service.apply``: history, outbox,
SLA clocks) and opens one ``TaskAssignment``; routing never undoes a manual one (a pulled
task is a queued one, and a hand-assigned task is not queued). A reopened task goes back
to the agent who had it only while they are online and under capacity; otherwise to the
queue, where it keeps its place (``rank_at``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, FieldError, Forbidden, NotFound
from services.core.time import utcnow
from services.routing import candidates, eligibility
from services.routing.models import AssignedBy, AssignmentEnd, RoutingDecision, TaskAssignment
from services.work import history
from services.work.history import Actor
from services.work.lifecycle import Action
from services.work.models import HELD_STATUSES, Queue, Task, TaskStatus
from services.work.service import TRANSITION_GUARDS, apply, get_task
from services.workforce.agents import presence_of, require_agent
from services.workforce.models import Agent, Presence, Team
from tenants.principal import OrgKind, Permission, Principal, Role
from tenants.scoping import acting_for_tenant, fetch

ROUTING = Actor.system("routing")
_SYSTEM = Principal(
    subject_id=uuid.UUID(int=0),
    subject_kind="api_client",
    org_id=uuid.UUID(int=0),
    org_kind=OrgKind.OPERATOR,
    roles=frozenset(),
    permissions=frozenset(),
    tenant_ids=None,
    display_name="routing",
)
_ENDS = {
    Action.RESOLVE: AssignmentEnd.RESOLVED,
    Action.CANCEL: AssignmentEnd.CANCELLED,
    Action.ESCALATE: AssignmentEnd.ESCALATED,
}


def assign(
    session: Session,
    task: Task,
    agent: Agent,
    team: Team,
    how: AssignedBy,
    principal: Principal,
    *,
    step: str,
    took_ms: float = 0.0,
    candidates_seen: list[dict[str, Any]] | None = None,
    action: Action | None = Action.ASSIGN,
) -> None:
    """Give ``task`` (queued, reopened or escalated; offered, with ``Action.ACCEPT``) to
    ``agent``; one decision recorded. ``action`` None: a task being worked is handed over
    as it is (its status, its running segment of work), a history entry says so."""
    previous = task.assignee_id
    task.assignee_id, task.assigned_team_id = agent.id, team.id  # written with the status: one UPDATE
    if action is not None:
        apply(session, ROUTING, task, action)
    else:  # the client reads no entry of it: who works the task is the provider's
        handed = {"assignee_id": [str(previous) if previous else None, str(agent.id)]}
        history.record(session, task, Actor.of(principal), "handed_over", changes=handed, internal=True)
    now = utcnow()
    with acting_for_tenant(session, team.tenant_id):  # the provider's row, whoever assigns
        agent.last_assigned_at = now
    session.add(
        TaskAssignment(
            tenant_id=task.tenant_id,
            task_id=task.id,
            agent_id=agent.id,
            team_id=team.id,
            provider_id=team.tenant_id,
            assigned_by=how,
            actor_id=principal.subject_id if how is AssignedBy.MANUAL else None,
            assigned_at=now,
        )
    )
    winner = {"team_id": str(team.id), "agent_id": str(agent.id), "eligible": True}
    record_decision(
        session,
        task,
        kind=how.value,
        step=step,
        winner=(agent.id, team.id),
        candidates_seen=candidates_seen or [winner],
        actor_name=principal.display_name if how is AssignedBy.MANUAL else "",
        took_ms=took_ms,
    )
    session.flush()


def record_decision(
    session: Session,
    task: Task,
    *,
    kind: str,
    step: str,
    winner: tuple[uuid.UUID, uuid.UUID] | None,
    candidates_seen: list[dict[str, Any]],
    actor_name: str = "",
    took_ms: float = 0.0,
) -> None:
    """The client's row, written whoever decided: a provider's grant inserts it (``write``)
    and never reads it."""
    decision = RoutingDecision(
        tenant_id=task.tenant_id,
        task_id=task.id,
        kind=kind,
        step=step,
        winner_agent_id=winner[0] if winner else None,
        winner_team_id=winner[1] if winner else None,
        actor_name=actor_name,
        candidates=candidates_seen,
        took_ms=round(took_ms, 3),
    )
    session.add(decision)


def _close_open(session: Session, task: Task, reason: AssignmentEnd) -> None:
    open_assignment = session.scalars(
        select(TaskAssignment).where(TaskAssignment.task_id == task.id, TaskAssignment.ended_at.is_(None))
    ).first()
    if open_assignment is not None:
        open_assignment.ended_at, open_assignment.end_reason = utcnow(), reason


def release(session: Session, principal: Principal, task_id: uuid.UUID) -> Task:
    """The agent gives the task back to its queue, where it keeps its place."""
    principal.require(Permission.TASKS_WRITE)
    task = get_task(session, principal, task_id, for_change=True)
    agent = require_agent(session, principal)
    if task.assignee_id != agent.id:
        raise Conflict("the task is not yours to release", extra={"current_status": task.status.value})
    if task.status is TaskStatus.IN_PROGRESS:
        raise Conflict("a task in progress is resolved, escalated or paused, not released")
    team = fetch(session, Team, agent.team_id)
    if team is None or not _still_engaged(session, task, team):
        # The engagement was revoked: the team keeps what it holds until it is done, and a
        # task it gave back would be out of its sight (and its write) at once.
        raise Conflict(
            "your team no longer serves this queue: work the task to its end, or escalate it",
            extra={"current_status": task.status.value},
        )
    give_back(session, Actor.of(principal), task, AssignmentEnd.RELEASED)
    return task


def give_back(session: Session, actor: Actor, task: Task, reason: AssignmentEnd) -> None:
    """An assigned task back to its queue, where it keeps its place."""
    apply(session, actor, task, Action.RELEASE)
    _close_open(session, task, reason)
    task.assignee_id = task.assigned_team_id = None
    session.flush()


def assign_by_hand(session: Session, principal: Principal, task_id: uuid.UUID, agent_id: uuid.UUID) -> Task:
    """A team lead (or the operator) gives a task to an agent who may take it now: every
    hard constraint still holds (engagement, residency, language, skills, the team's
    calendar unless the queue works out of hours, presence, capacity), so a lead cannot
    hand work to an agent who has gone home. A task being worked (in progress, waiting
    for the client) is handed over as it is. The trace says who."""
    task = get_task(session, principal, task_id, for_change=True)  # 404 before 403
    principal.require(Permission.TASKS_ASSIGN)
    if principal.org_kind is OrgKind.CLIENT:
        raise Forbidden("tasks are assigned by the provider or the operator")
    agent = fetch(session, Agent, agent_id, lock=True)  # not removed meanwhile (``departures``)
    if agent is None:
        raise NotFound("no such agent", errors=[FieldError("/agent_id", "no such agent")])
    team = fetch(session, Team, agent.team_id)
    queue = fetch(session, Queue, task.queue_id)
    assert team is not None and queue is not None
    engaged = candidates.active_engagements(session, queue_id=queue.id, team_id=team.id)
    requirements = candidates.requirements_of(queue)
    languages = eligibility.task_languages(requirements, task.language, task.language_confidence)
    profile = candidates.agent_profile(team, agent)
    held = task.assignee_id is not None and task.status in HELD_STATUSES
    if held:
        _held_here(session, principal, task)  # another provider's: not to be taken over
    now = utcnow()
    failed = None if engaged else "engagement"
    if failed is None:
        failed = eligibility.team_failure(requirements, profile, languages, now)
    if failed is None:
        taken = candidates.taken_by_kind(session, [agent.id])[(agent.id, task.kind_name)]
        if held and task.assignee_id == agent.id:
            taken -= 1  # given again to the agent who holds it: no further place taken
        online = presence_of(agent, now) is Presence.ONLINE
        failed = eligibility.agent_failure(
            online, taken, eligibility.capacity_for(agent.capacity, task.kind_name)
        )
    if failed is not None:
        raise Conflict(
            f"the agent may not handle this task: {failed}",
            errors=[FieldError("/agent_id", f"fails the {failed} constraint")],
            extra={"failed": failed},
        )
    if not held:
        assign(session, task, agent, team, AssignedBy.MANUAL, principal, step="manual")
    elif task.status is TaskStatus.ASSIGNED:  # not started: given anew
        apply(session, ROUTING, task, Action.RELEASE)
        _close_open(session, task, AssignmentEnd.REASSIGNED)
        assign(session, task, agent, team, AssignedBy.MANUAL, principal, step="manual")
    elif task.assignee_id != agent.id:  # being worked: the other agent goes on where it is
        _close_open(session, task, AssignmentEnd.REASSIGNED)
        session.flush()  # one open assignment a task: the old one ends before the new one opens
        assign(
            session, task, agent, team, AssignedBy.MANUAL, principal, step="manual: handed over", action=None
        )
    return task


class AssignmentObserver:
    """Subscribed to task history: the end of the work ends the assignment, and a reopened
    task goes back to its agent or its queue."""

    def recorded(self, session: Session, task: Task, actor: Actor, event: Any) -> None:
        return None

    def creating_many(self, session: Session, tasks: list[dict[str, Any]]) -> bool:
        return False

    def created_many(self, session: Session, tasks: list[dict[str, Any]]) -> None:
        return None

    def applied(self, session: Session, task: Task, actor: Actor, action: Action) -> None:
        if action in _ENDS:
            _close_open(session, task, _ENDS[action])
        elif action is Action.REOPEN:
            _route_reopened(session, task)


def _route_reopened(session: Session, task: Task) -> None:
    last = session.scalars(
        select(TaskAssignment).where(TaskAssignment.task_id == task.id).order_by(TaskAssignment.id.desc())
    ).first()
    if last is not None:
        # The agent is the provider's row: read for the client who reopened, never shown.
        with acting_for_tenant(session, last.provider_id):
            previous = fetch(session, Agent, last.agent_id)
            team = fetch(session, Team, last.team_id)
        if previous is not None and team is not None and _still_engaged(session, task, team):
            held = candidates.taken_by_kind(session, [previous.id])[(previous.id, task.kind_name)]
            capacity = eligibility.capacity_for(previous.capacity, task.kind_name)
            online = presence_of(previous, utcnow()) is Presence.ONLINE
            if eligibility.agent_failure(online, held, capacity) is None:
                assign(
                    session,
                    task,
                    previous,
                    team,
                    AssignedBy.REOPENED,
                    _SYSTEM,
                    step="reopened: previous agent",
                )
                return
    apply(session, ROUTING, task, Action.ENQUEUE)
    task.assignee_id = task.assigned_team_id = None


def only_the_holder(session: Session, principal: Principal, task: Task, action: Action) -> None:
    """An agent works the tasks they hold, not a colleague's, nor another provider's sharing
    the queue: anything else is taken through routing first. Team leads, provider admins
    and the provider's integrations act on their provider's tasks."""
    if principal.org_kind is not OrgKind.PROVIDER:
        return
    if principal.subject_kind != "user" or principal.roles & {Role.TEAM_LEAD, Role.PROVIDER_ADMIN}:
        _held_here(session, principal, task)
        return
    agent = require_agent(session, principal)
    if task.assignee_id != agent.id:
        raise Conflict(
            "the task is not yours: take it with your next task, or ask your team lead",
            extra={"current_status": task.status.value},
        )


def _held_here(session: Session, principal: Principal, task: Task) -> None:
    """A provider acts on a held task only if one of its own teams holds it: another
    provider sharing the queue neither works it nor takes it over by hand."""
    if principal.org_kind is not OrgKind.PROVIDER or task.assigned_team_id is None:
        return
    if fetch(session, Team, task.assigned_team_id) is None:  # another provider's team: unseen
        raise Conflict("another provider's team holds the task", extra={"current_status": task.status.value})


def _still_engaged(session: Session, task: Task, team: Team) -> bool:
    return bool(candidates.active_engagements(session, queue_id=task.queue_id, team_id=team.id))


history.observe(AssignmentObserver())
TRANSITION_GUARDS.append(only_the_holder)
