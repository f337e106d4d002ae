"""Pull: an agent's next task, picked and taken in one transaction that cannot hand a task
to two agents.

The queues the agent may work now are found first, in Python, from the rows of one query
(``candidates.workplace``: the agent, the team's engagements and queues, the agent's load):
residency, skills, calendar, presence and capacity are the same for every task of a queue.
Then one statement takes the first queued task of those queues, in the agent's languages,
in the order of tenant fairness, then ``rank_at`` (``_take``: it reads the first entries of
each queue, whatever the backlog, and probes deeper only when others hold them all). It
locks with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a task another agent is taking is
passed over, never waited for, never taken twice. On SQLite every write transaction is
serialised (``BEGIN IMMEDIATE``). The assignment's unique index (one open assignment a
task) backs it whatever the code does. Before that order, where the queue weighs
stickiness, a queued task of a case the agent worked lately is theirs (``_take_sticky``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Uuid, and_, bindparam, case, false, func, or_, select, true, tuple_, union_all
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session

from services.core.errors import Conflict
from services.core.time import utcnow
from services.routing import assignments, candidates, eligibility, fairness, policy
from services.routing.models import AssignedBy, TaskAssignment
from services.work.models import QueueMode, Task, TaskStatus
from services.work.proficiency import at_least
from services.workforce.agents import presence_of
from services.workforce.models import Presence
from tenants.principal import Principal


class AgentUnavailable(Conflict):
    """The agent may not take work now: offline, or at capacity for every kind."""

    type = "/problems/agent-unavailable"


@dataclass(frozen=True)
class Claim:
    task: Task | None
    reason: str | None  # why nothing was taken: nothing_queued, nothing_eligible, or a constraint


def next_task(session: Session, principal: Principal) -> Claim:
    started = time.perf_counter()
    place = candidates.workplace(session, principal)
    agent, team = place.agent, place.team
    now = utcnow()
    if presence_of(agent, now) is not Presence.ONLINE:
        raise AgentUnavailable("you are offline: go online to take work", extra={"reason": "presence"})
    profile = candidates.agent_profile(team, agent)
    failures: Counter[str] = Counter()
    reached: dict[Reach, list[uuid.UUID]] = {}  # the queues whose tasks the agent takes alike
    shares: dict[uuid.UUID, int] = {}
    policies: dict[uuid.UUID, policy.Policy] = {}
    sticky_queues: set[uuid.UUID] = set()  # where the agent's own cases come first
    for engagement, queue in place.served:
        if queue is None or queue.mode is QueueMode.PUSH:  # revoked meanwhile; or offered, not pulled
            continue
        requirements = candidates.requirements_of(queue)
        capacity = eligibility.capacity_for(agent.capacity, queue.task_kind)
        failed = eligibility.agent_failure(True, place.taken.get(queue.task_kind, 0), capacity)
        failed = failed or eligibility.team_failure(requirements, profile, (), now)
        queue_policy = policies[queue.id] = policy.policy_of(queue.routing_policy)
        first_step = policy.admitted_from(queue_policy, engagement.rank, profile, requirements)
        if failed is None and first_step is None:
            failed = policy.not_let_in(queue_policy, len(queue_policy.steps) - 1, engagement.rank)
        if failed is not None:
            failures[failed] += 1
            continue
        assert first_step is not None
        reach = _reach(requirements, profile, queue_policy, first_step)
        if reach is None:
            failures["language"] += 1
            continue
        reached.setdefault(reach, []).append(queue.id)
        if queue_policy.weights.sticky > 0:
            sticky_queues.add(queue.id)
        shares[queue.tenant_id] = max(shares.get(queue.tenant_id, 0), engagement.share or 1)
    if not reached:
        if failures and set(failures) == {"capacity"}:
            raise AgentUnavailable("you hold as many tasks as you may", extra={"reason": "capacity"})
        reason = failures.most_common(1)[0][0] if failures else "nothing_eligible"
        return Claim(None, reason)
    turns = fairness.tenant_order(session, team.id, shares, now)
    task = _take_sticky(session, agent.id, reached, sticky_queues, turns, now) if sticky_queues else None
    sticky = task is not None
    task = task or _take(session, reached, turns, now)
    if task is None:  # nothing in the agent's reach; is anything waiting beyond it (language, step)?
        waiting = select(Task.id).where(
            _QUEUED, Task.queue_id.in_([q for ids in reached.values() for q in ids])
        )
        return Claim(None, "nothing_eligible" if session.scalar(waiting.limit(1)) else "nothing_queued")
    queue_policy = policies[task.queue_id]
    in_force = policy.in_force(queue_policy, task.created_at, task.overflow_since, now)
    step = queue_policy.steps[in_force].name
    if sticky:
        step += "; sticky: case worked before"
    if len(shares) > 1:
        step += f"; tenant share {shares[task.tenant_id]}"
    took_ms = (time.perf_counter() - started) * 1000
    assignments.assign(session, task, agent, team, AssignedBy.PULL, principal, step=step, took_ms=took_ms)
    return Claim(task, None)


@dataclass(frozen=True)
class Reach:
    """Which tasks of a queue the agent may take: in the languages they speak at its level
    (and of unknown language), once waited long enough for the step that lets them in."""

    languages: tuple[str, ...]
    uncertain: bool  # tasks whose language is unknown, or a guess
    waited: timedelta | None  # the step's wait, if it has one
    at_risk: bool  # the step lets them in once the task is at risk

    def clause(self, now: datetime) -> Any:
        taken: Any = Task.language.in_(self.languages) if self.languages else false()
        if self.uncertain:
            taken = or_(taken, Task.language.is_(None), Task.language_confidence < eligibility.CONFIDENT)
        triggers: list[Any] = []
        if self.waited is not None:
            triggers.append(Task.created_at <= now - self.waited)
        if self.at_risk:
            triggers.append(Task.overflow_since.is_not(None))
        return and_(taken, or_(*triggers)) if triggers else taken


def _reach(
    requirements: eligibility.Requirements,
    profile: eligibility.Profile,
    queue_policy: policy.Policy,
    first_step: int,
) -> Reach | None:
    own = [code for code, level in profile.languages if at_least(level, requirements.min_language_level)]
    uncertain = not requirements.languages or bool(set(own) & set(requirements.languages))
    if not own and not uncertain:
        return None
    waited, at_risk = policy.earliest_trigger(queue_policy, first_step) if first_step else (None, False)
    return Reach(tuple(sorted(own)), uncertain, waited, at_risk)


# How deep each queue is probed on PostgreSQL: the claim locks the first of those heads that
# no other transaction holds. Deeper heads are read only when there were heads and all were
# held at once (more agents claiming from the same queues than the depth, or the language
# detection's batch of 500); the last probe reads whole queues, so that "nothing queued" is
# always true.
PROBES = (4, 64, 1024, None)
# Rendered as a value, not a parameter, so that every plan (prepared ones too) can prove the
# predicate of the partial index ix_tasks_queued_rank.
_QUEUED = Task.status == bindparam("queued_status", TaskStatus.QUEUED.value, literal_execute=True)


def _in_order(reached: dict[Reach, list[uuid.UUID]], turns: list[uuid.UUID], now: datetime) -> Any:
    """The queued tasks the agent reaches, in the order of ``turns`` (tenants, by
    fairness), then ``rank_at``: the first is theirs."""
    reachable = or_(*(and_(Task.queue_id.in_(ids), reach.clause(now)) for reach, ids in reached.items()))
    first = select(Task).where(_QUEUED, reachable).limit(1)
    if len(turns) > 1:
        first = first.order_by(
            case({tenant: turn for turn, tenant in enumerate(turns)}, value=Task.tenant_id)
        )
    return first.order_by(Task.rank_at, Task.id)


# The cases of the agent's last RECENT assignments are theirs to go on with (an index on
# the agent's assignments by time reads these and no more).
RECENT = 50


def _take_sticky(
    session: Session,
    agent_id: uuid.UUID,
    reached: dict[Reach, list[uuid.UUID]],
    sticky_queues: set[uuid.UUID],
    turns: list[uuid.UUID],
    now: datetime,
) -> Task | None:
    """The first queued task of a case the agent worked lately (``case_ref``), in the
    queues whose weights count stickiness: the agent who knows the claim file goes on with
    it, as a push offer would give it to them. The cases are read first (a few index
    entries), so that the task is found by the index on (tenant, case) whatever the
    statistics say; with none, the claim takes the queue's order."""
    recent = (
        select(TaskAssignment.task_id)
        .where(TaskAssignment.agent_id == agent_id)
        .order_by(TaskAssignment.assigned_at.desc())
        .limit(RECENT)
        .subquery()
    )
    cases = session.execute(
        select(Task.tenant_id, Task.case_ref)
        .join(recent, recent.c.task_id == Task.id)
        .where(Task.case_ref.is_not(None))
        .distinct()
    ).all()
    if not cases:
        return None
    narrowed = {reach: [id_ for id_ in ids if id_ in sticky_queues] for reach, ids in reached.items()}
    sticky = _in_order({reach: ids for reach, ids in narrowed.items() if ids}, turns, now).where(
        tuple_(Task.tenant_id, Task.case_ref).in_([tuple(case) for case in cases])
    )
    if session.get_bind().dialect.name == "postgresql":
        sticky = sticky.with_for_update(skip_locked=True)
    return session.scalars(sticky).first()


