"""A queue's routing policy: relaxation steps in time, and the weights of the soft score.

A policy is an ordered list of steps. The first is in force as soon as a task arrives; a
later one once the task has waited its ``after_seconds`` (from arrival), or once the task
is at risk (``slack_below_seconds``: its SLA time left fell under the threshold, which the
relaxation sweep stamps on the task as ``overflow_since``; an SLA escalation may stamp it
too). The step in force is the last one set off. Each step names the engagement ranks it
lets in and the level it asks of the queue's skills, never below the queue's own minimum:
so only soft requirements relax. Residency, language, calendar, presence and capacity are
hard (``eligibility``) at every step. Steps only widen (``RoutingPolicy`` refuses one that
narrows), so a candidate let in by a step is let in by every later one: what routing needs
to know of a candidate is the first step that admits it (``admitted_from``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from services.routing.eligibility import Profile, Requirements, skilled
from services.work.schemas import RoutingPolicy, ScoringWeights
from services.workforce.models import EngagementRank

log = structlog.get_logger()


@dataclass(frozen=True)
class Step:
    name: str
    after: timedelta | None
    slack_below: timedelta | None
    ranks: frozenset[EngagementRank]
    min_skill_level: int


@dataclass(frozen=True)
class Policy:
    steps: tuple[Step, ...]
    weights: ScoringWeights

    @property
    def slack_below(self) -> timedelta | None:
        """The SLA time left under which a task is at risk, if a step is set off by it."""
        return next((step.slack_below for step in self.steps if step.slack_below is not None), None)


def policy_of(stored: dict[str, Any] | None) -> Policy:
    """A queue's stored ``routing_policy`` (validated when it was set; {} is the defaults),
    parsed once per distinct policy: every claim reads its queues' policies."""
    return _parsed(orjson.dumps(stored or {}, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=1024)
def _parsed(stored: bytes) -> Policy:
    try:
        parsed = RoutingPolicy.model_validate_json(stored)
    except ValidationError as error:
        # Stored under an older rule: the platform's defaults, said loudly, rather than no
        # routing at all for every queue the sweep or the claim reads with it.
        log.warning("routing.policy_invalid", policy=stored.decode(), error=str(error))
        parsed = RoutingPolicy()
    steps = tuple(
        Step(
            name=step.name,
            after=timedelta(seconds=step.after_seconds) if step.after_seconds is not None else None,
            slack_below=timedelta(seconds=step.slack_below_seconds)
            if step.slack_below_seconds is not None
            else None,
            ranks=frozenset(EngagementRank(rank) for rank in step.ranks),
            min_skill_level=step.min_skill_level,
        )
        for step in parsed.steps
    )
    return Policy(steps, parsed.weights)


def in_force(policy: Policy, arrived_at: datetime, at_risk_since: datetime | None, now: datetime) -> int:
    """The index of the step in force for a task that arrived at ``arrived_at``."""
    found = 0
    for index, step in enumerate(policy.steps[1:], start=1):
        waited = step.after is not None and now - arrived_at >= step.after
        at_risk = step.slack_below is not None and at_risk_since is not None
        if waited or at_risk:
            found = index
    return found


def asked_of(requirements: Requirements, step: Step) -> Requirements:
    """The queue's requirements as the step asks them: its skills at the step's level."""
    if not requirements.skills:
        return requirements
    skills = tuple((name, max(level, step.min_skill_level)) for name, level in requirements.skills)
    return replace(requirements, skills=skills)


def admitted_from(
    policy: Policy, rank: EngagementRank, profile: Profile, requirements: Requirements
) -> int | None:
    """The first step that lets in a candidate of this engagement rank and profile (its
    skills); None if none does: the hard constraints are checked apart."""
    for index, step in enumerate(policy.steps):
        if rank in step.ranks and skilled(profile, asked_of(requirements, step).skills):
            return index
    return None


def not_let_in(policy: Policy, index: int, rank: EngagementRank) -> str:
    """Why step ``index`` does not let a candidate in: its engagement's rank, or its skills."""
    return "skill" if rank in policy.steps[index].ranks else "engagement"


def earliest_trigger(policy: Policy, index: int) -> tuple[timedelta | None, bool]:
    """What sets off step ``index`` or a later one: the shortest wait, and whether being at
    risk does (for a statement that finds the tasks a candidate admitted from there may take)."""
    later = policy.steps[index:]
    waits = [step.after for step in later if step.after is not None]
    return (min(waits) if waits else None), any(step.slack_below is not None for step in later)
