"""What routing reads of queues, teams and agents, as the plain values eligibility takes."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session

from services.core.errors import NotFound
from services.routing.eligibility import Profile, Requirements
from services.routing.models import Offer, OfferStatus
from services.work.models import HELD_STATUSES, Queue, Task
from services.work.proficiency import LanguageLevel
from services.workforce.models import Agent, Engagement, Team
from tenants.principal import Principal

# Rendered with its values, not parameters, so that every plan matches it to ix_tasks_held.
_HELD_NOW = Task.status.in_(
    bindparam("held_statuses", [s.value for s in HELD_STATUSES], expanding=True, literal_execute=True)
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


@dataclass(frozen=True)
class Workplace:
    """What a claim reads of the agent: their record, their team, the team's active
    engagements with their queues (a queue the agent may no longer read is None), and the
    places the agent has taken under the capacity for each of those queues' kinds (tasks
    held, and offers not answered yet)."""

    agent: Agent
    team: Team
    served: list[tuple[Engagement, Queue | None]]
    taken: dict[str, int]


def workplace(session: Session, principal: Principal) -> Workplace:
    """One query: each claim asks for all of it."""
    if principal.subject_kind != "user":
        raise NotFound("you are not an agent of any team")
    held = (
        select(func.count())
        .where(Task.assignee_id == Agent.id, _HELD_NOW, Task.kind_name == Queue.task_kind)
        .correlate(Agent, Queue)
        .scalar_subquery()
    )
    offered = (
        select(func.count())
        .select_from(Offer)
        .join(Task, Task.id == Offer.task_id)
        .where(
            Offer.agent_id == Agent.id, Offer.status == OfferStatus.PENDING, Task.kind_name == Queue.task_kind
        )
        .correlate(Agent, Queue)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Agent, Team, Engagement, Queue, held + offered)
        .join(Team, Team.id == Agent.team_id)
        .outerjoin(Engagement, and_(Engagement.team_id == Team.id, Engagement.revoked_at.is_(None)))
        .outerjoin(Queue, Queue.id == Engagement.queue_id)
        .where(Agent.user_id == principal.subject_id)
        .order_by(Engagement.id)
        .with_for_update(of=Agent)  # not removed while they claim (``routing.departures``)
    ).all()
    if not rows:
        raise NotFound("you are not an agent of any team")
    served = [(row[2], row[3]) for row in rows if row[2] is not None]
    taken = {row[3].task_kind: row[4] for row in rows if row[3] is not None}
    return Workplace(rows[0][0], rows[0][1], served, taken)


def held_tasks(session: Session, agent_id: uuid.UUID) -> list[Task]:
    """The tasks an agent holds, in the order they were taken from the queue."""
    query = select(Task).where(Task.assignee_id == agent_id, _HELD_NOW).order_by(Task.rank_at, Task.id)
    return list(session.scalars(query))


def taken_by_kind(session: Session, agent_ids: list[uuid.UUID]) -> Counter[tuple[uuid.UUID, str]]:
    """Places each agent has taken under their capacity, per task kind: the open tasks
    they hold, and the offers they have not answered yet."""
    taken = Counter(held_by_kind(session, agent_ids))  # the tasks alone: the team board's load
    if agent_ids:
        offered = session.execute(
            select(Offer.agent_id, Task.kind_name, func.count())
            .join(Task, Task.id == Offer.task_id)
            .where(Offer.agent_id.in_(agent_ids), Offer.status == OfferStatus.PENDING)
            .group_by(Offer.agent_id, Task.kind_name)
        )
        taken.update({(row[0], row[1]): row[2] for row in offered})
    return taken


def held_by_kind(session: Session, agent_ids: Iterable[uuid.UUID]) -> dict[tuple[uuid.UUID, str], int]:
    """Open tasks each agent holds, per task kind."""
    ids = list(agent_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Task.assignee_id, Task.kind_name, func.count())
        .where(Task.assignee_id.in_(ids), _HELD_NOW)
        .group_by(Task.assignee_id, Task.kind_name)
    )
    return {(row[0], row[1]): row[2] for row in rows if row[0] is not None}
