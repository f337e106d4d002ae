"""Pull: an agent's next task, picked and taken in one transaction that cannot hand a task
to two agents.

The queues the agent may work now are found first, in Python, from a handful of rows
(the team's engagements, their queues, the agent's load): residency, skills, calendar,
presence and capacity are the same for every task of a queue. Then one statement takes the
first queued task of those queues, in the agent's languages, in ``rank_at`` order (the
index ``ix_tasks_queued_rank`` serves it), ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a
task another agent is taking is passed over, never waited for, never taken twice. On
SQLite every write transaction is serialised (``BEGIN IMMEDIATE``). The assignment's
unique index (one open assignment a task) backs it whatever the code does.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from services.core.errors import Conflict
from services.core.time import utcnow
from services.routing import assignments, candidates, eligibility, fairness, policy
from services.routing.models import AssignedBy
from services.work.models import QueueMode, Task, TaskStatus
from services.work.proficiency import at_least
from services.workforce.agents import presence_of, require_agent_and_team
from services.workforce.models import Presence
from tenants.principal import Principal


class AgentUnavailable(Conflict):
    """The agent may not take work now: offline, or at capacity for every kind."""

    type = "/problems/agent-unavailable"


@dataclass(frozen=True)
class Claim:
    task: Task | None
    reason: str | None  # why nothing was taken: calendar, nothing_eligible, nothing_queued


def next_task(session: Session, principal: Principal) -> Claim:
    started = time.perf_counter()
    agent, team = require_agent_and_team(session, principal)
    now = utcnow()
    if presence_of(agent, now) is not Presence.ONLINE:
        raise AgentUnavailable("you are offline: go online to take work", extra={"reason": "presence"})
    profile = candidates.agent_profile(team, agent)
    held = candidates.held_by_kind(session, [agent.id])
    served = candidates.served_queues(session, team.id)
    engagements = [engagement for engagement, _queue in served]
    queues = {queue.id: queue for _engagement, queue in served}
    failures: Counter[str] = Counter()
    by_tenant: dict[uuid.UUID, list[Any]] = defaultdict(list)
    shares: dict[uuid.UUID, int] = {}
    policies: dict[uuid.UUID, policy.Policy] = {}
    for engagement in engagements:
        queue = queues.get(engagement.queue_id)
        if queue is None or queue.mode is QueueMode.PUSH:  # revoked meanwhile; or offered, not pulled
            continue
        requirements = candidates.requirements_of(queue)
        capacity = eligibility.capacity_for(agent.capacity, queue.task_kind)
        failed = eligibility.agent_failure(True, held.get((agent.id, queue.task_kind), 0), capacity)
        failed = failed or eligibility.team_failure(requirements, profile, (), now)
        queue_policy = policies[queue.id] = policy.policy_of(queue.routing_policy)
        first_step = policy.admitted_from(queue_policy, engagement.rank, profile, requirements)
        if failed is None and first_step is None:
            failed = policy.not_let_in(queue_policy, len(queue_policy.steps) - 1, engagement.rank)
        if failed is not None:
            failures[failed] += 1
            continue
        assert first_step is not None
        by_tenant[queue.tenant_id].append(
            and_(
                Task.queue_id == queue.id,
                _language_clause(requirements, profile),
                *_relaxed_enough(queue_policy, first_step, now),
            )
        )
        shares[queue.tenant_id] = max(shares.get(queue.tenant_id, 0), engagement.share or 1)
    if not by_tenant:
        if failures and set(failures) == {"capacity"}:
            raise AgentUnavailable("you hold as many tasks as you may", extra={"reason": "capacity"})
        reason = failures.most_common(1)[0][0] if failures else "nothing_eligible"
        return Claim(None, reason)
    for tenant_id in fairness.tenant_order(session, team.id, shares, now):
        task = session.scalars(
            select(Task)
            .where(Task.status == TaskStatus.QUEUED, or_(*by_tenant[tenant_id]))
            .order_by(Task.rank_at, Task.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if task is not None:
            queue_policy = policies[task.queue_id]
            in_force = policy.in_force(queue_policy, task.created_at, task.overflow_since, now)
            step = queue_policy.steps[in_force].name
            if len(by_tenant) > 1:
                step += f"; tenant share {shares[tenant_id]}"
            took_ms = (time.perf_counter() - started) * 1000
            assignments.assign(
                session, task, agent, team, AssignedBy.PULL, principal, step=step, took_ms=took_ms
            )
            return Claim(task, None)
    return Claim(None, "nothing_queued")


def _relaxed_enough(queue_policy: policy.Policy, first_step: int, now: Any) -> list[Any]:
    """Tasks whose step in force lets in a candidate admitted from ``first_step`` on."""
    if first_step == 0:
        return []
    wait, at_risk = policy.earliest_trigger(queue_policy, first_step)
    triggers: list[Any] = []
    if wait is not None:
        triggers.append(Task.created_at <= now - wait)
    if at_risk:
        triggers.append(Task.overflow_since.is_not(None))
    return [or_(*triggers)]


def _language_clause(requirements: eligibility.Requirements, profile: eligibility.Profile) -> Any:
    """Tasks in a language the agent speaks at the queue's level; a task whose language is
    unknown, or a guess, goes to whoever speaks one of the queue's."""
    own = [code for code, level in profile.languages if at_least(level, requirements.min_language_level)]
    clause: Any = Task.language.in_(own) if own else false()
    if not requirements.languages or set(own) & set(requirements.languages):
        uncertain = or_(Task.language.is_(None), Task.language_confidence < eligibility.CONFIDENT)
        clause = or_(clause, uncertain)
    return clause
