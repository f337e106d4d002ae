"""Push mode: the platform offers each queued task of a push queue to the best agent, who
accepts it within the queue's timeout (``routing.offer_timeout_seconds``, 60 s by
default) or lets it go to the next candidate.

Offers are made, expired and rescinded by ``sweep``, a Celery job that beat runs every
two seconds, never in a request: a task offered, an offer expired (the task back in its
queue, the agent not offered it again), an offer rescinded when its agent is no longer
online. What frees a place (a task arriving, an agent going online, a task finished,
released or rejected) is offered by the next sweep, within two seconds: sending a job from
each of those requests would save at most that, for a broker round trip in each.
Cancelling or escalating the task rescinds its offer in the same transaction
(``OfferObserver``). The candidate is the first eligible agent (every hard constraint,
online, under capacity) that the step in force lets in (``policy``), with the best score
(``scoring``: rank, idle time, load, cost, who worked the task or its case before, by the
queue's weights); one who let the task go is not asked again. The tenants whose push
queues share a team take turns by their engagements' shares (``fairness.Turns``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, NotFound
from services.core.time import utcnow
from services.routing import assignments, candidates, eligibility, fairness, policy, scoring
from services.routing.models import AssignedBy, Offer, OfferStatus, TaskAssignment
from services.work import history
from services.work.history import Actor
from services.work.lifecycle import Action
from services.work.models import Queue, QueueMode, Task, TaskStatus
from services.work.service import apply
from services.workforce.agents import presence_of, require_agent
from services.workforce.models import Agent, Engagement, EngagementRank, Presence, Team
from tenants.principal import Permission, Principal
from tenants.scoping import fetch, narrowed_to

SWEEP_BATCH = 200  # tasks offered per queue and sweep


def _order(agent: Agent) -> int:
    """Between equal scores: the agent created first (ids sort by creation)."""
    return -agent.id.int


def timeout_of(queue: Queue) -> timedelta:
    return timedelta(seconds=int((queue.routing_policy or {}).get("offer_timeout_seconds", 60)))


def sweep(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Expire and rescind what must be, then offer what waits. Runs for the platform."""
    now = now or utcnow()
    done = {"expired": 0, "rescinded": 0, "offered": 0}
    pending = session.scalars(
        select(Offer).where(Offer.status == OfferStatus.PENDING).with_for_update(skip_locked=True)
    )
    for offer in pending.all():
        agent = fetch(session, Agent, offer.agent_id)
        if offer.expires_at <= now:
            end(session, offer, OfferStatus.EXPIRED, "timeout", now)
            done["expired"] += 1
        elif agent is None or presence_of(agent, now) is not Presence.ONLINE:
            end(session, offer, OfferStatus.RESCINDED, "agent offline", now)
            done["rescinded"] += 1
    done["offered"] = _offer_in_turns(session, now)
    return done


