"""The soft score that orders eligible agents for a task (push offers; the explanation),
with the queue's weights (``RoutingPolicy.weights``). Every term lies between 0 and 1 before
its weight, so a weight says plainly how much its criterion counts:

- ``rank``: the engagement's rank (primary 1, secondary 0.5, overflow 0);
- ``idle``: time since the agent's last assignment, up to ``IDLE_CAP`` (least recently
  assigned first: fairness between agents);
- ``load``: the room left under the agent's capacity for the kind (least loaded first);
- ``cost``: the team's hourly cost against the costliest candidate of the same currency
  (cheaper first; costs in different currencies are not compared: a candidate alone in
  its currency counts 0.5);
- ``sticky``: the agent already worked this task (reassigned, released, reopened), or
  another task of the same case (``case_ref``: the claim or dossier several tasks share).

Pull needs no score of agents (the agent is the one asking); the order of tasks there is
the static key ``rank_at`` (earliest deadline first: the priority's, the SLA's, the
at-risk stamp's; ``work.ranking``) and tenant shares,
after the tasks of the agent's own cases where ``sticky`` weighs (``claim._take_sticky``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.work.schemas import ScoringWeights
from services.workforce.models import EngagementRank

IDLE_CAP = timedelta(hours=2)
_RANK_TERM = {EngagementRank.PRIMARY: 1.0, EngagementRank.SECONDARY: 0.5, EngagementRank.OVERFLOW: 0.0}


@dataclass(frozen=True)
class Facts:
    rank: EngagementRank
    last_assigned_at: datetime | None
    held: int
    capacity: int
    hourly_cost: tuple[int, str]  # minor units, currency
    worked_before: bool


def scores(weights: ScoringWeights, candidates: list[Facts], now: datetime) -> list[float]:
    """The score of each candidate (higher first), rounded for the trace."""
    costliest: dict[str, int] = {}
    paid_in: dict[str, int] = {}
    for facts in candidates:
        amount, currency = facts.hourly_cost
        costliest[currency] = max(costliest.get(currency, 0), amount)
        paid_in[currency] = paid_in.get(currency, 0) + 1
    found = []
    for facts in candidates:
        idle = IDLE_CAP if facts.last_assigned_at is None else min(now - facts.last_assigned_at, IDLE_CAP)
        amount, currency = facts.hourly_cost
        compared = paid_in[currency] > 1 and costliest[currency] > 0
        cheap = 1 - amount / costliest[currency] if compared else 0.5
        total = (
            weights.rank * _RANK_TERM[facts.rank]
            + weights.idle * max(idle, timedelta(0)) / IDLE_CAP
            + weights.load * (1 - min(facts.held, facts.capacity) / max(facts.capacity, 1))
            + weights.cost * cheap
            + weights.sticky * facts.worked_before
        )
        found.append(round(total, 4))
    return found
