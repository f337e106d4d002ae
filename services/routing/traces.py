"""``GET /v1/tasks/{id}/routing``: why a task went where it did, and why a queued task
has not gone anywhere yet.

The recorded decisions come first; for a task still waiting, the platform evaluates every
engaged team and its agents against the hard constraints now, so "why is it not routed"
has an answer ("the only team speaking Danish works in the Philippines, which the
residency rule excludes"; "no engaged team's calendar is open until Monday 08:00
Europe/Bucharest"). Every decision also names the teams serving the client's other queues
that the queue's residency rule excludes (never engaged on it: ``_excluded_by_residency``).
The operator sees everything; the client sees no provider-internal field (no cost, no
agent, no score, no one's name). Decisions are kept for ``TRACE_RETENTION``
(``purge_old_decisions``); an answer shows a task's latest ``TRACE_LIMIT``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.core.database import affected_rows
from services.core.errors import NotFound
from services.core.time import utcnow
from services.routing import candidates, eligibility, policy
from services.routing.models import RoutingDecision
from services.work import residency
from services.work.documents import iso
from services.work.models import Queue, Task, TaskStatus
from services.work.service import get_task
from services.workforce.agents import presence_of
from services.workforce.models import Agent, EngagementRank, Presence, Team
from tenants.principal import OrgKind, Principal
from tenants.scoping import acting_for_tenant, fetch, narrowed_to

TRACE_RETENTION = timedelta(days=90)
TRACE_LIMIT = 50  # the latest decisions of a task that an answer shows
WAITING = (TaskStatus.QUEUED, TaskStatus.REOPENED, TaskStatus.ESCALATED, TaskStatus.OFFERED)
# What a client is not shown of a candidate (when a closed team opens, it is).
_PROVIDER_INTERNAL = ("agent_id", "hourly_cost", "score")


def routing_of(session: Session, principal: Principal, task_id: Any) -> dict[str, Any]:
    task = get_task(session, principal, task_id)
    if principal.org_kind is OrgKind.PROVIDER:
        raise NotFound("no such task")  # the trace names other providers' teams
    rows = session.scalars(
        select(RoutingDecision)
        .where(RoutingDecision.task_id == task.id)
        .order_by(RoutingDecision.id.desc())
        .limit(TRACE_LIMIT)
    ).all()
    decisions = [_decision(row) for row in reversed(rows)]
    queue = fetch(session, Queue, task.queue_id)
    assert queue is not None
    excluded = _excluded_by_residency(session, queue)
    answer: dict[str, Any] = {"task_id": str(task.id), "status": task.status.value, "step": "primary"}
    if rows:
        answer["step"] = rows[0].step
    if task.status in WAITING:
        explanation = explain(session, task, queue)
        decisions.append(explanation)
        answer["step"] = explanation["step"]
    for decision in decisions:
        decision["candidates"] += [dict(line) for line in excluded]
    if principal.org_kind is OrgKind.CLIENT:
        for decision in decisions:
            decision.pop("winner_agent_id", None)
            decision.pop("by", None)
            decision["candidates"] = _per_team(decision["candidates"])
    answer["decisions"] = decisions
    return answer


def _per_team(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a client sees of the candidates: one line a team, never one an agent (which
    would tell the provider's headcount), without the provider's internal fields (a score
    would tell its cost). A team known only by its agents' lines is eligible if one is,
    else fails on its agents' most common reason."""
    teams: dict[Any, dict[str, Any]] = {}
    agents: dict[Any, list[dict[str, Any]]] = {}
    for candidate in found:
        key = candidate.get("team_id")
        if "agent_id" in candidate:
            agents.setdefault(key, []).append(candidate)
        else:
            teams.setdefault(key, candidate)
    for key, lines in agents.items():
        if key not in teams:
            eligible = any(line["eligible"] for line in lines)
            reason = None if eligible else _most_common([line.get("failed") for line in lines])
            teams[key] = {"team_id": key, "eligible": eligible} | ({"failed": reason} if reason else {})
    return [
        {k: v for k, v in line.items() if k not in _PROVIDER_INTERNAL and (k != "timezone" or _closed(line))}
        for line in teams.values()
    ]


def _closed(line: dict[str, Any]) -> bool:
    """A closed team's line says when it opens, in its timezone ("Monday 08:00
    Europe/Bucharest"); otherwise the client has no use for the team's timezone."""
    return "calendar_opens_at" in line


def _decision(row: RoutingDecision) -> dict[str, Any]:
    decision: dict[str, Any] = {
        "at": iso(row.at),
        "kind": row.kind,
        "step": row.step,
        "candidates": [dict(candidate) for candidate in row.candidates],
        "took_ms": row.took_ms,
    }
    if row.actor_name:
        decision["by"] = row.actor_name  # who assigned by hand: the operator's to read
    if row.winner_team_id is not None:
        decision["winner"] = {"team_id": str(row.winner_team_id)}
        decision["winner_agent_id"] = str(row.winner_agent_id)
    return decision