def _offer_in_turns(session: Session, now: datetime) -> int:
    """Offer the first waiting tasks of every push queue, the tenants taking turns by
    their shares (``fairness.Turns``): how many were offered."""
    offered = 0
    backlogs: dict[uuid.UUID, list[tuple[Queue, Task]]] = {}  # per tenant, in rank order
    shares: dict[uuid.UUID, int] = {}
    workforces: dict[uuid.UUID, Workforce] = {}
    team_ids: set[uuid.UUID] = set()  # the teams of the push queues with work waiting
    crews: dict[uuid.UUID, Crew] = {}
    for queue in session.scalars(select(Queue).where(Queue.mode == QueueMode.PUSH)).all():
        waiting = session.scalars(
            select(Task)
            .where(Task.queue_id == queue.id, Task.status == TaskStatus.QUEUED)
            .order_by(Task.rank_at, Task.id)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not waiting:
            continue
        engagements = candidates.active_engagements(session, queue_id=queue.id)
        workforces[queue.id] = _workforce(session, engagements, crews)
        backlogs.setdefault(queue.tenant_id, []).extend((queue, task) for task in waiting)
        team_ids.update(e.team_id for e in engagements)
        share = max((e.share or 1 for e in engagements), default=1)
        shares[queue.tenant_id] = max(shares.get(queue.tenant_id, 0), share)
    for backlog in backlogs.values():
        backlog.sort(key=lambda entry: (entry[1].rank_at or entry[1].created_at, entry[1].id), reverse=True)
    turns = fairness.Turns(fairness.served_lately(session, team_ids, now) if team_ids else {}, shares)
    while (tenant := turns.next_of(backlogs)) is not None:
        queue, task = backlogs[tenant].pop()
        if offer_next(session, queue, task, now, workforces[queue.id]) is not None:
            offered += 1
            turns.served(tenant)
    return offered


# Per engaged team of a queue: its rank, the team, its agents and their open tasks by kind
# (held, or offered and not answered yet: an offer takes a place under the capacity). A
# team serving several push queues has one count for all of them in a sweep.
Crew = tuple[Team, list[Agent], Counter[tuple[uuid.UUID, str]]]
Workforce = list[tuple[EngagementRank, Team, list[Agent], Counter[tuple[uuid.UUID, str]]]]


def _workforce(
    session: Session,
    engagements: Sequence[Engagement],
    crews: dict[uuid.UUID, Crew],
) -> Workforce:
    """Read once per queue and sweep, not once per task offered; ``crews``: the teams read
    already in this sweep."""
    found: Workforce = []
    for engagement in engagements:
        if engagement.team_id not in crews:
            team = fetch(session, Team, engagement.team_id)
            if team is None:
                continue
            team_agents = list(session.scalars(select(Agent).where(Agent.team_id == team.id)))
            taken = candidates.taken_by_kind(session, [a.id for a in team_agents])
            crews[team.id] = (team, team_agents, taken)
        found.append((engagement.rank, *crews[engagement.team_id]))
    return found


def offer_next(
    session: Session, queue: Queue, task: Task, now: datetime, workforce: Workforce
) -> Offer | None:
    """Offer ``task`` to its best candidate who has not let it go yet; None if nobody may.
    The step in force says whom it may go to; the queue's weights say who is best."""
    asked = set(session.scalars(select(Offer.agent_id).where(Offer.task_id == task.id)))
    worked = worked_before(session, task)
    requirements = candidates.requirements_of(queue)
    rules = policy.policy_of(queue.routing_policy)
    step = policy.in_force(rules, task.created_at, task.overflow_since, now)
    languages = eligibility.task_languages(requirements, task.language, task.language_confidence)
    eligible: list[tuple[Agent, Team, scoring.Facts, dict[str, Any]]] = []
    taken_by_team: dict[uuid.UUID, Counter[tuple[uuid.UUID, str]]] = {}
    seen: list[dict[str, Any]] = []
    for rank, team, team_agents, held in workforce:
        taken_by_team[team.id] = held
        for agent in team_agents:
            profile = candidates.agent_profile(team, agent)
            open_tasks = held.get((agent.id, task.kind_name), 0)
            capacity = eligibility.capacity_for(agent.capacity, task.kind_name)
            failed = eligibility.team_failure(requirements, profile, languages, now)
            failed = failed or eligibility.agent_failure(
                presence_of(agent, now) is Presence.ONLINE, open_tasks, capacity
            )
            line: dict[str, Any] = {"team_id": str(team.id), "agent_id": str(agent.id)}
            first = policy.admitted_from(rules, rank, profile, requirements)
            if failed is None and (first is None or first > step):
                failed = policy.not_let_in(rules, step, rank)
                if first is not None:
                    line["not_before"] = rules.steps[first].name
            declined = failed is None and agent.id in asked  # eligible, but has said no to it
            if declined:
                line["declined"] = True
            seen.append(
                line | {"eligible": failed is None and not declined} | ({"failed": failed} if failed else {})
            )
            if failed is None and not declined:
                cost = (team.hourly_cost_amount, team.hourly_cost_currency)
                sticky = agent.id in worked
                facts = scoring.Facts(rank, agent.last_assigned_at, open_tasks, capacity, cost, sticky)
                eligible.append((agent, team, facts, seen[-1]))
    if not eligible:
        return None
    for score, (_agent, _team, _facts, line) in zip(
        scoring.scores(rules.weights, [facts for _a, _t, facts, _l in eligible], now), eligible, strict=True
    ):
        line["score"] = score
    agent, team, _facts, _line = max(eligible, key=lambda entry: (entry[3]["score"], _order(entry[0])))
    taken_by_team[team.id][(agent.id, task.kind_name)] += 1  # the next task of this sweep sees it
    apply(session, assignments.ROUTING, task, Action.OFFER)
    task.offered_to_id = agent.id  # the agent reads what they are offered (``Task.agent_rows``)
    offer = Offer(
        tenant_id=task.tenant_id,
        task_id=task.id,
        agent_id=agent.id,
        team_id=team.id,
        provider_id=team.tenant_id,
        offered_at=now,
        expires_at=now + timeout_of(queue),
    )
    session.add(offer)
    assignments.record_decision(
        session,
        task,
        kind="offer",
        step=rules.steps[step].name,
        winner=(agent.id, team.id),
        candidates_seen=seen,
    )
    session.flush()
    return offer


# A case's recent assignments are enough to know who worked it: a long case's early history
# is not read for every offer.
CASE_HISTORY = 50


def worked_before(session: Session, task: Task) -> set[uuid.UUID]:
    """The agents who held this task, or another task of its case (``case_ref``)."""
    held_it = select(TaskAssignment.agent_id).where(TaskAssignment.task_id == task.id)
    if task.case_ref is None:
        return set(session.scalars(held_it))
    case = (
        select(TaskAssignment.agent_id)
        .join(Task, Task.id == TaskAssignment.task_id)
        .where(Task.case_ref == task.case_ref)
        .order_by(TaskAssignment.assigned_at.desc())
        .limit(CASE_HISTORY)
    )
    with narrowed_to(session, task.tenant_id):  # a case reference is the client's own
        return set(session.scalars(held_it)) | set(session.scalars(case))


def end(session: Session, offer: Offer, status: OfferStatus, reason: str, now: datetime) -> None:
    """The offer ends without an assignment: the task goes back to its queue."""
    offer.status, offer.reason, offer.ended_at = status, reason, now
    task = fetch(session, Task, offer.task_id, lock=True)
    if task is not None and task.status is TaskStatus.OFFERED:
        apply(session, assignments.ROUTING, task, Action.DECLINE)
        task.offered_to_id = None


def my_offers(session: Session, principal: Principal) -> list[tuple[Offer, Task]]:
    principal.require(Permission.TASKS_READ)
    agent = require_agent(session, principal)
    rows = session.execute(
        select(Offer, Task)
        .join(Task, Task.id == Offer.task_id)
        .where(Offer.agent_id == agent.id, Offer.status == OfferStatus.PENDING, Offer.expires_at > utcnow())
        .order_by(Offer.expires_at)
    ).all()
    return [(row.Offer, row.Task) for row in rows]


def _own_offer(session: Session, principal: Principal, offer_id: uuid.UUID) -> tuple[Offer, Agent, Task]:
    """The agent's pending offer and its task. An agent reads their offers also once the
    task went to a colleague or was cancelled (an ended offer is a 409 that says how it
    ended); a pending one whose task is out of their sight (the engagement was revoked) is
    no longer theirs."""
    principal.require(Permission.TASKS_WRITE)
    agent = require_agent(session, principal, lock=True)  # first, as a removal locks it (no deadlock)
    offer = fetch(session, Offer, offer_id, lock=True)
    if offer is None or offer.agent_id != agent.id:
        raise NotFound("no such offer")  # another agent's offer is not yours to know of
    now = utcnow()
    if offer.status is not OfferStatus.PENDING or offer.expires_at <= now:
        state = OfferStatus.EXPIRED.value if offer.status is OfferStatus.PENDING else offer.status.value
        raise Conflict(f"the offer is {state}", extra={"offer_status": state})
    task = fetch(session, Task, offer.task_id, lock=True)
    if task is None:
        raise NotFound("no such offer")
    return offer, agent, task


def accept(session: Session, principal: Principal, offer_id: uuid.UUID) -> Task:
    offer, agent, task = _own_offer(session, principal, offer_id)
    team = fetch(session, Team, agent.team_id)
    assert team is not None
    offer.status, offer.ended_at = OfferStatus.ACCEPTED, utcnow()
    task.offered_to_id = None
    assignments.assign(
        session, task, agent, team, AssignedBy.PUSH, principal, step="push: accepted", action=Action.ACCEPT
    )
    return task


def reject(session: Session, principal: Principal, offer_id: uuid.UUID, reason: str | None) -> Offer:
    offer, _agent, task = _own_offer(session, principal, offer_id)
    offer.status, offer.reason, offer.ended_at = OfferStatus.REJECTED, (reason or "rejected")[:64], utcnow()
    if task.status is TaskStatus.OFFERED:
        apply(session, Actor.of(principal), task, Action.DECLINE)
        task.offered_to_id = None
    session.flush()
    return offer


class OfferObserver:
    """A cancelled (or otherwise settled) task's pending offer is rescinded with it."""

    def recorded(self, session: Session, task: Task, actor: Actor, event: Any) -> None:
        return None

    def creating_many(self, session: Session, tasks: list[dict[str, Any]]) -> bool:
        return False

    def created_many(self, session: Session, tasks: list[dict[str, Any]]) -> None:
        return None

    def applied(self, session: Session, task: Task, actor: Actor, action: Action) -> None:
        if action not in (Action.CANCEL, Action.ESCALATE):
            return
        task.offered_to_id = None
        for offer in session.scalars(
            select(Offer).where(Offer.task_id == task.id, Offer.status == OfferStatus.PENDING)
        ):
            offer.status, offer.reason, offer.ended_at = OfferStatus.RESCINDED, action.value, utcnow()


history.observe(OfferObserver())
