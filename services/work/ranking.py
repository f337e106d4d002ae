"""A task's place in its queue: its arrival, moved earlier by its priority.

Agents take queued tasks in ``rank_at`` order. An urgent task ranks as if it had come four
hours before it did, a high one an hour before, a low one an hour after; so priority wins
over small differences in waiting time, and waiting always wins in the end. That is the
ageing that keeps low-priority work from starving: under any flow of high-priority work, a
low task is taken no later than the high tasks that arrived up to two hours after it
(``starvation_bound``). A task at risk of breaching its SLA (an escalation, or its queue's
relaxation step, stamps it) ranks as an urgent task arriving then (``at_risk_rank``), so the
least slack goes first without a score over the backlog. A static key, unlike a score
computed at claim time, is served by
an index (``ix_tasks_queued_rank``): the next task is the first entry, not a sort of the
backlog.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.work.models import Priority

PRIORITY_LEAD = {
    Priority.URGENT: timedelta(hours=4),
    Priority.HIGH: timedelta(hours=1),
    Priority.NORMAL: timedelta(0),
    Priority.LOW: timedelta(hours=-1),
}


def rank_at(
    created_at: datetime, priority: Priority | str, at_risk_since: datetime | None = None
) -> datetime:
    ranked = created_at - PRIORITY_LEAD[Priority(priority)]
    return ranked if at_risk_since is None else min(ranked, at_risk_rank(at_risk_since))


def at_risk_rank(since: datetime) -> datetime:
    """Where a task found at risk at ``since`` ranks, if it does not rank earlier already."""
    return since - PRIORITY_LEAD[Priority.URGENT]


def starvation_bound(low: Priority, high: Priority) -> timedelta:
    """How much later than a ``low`` task a ``high`` one may arrive and still go first."""
    return PRIORITY_LEAD[high] - PRIORITY_LEAD[low]