def explain(session: Session, task: Task, queue: Queue) -> dict[str, Any]:
    """Every engaged team, and each of its agents, against the hard constraints now."""
    now = utcnow()
    requirements = candidates.requirements_of(queue)
    rules = policy.policy_of(queue.routing_policy)
    step = policy.in_force(rules, task.created_at, task.overflow_since, now)
    languages = eligibility.task_languages(requirements, task.language, task.language_confidence)
    found: list[dict[str, Any]] = []
    for engagement in candidates.active_engagements(session, queue_id=queue.id):
        # Teams and agents are the provider's rows: read for the caller, shown filtered.
        with acting_for_tenant(session, engagement.provider_id):
            team = fetch(session, Team, engagement.team_id)
            agents = session.scalars(select(Agent).where(Agent.team_id == engagement.team_id)).all()
        if team is None:
            continue
        profile = candidates.team_profile(team)
        failed = eligibility.team_failure(requirements, profile, languages, now)
        not_before = None
        if failed is None:
            failed, not_before = _not_yet(rules, step, engagement.rank, profile, requirements)
        entry: dict[str, Any] = {
            "team_id": str(team.id),
            "rank": engagement.rank.value,
            "country": team.country,
            "eligible": failed is None,
            "timezone": team.timezone,
            "hourly_cost": {"amount": team.hourly_cost_amount, "currency": team.hourly_cost_currency},
        }
        if not_before is not None:
            entry["not_before"] = not_before
        if failed is not None:
            entry["failed"] = failed
            if failed == "calendar":
                opens = eligibility.calendar_of(team.calendar).next_open(now)
                entry["calendar_opens_at"] = iso(opens)
            found.append(entry)
            continue
        held = candidates.taken_by_kind(session, [agent.id for agent in agents])
        agents_failed = []
        for agent in agents:
            agent_profile = candidates.agent_profile(team, agent)
            agent_failed = eligibility.team_failure(requirements, agent_profile, languages, now)
            if agent_failed is None:
                agent_failed = _not_yet(rules, step, engagement.rank, agent_profile, requirements)[0]
            agent_failed = agent_failed or eligibility.agent_failure(
                presence_of(agent, now) is Presence.ONLINE,
                held.get((agent.id, task.kind_name), 0),
                eligibility.capacity_for(agent.capacity, task.kind_name),
            )
            agents_failed.append(agent_failed)
            candidate = {"team_id": str(team.id), "agent_id": str(agent.id), "eligible": agent_failed is None}
            found.append(candidate | ({"failed": agent_failed} if agent_failed else {}))
        if not agents or all(agents_failed):
            entry["eligible"] = False
            entry["failed"] = _most_common(agents_failed) or "presence"
        found.append(entry)
    answer = {"at": iso(now), "kind": "explain", "step": rules.steps[step].name, "candidates": found}
    return answer if found else answer | {"failed": "engagement"}  # no team is engaged at all


def _excluded_by_residency(session: Session, queue: Queue) -> list[dict[str, Any]]:
    """The teams serving the client's other queues that this queue's residency rule
    excludes, never engaged on it (its engagement is refused): every decision names them,
    so that "the German contracts never go to Manila" is said where it is asked."""
    engaged_here = {e.team_id for e in candidates.active_engagements(session, queue_id=queue.id)}
    providers: dict[Any, set[Any]] = {}
    with narrowed_to(session, queue.tenant_id):  # the client's engagements
        for engagement in candidates.active_engagements(session):
            if engagement.team_id not in engaged_here:
                providers.setdefault(engagement.provider_id, set()).add(engagement.team_id)
    allow, deny = queue.residency_allow, queue.residency_deny
    excluded = []
    for provider_id, team_ids in sorted(providers.items()):
        with acting_for_tenant(session, provider_id):  # the provider's rows, shown as a line a team
            teams = session.scalars(select(Team).where(Team.id.in_(team_ids)).order_by(Team.id)).all()
        for team in teams:
            if not residency.allows(allow, deny, team.country):
                line = {"team_id": str(team.id), "country": team.country, "engaged": False}
                excluded.append(line | {"eligible": False, "failed": "residency"})
    return excluded


def _not_yet(
    rules: policy.Policy,
    step: int,
    rank: EngagementRank,
    profile: eligibility.Profile,
    requirements: eligibility.Requirements,
) -> tuple[str | None, str | None]:
    """Why the step in force does not let the candidate in yet ("engagement": its rank;
    "skill": the step's level), and the step that will, if one does."""
    first = policy.admitted_from(rules, rank, profile, requirements)
    if first is not None and first <= step:
        return None, None
    return policy.not_let_in(rules, step, rank), rules.steps[first].name if first is not None else None


def _most_common(reasons: list[str | None]) -> str | None:
    named = [reason for reason in reasons if reason]
    return max(set(named), key=named.count) if named else None


def purge_old_decisions(session: Session) -> int:
    """Housekeeping (beat): decisions older than the retention go."""
    result = session.execute(delete(RoutingDecision).where(RoutingDecision.at < utcnow() - TRACE_RETENTION))
    return affected_rows(result)