def _take(
    session: Session, reached: dict[Reach, list[uuid.UUID]], turns: list[uuid.UUID], now: datetime
) -> Task | None:
    """Lock and return the first task the agent may take, in the order of ``turns``
    (tenants, by fairness), then ``rank_at``.

    On PostgreSQL: the first entries of each queue (``ix_tasks_queued_rank``, one LATERAL
    probe a queue, whatever the backlog), and of those the first that no other transaction
    holds (``SKIP LOCKED``). The locking statement repeats the agent's reach: a row another
    transaction changed since the probe read it (its language detected, say) is checked
    again as it is now. SQLite, whose write transactions are serialised, reads them in one
    plain statement."""
    first = _in_order(reached, turns, now)
    if session.get_bind().dialect.name != "postgresql":
        return session.scalars(first).first()
    for depth in PROBES:
        heads = union_all(*(_heads(reach, ids, depth, now) for reach, ids in reached.items()))
        task = session.scalars(first.where(Task.id.in_(heads)).with_for_update(skip_locked=True)).first()
        if task is not None or depth is None:
            return task
        if session.scalar(select(heads.subquery().c.id).limit(1)) is None:
            return None  # no heads at all, not heads held by others: nothing to take
    return None


def _heads(reach: Reach, queue_ids: list[uuid.UUID], depth: int | None, now: datetime) -> Any:
    """The first ``depth`` queued tasks of each queue the agent reaches alike."""
    queue = func.unnest(array(queue_ids, type_=Uuid)).table_valued("id").render_derived("queue")
    head = (
        select(Task.id)
        .where(Task.queue_id == queue.c.id, _QUEUED, reach.clause(now))
        .order_by(Task.rank_at, Task.id)
        .limit(depth)
        .lateral("head")
    )
    return select(head.c.id).select_from(queue).join(head, true())
