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
tasks of every push queue in turns (``Turns``): the tenant whose work was taken least
lately, relative to its share, by the teams of the push queues (offers still waiting for
an answer count), offers its next task; each task offered counts, so a sweep that fills a
shared team's last places fills them by the shares too, instead of by whichever queue it
read first. One count serves every team of the sweep: a tenant served by several teams
is weighed by its work on all of them, with its largest share.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.routing.models import Offer, OfferStatus, TaskAssignment

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


def served_lately(session: Session, team_ids: set[uuid.UUID], now: datetime) -> dict[uuid.UUID, int]:
    """Per tenant, the work the teams took lately: their last ``SAMPLE`` assignments of the
    window, as for pull (a sample of the teams' work, not of each tenant's, so it keeps the
    proportions of a busy hour), and the offers waiting for an answer."""
    recent = (
        select(TaskAssignment.tenant_id)
        .where(TaskAssignment.team_id.in_(list(team_ids)), TaskAssignment.assigned_at >= now - WINDOW)
        .order_by(TaskAssignment.assigned_at.desc())
        .limit(SAMPLE)
        .subquery()
    )
    counted = select(recent.c.tenant_id, func.count()).group_by(recent.c.tenant_id)
    served: Counter[uuid.UUID] = Counter({row[0]: row[1] for row in session.execute(counted)})
    pending = (
        select(Offer.tenant_id, func.count())
        .where(Offer.team_id.in_(list(team_ids)), Offer.status == OfferStatus.PENDING)
        .group_by(Offer.tenant_id)
    )
    served.update({row[0]: row[1] for row in session.execute(pending)})
    return dict(served)


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
