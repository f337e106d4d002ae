"""Fairness between the client tenants that share a team: each gets agents' time in
proportion to its engagement's share, also under backlog.

Stride scheduling, the weighted cousin of deficit round robin: the tenant served least,
relative to its share, over the last ``WINDOW`` (or the team's last ``SAMPLE``
assignments, if fewer) goes first (assignments of the team per tenant divided by the
share). Two clients with shares 2:1 and a backlog each see their work taken 2:1,
whatever the order it arrived in; a tenant with nothing queued is skipped, and its turn
is not saved up beyond the window (so a tenant back from a quiet night cannot take a
team over).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

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
    return sorted(
        shares, key=lambda tenant: (served.get(tenant, 0) / shares[tenant], -shares[tenant], tenant)
    )
