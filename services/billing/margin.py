"""What the hours billed to a client cost the provider teams that worked them (the
operator's margin; never shown to a client or a provider).

Each handle minute is costed at the hourly cost of the team whose agent held the task
(its latest assignment); minutes recorded without a task (an integration's volume) at
the queue's primary engaged team. Costs stay in each team's currency: without an
exchange rate, a Polish team's złoty are not turned into euros.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.metering.models import UsageEvent
from services.metering.service import HANDLE_MINUTES
from services.routing.assignments import TaskAssignment
from services.workforce.models import Engagement, EngagementRank, Team
from tenants.scoping import acting_for_tenant, narrowed_to

RANK_ORDER = {EngagementRank.PRIMARY: 0, EngagementRank.SECONDARY: 1, EngagementRank.OVERFLOW: 2}


def provider_cost(session: Session, tenant_id: uuid.UUID, since: datetime, until: datetime) -> dict[str, int]:
    """Currency -> cost in minor units of the period's handle minutes (empty: none known)."""
    with narrowed_to(session, tenant_id):
        minutes = session.execute(
            select(UsageEvent.task_id, UsageEvent.queue_id, func.sum(UsageEvent.quantity))
            .where(
                UsageEvent.metric == HANDLE_MINUTES,
                UsageEvent.occurred_at >= since,
                UsageEvent.occurred_at < until,
            )
            .group_by(UsageEvent.task_id, UsageEvent.queue_id)
        ).all()
        task_ids = [task for task, _queue, _m in minutes if task is not None]
        assigned = session.execute(
            select(TaskAssignment.task_id, TaskAssignment.team_id, TaskAssignment.provider_id)
            .where(TaskAssignment.task_id.in_(task_ids))
            .order_by(TaskAssignment.assigned_at)
        ).all()
        engaged = session.execute(
            select(Engagement.queue_id, Engagement.team_id, Engagement.rank, Engagement.provider_id).where(
                Engagement.revoked_at.is_(None)
            )
        ).all()
    by_task = {row.task_id: row.team_id for row in assigned}  # the latest assignment wins
    by_queue: dict[uuid.UUID, uuid.UUID] = {}
    for row in sorted(engaged, key=lambda row: RANK_ORDER[row.rank], reverse=True):
        by_queue[row.queue_id] = row.team_id  # the best rank is written last
    provider_of = {row.team_id: row.provider_id for row in [*assigned, *engaged]}
    wanted = set(by_task.values()) | set(by_queue.values())
    teams: dict[uuid.UUID, Team] = {}
    # A team is its provider's: an account manager's scope does not read it; the platform's
    # bookkeeping does, for its cost (shown to the operator only).
    for provider_id in {provider_of[team_id] for team_id in wanted}:
        with acting_for_tenant(session, provider_id):
            teams |= {team.id: team for team in session.scalars(select(Team).where(Team.id.in_(wanted)))}
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for worked_task, worked_queue, total in minutes:
        chosen = (by_task.get(worked_task) if worked_task else None) or (
            by_queue.get(worked_queue) if worked_queue else None
        )
        team = teams.get(chosen) if chosen else None
        if team is not None and total:
            cost[team.hourly_cost_currency] += Decimal(total) * team.hourly_cost_amount / 60
    return {
        currency: int(amount.to_integral_value(rounding=ROUND_HALF_EVEN)) for currency, amount in cost.items()
    }
