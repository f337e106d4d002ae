"""Fairness between the client tenants that share a team: each gets agents' time in
proportion to its engagement's share, also under backlog.

Stride scheduling, the weighted cousin of deficit round robin: the tenant served least,
relative to its share, over the last ``WINDOW`` (or the team's last ``SAMPLE``
assignments, if fewer) goes first (assignments of the team per tenant divided by the
share). Two clients with shares 2:1 and a backlog each see their work taken 2:1,
whatever the order it arrived in; a tenant with nothing queued is skipped, and its turn
is not saved up beyond the window (so a tenant back from a quiet night cannot take a
team over).

Pull orders the tenants once a claim (``tenant_order``). A push sweep offers the waiting
tasks of every push queue in turns (``Turns``): the tenant whose work was taken least,
relative to its share, on the teams of its push queues, offers its next task; each task
offered counts, so a sweep that fills a shared team's last places fills them by the
shares too, instead of by whichever queue it read first.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.routing.models import TaskAssignment

WINDOW = timedelta(hours=1)
# At most the team's last SAMPLE assignments of the window are counted: a busy team's claim
# reads a bounded slice of the index (team_id, assigned_at), not an hour of its work.
SAMPLE = 200


def tenant_order(
    session: Session, team_id: uuid.UUID, shares: dict[uuid.UUID, int], now: datetime
) -> list[uuid.UUID]:
    if len(shares) == 1:
        return list(shares)
    recent = (
        select(TaskAssignment.tenant_id)
        .where(TaskAssignment.team_id == team_id, TaskAssignment.assigned_at >= now - WINDOW)
        .order_by(TaskAssignment.assigned_at.desc())
        .limit(SAMPLE)
        .subquery()
    )
    counted = select(recent.c.tenant_id, func.count()).group_by(recent.c.tenant_id)
    served: dict[uuid.UUID, int] = {row[0]: row[1] for row in session.execute(counted)}
    return sorted(shares, key=lambda tenant: _stride(served.get(tenant, 0), shares[tenant], tenant))


def _stride(served: float, share: int, tenant: uuid.UUID) -> tuple[float, int, uuid.UUID]:
    """Served least for its share first; then the larger share; then a stable order."""
    return served / share, -share, tenant


def served_lately(
    session: Session, teams: dict[uuid.UUID, set[uuid.UUID]], now: datetime
) -> dict[uuid.UUID, int]:
    """Each tenant's assignments over the window on the given teams (a tenant's own)."""
    served = {}
    for tenant, team_ids in teams.items():
        recent = (
            select(TaskAssignment.id)
            .where(
                TaskAssignment.tenant_id == tenant,
                TaskAssignment.team_id.in_(list(team_ids)),
                TaskAssignment.assigned_at >= now - WINDOW,
            )
            .limit(SAMPLE)
            .subquery()
        )
        served[tenant] = session.scalar(select(func.count()).select_from(recent)) or 0
    return served


class Turns:
    """Whose turn it is to offer a task in a push sweep."""

    def __init__(self, served: dict[uuid.UUID, int], shares: dict[uuid.UUID, int]) -> None:
        self._served: dict[uuid.UUID, float] = {tenant: float(count) for tenant, count in served.items()}
        self._shares = shares

    def next_of(self, backlogs: dict[uuid.UUID, list[Any]]) -> uuid.UUID | None:
        """The tenant to serve next among those with work left in ``backlogs``."""
        waiting = [tenant for tenant, backlog in backlogs.items() if backlog]
        if not waiting:
            return None
        return min(waiting, key=lambda t: _stride(self._served.get(t, 0.0), self._shares.get(t, 1), t))

    def served(self, tenant: uuid.UUID) -> None:
        self._served[tenant] = self._served.get(tenant, 0.0) + 1
