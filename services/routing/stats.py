"""Real-time statistics of a queue and of a team: what waits (for a team, also per queue it
serves and per skill those queues require), how old, who is there, what is at SLA risk.
Counts only: they feed the boards, and a client reading its queue's numbers learns how many
agents are online, never who."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.time import utcnow
from services.routing import candidates, eligibility
from services.sla.models import ClockState, SlaClock
from services.work.documents import iso
from services.work.models import HELD_STATUSES, Queue, Task, TaskStatus
from services.work.queues import get_queue
from services.workforce.agents import presence_of
from services.workforce.models import Agent, Presence
from services.workforce.teams import get_team
from tenants.principal import Permission, Principal
from tenants.scoping import acting_for_tenant

WAITING = (TaskStatus.QUEUED, TaskStatus.REOPENED, TaskStatus.ESCALATED, TaskStatus.OFFERED)
OPEN = (*WAITING, *HELD_STATUSES)


def queue_stats(session: Session, principal: Principal, queue_id: uuid.UUID) -> dict[str, Any]:
    principal.require(Permission.TASKS_READ)
    queue = get_queue(session, queue_id)
    now = utcnow()
    answer = _depth(session, [queue.id], now)
    answer["queue_id"] = str(queue.id)
    answer["at_sla_risk"] = _at_risk(session, queue.tenant_id, [queue.id])
    engaged = candidates.active_engagements(session, queue_id=queue.id)
    online = available = 0
    for engagement in engaged:  # the providers' rows, counted for whoever reads the queue
        with acting_for_tenant(session, engagement.provider_id):
            team_agents = session.scalars(select(Agent).where(Agent.team_id == engagement.team_id)).all()
        online_now = [a for a in team_agents if presence_of(a, now) is Presence.ONLINE]
        taken = candidates.taken_by_kind(session, [a.id for a in online_now])
        online += len(online_now)
        available += sum(
            1
            for a in online_now
            if taken[(a.id, queue.task_kind)] < eligibility.capacity_for(a.capacity, queue.task_kind)
        )
    answer["agents"] = {"online": online, "available": available}
    return answer


def team_stats(session: Session, principal: Principal, team_id: uuid.UUID) -> dict[str, Any]:
    team = get_team(session, principal, team_id)
    now = utcnow()
    team_agents = session.scalars(select(Agent).where(Agent.team_id == team.id).order_by(Agent.id)).all()
    held = candidates.held_by_kind(session, [a.id for a in team_agents])
    engaged = candidates.active_engagements(session, team_id=team.id)
    queue_ids = [e.queue_id for e in engaged]
    answer = _depth(session, queue_ids, now)
    answer["team_id"] = str(team.id)
    answer["waiting_by_queue"] = _by_queue(session, queue_ids, now)
    by_skill: dict[str, int] = {}
    for entry in answer["waiting_by_queue"]:
        for skill in entry["skills"]:
            by_skill[skill["name"]] = by_skill.get(skill["name"], 0) + entry["waiting"]
    answer["waiting_by_skill"] = dict(sorted(by_skill.items()))
    answer["agents"] = [
        {
            "agent_id": str(agent.id),
            "presence": presence_of(agent, now).value,
            "open_tasks": sum(count for (holder, _kind), count in held.items() if holder == agent.id),
            "last_assigned_at": iso(agent.last_assigned_at) if agent.last_assigned_at else None,
        }
        for agent in team_agents
    ]
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for engagement in engaged:
        by_tenant.setdefault(engagement.tenant_id, []).append(engagement.queue_id)
    answer["at_sla_risk"] = sum(
        _at_risk(session, tenant, queue_ids) for tenant, queue_ids in by_tenant.items()
    )
    return answer


def _depth(session: Session, queue_ids: Sequence[uuid.UUID], now: datetime) -> dict[str, Any]:
    if not queue_ids:
        return {
            "by_status": {},
            "waiting_by_language": {},
            "waiting_by_priority": {},
            "oldest_waiting_seconds": None,
        }
    scope = Task.queue_id.in_(list(queue_ids))
    by_status = dict(
        session.execute(
            select(Task.status, func.count()).where(scope, Task.status.in_(OPEN)).group_by(Task.status)
        ).all()
    )
    waiting = (scope, Task.status.in_(WAITING))
    by_language = session.execute(
        select(Task.language, func.count()).where(*waiting).group_by(Task.language)
    ).all()
    by_priority = session.execute(
        select(Task.priority, func.count()).where(*waiting).group_by(Task.priority)
    ).all()
    oldest = session.scalar(select(func.min(Task.created_at)).where(*waiting))
    return {
        "by_status": {status.value: count for status, count in by_status.items()},
        "waiting_by_language": {language or "unknown": count for language, count in by_language},
        "waiting_by_priority": {priority.value: count for priority, count in by_priority},
        "oldest_waiting_seconds": int((now - oldest).total_seconds()) if oldest else None,
    }


def _by_queue(session: Session, queue_ids: Sequence[uuid.UUID], now: datetime) -> list[dict[str, Any]]:
    """Each served queue's waiting tasks, the oldest one's age and the skills it requires,
    by name (a queue nothing waits in is listed with 0)."""
    if not queue_ids:
        return []
    served = session.scalars(select(Queue).where(Queue.id.in_(list(queue_ids))).order_by(Queue.name)).all()
    counted = {
        row.queue_id: row
        for row in session.execute(
            select(Task.queue_id, func.count().label("waiting"), func.min(Task.created_at).label("oldest"))
            .where(Task.queue_id.in_(list(queue_ids)), Task.status.in_(WAITING))
            .group_by(Task.queue_id)
        )
    }
    found = []
    for queue in served:
        row = counted.get(queue.id)
        found.append(
            {
                "queue_id": str(queue.id),
                "name": queue.name,
                "waiting": row.waiting if row else 0,
                "oldest_waiting_seconds": int((now - row.oldest).total_seconds()) if row else None,
                "skills": [{"name": s["name"], "min_level": s["min_level"]} for s in queue.skills],
            }
        )
    return found


def _at_risk(session: Session, tenant_id: uuid.UUID, queue_ids: Sequence[uuid.UUID]) -> int:
    """Open tasks whose SLA has warned and not yet breached, or has breached: a count of
    the client's clocks, read for the board."""
    if not queue_ids:
        return 0
    with acting_for_tenant(session, tenant_id):
        count = session.scalar(
            select(func.count(func.distinct(SlaClock.task_id))).where(
                SlaClock.queue_id.in_(list(queue_ids)),
                SlaClock.state == ClockState.RUNNING,
                SlaClock.warned_at.is_not(None),
            )
        )
    return int(count or 0)
