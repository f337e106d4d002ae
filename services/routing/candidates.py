"""What routing reads of queues, teams and agents, as the plain values eligibility takes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.routing.eligibility import Profile, Requirements
from services.work.models import Queue, Task, TaskStatus
from services.work.proficiency import LanguageLevel
from services.workforce.models import Agent, Engagement, Team

# The states in which a task counts against its agent's capacity.
HELD = (
    TaskStatus.ASSIGNED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.WAITING_ON_CLIENT,
    TaskStatus.WAITING_ON_THIRD_PARTY,
)


def requirements_of(queue: Queue) -> Requirements:
    policy = queue.routing_policy or {}
    return Requirements(
        languages=tuple(queue.languages),
        skills=tuple((skill["name"], int(skill.get("min_level", 1))) for skill in queue.skills),
        residency_allow=tuple(queue.residency_allow),
        residency_deny=tuple(queue.residency_deny),
        out_of_hours=queue.out_of_hours,
        min_language_level=LanguageLevel(policy.get("min_language_level", LanguageLevel.B2)),
    )


def team_profile(team: Team) -> Profile:
    return Profile(
        country=team.country,
        languages=tuple((entry["code"], entry["level"]) for entry in team.languages),
        skills=tuple((entry["name"], int(entry["level"])) for entry in team.skills),
        calendar=team.calendar,
    )


def agent_profile(team: Team, agent: Agent) -> Profile:
    """The agent's own languages, skills and shift where set, else the team's."""
    base = team_profile(team)
    return Profile(
        country=team.country,
        languages=base.languages
        if agent.languages is None
        else tuple((entry["code"], entry["level"]) for entry in agent.languages),
        skills=base.skills
        if agent.skills is None
        else tuple((e["name"], int(e["level"])) for e in agent.skills),
        calendar=agent.calendar or team.calendar,
    )


def active_engagements(
    session: Session, *, queue_id: uuid.UUID | None = None, team_id: uuid.UUID | None = None
) -> Sequence[Engagement]:
    query = select(Engagement).where(Engagement.revoked_at.is_(None)).order_by(Engagement.id)
    if queue_id is not None:
        query = query.where(Engagement.queue_id == queue_id)
    if team_id is not None:
        query = query.where(Engagement.team_id == team_id)
    return session.scalars(query).all()


def served_queues(session: Session, team_id: uuid.UUID) -> list[tuple[Engagement, Queue]]:
    """The team's active engagements with their queues, in one query."""
    rows = session.execute(
        select(Engagement, Queue)
        .join(Queue, Queue.id == Engagement.queue_id)
        .where(Engagement.team_id == team_id, Engagement.revoked_at.is_(None))
        .order_by(Engagement.id)
    )
    return [(row[0], row[1]) for row in rows]


def held_tasks(session: Session, agent_id: uuid.UUID) -> list[Task]:
    """The tasks an agent holds, in the order they were taken from the queue."""
    query = (
        select(Task)
        .where(Task.assignee_id == agent_id, Task.status.in_(HELD))
        .order_by(Task.rank_at, Task.id)
    )
    return list(session.scalars(query))


def held_by_kind(session: Session, agent_ids: Iterable[uuid.UUID]) -> dict[tuple[uuid.UUID, str], int]:
    """Open tasks each agent holds, per task kind."""
    ids = list(agent_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Task.assignee_id, Task.kind_name, func.count())
        .where(Task.assignee_id.in_(ids), Task.status.in_(HELD))
        .group_by(Task.assignee_id, Task.kind_name)
    )
    return {(row[0], row[1]): row[2] for row in rows if row[0] is not None}
