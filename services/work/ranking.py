"""A task's place in its queue: the earliest of its deadlines, that of its priority and
that of its SLA.

Agents take queued tasks in ``rank_at`` order, earliest deadline first. A task's priority
gives it a deadline of its own: urgent on arrival, high three hours after it, normal four,
low five; its SLA clocks give it theirs (the earliest running clock's due time, set
whenever the clocks move: ``sla.clocks``), and a task found at risk later (an
escalation, or its queue's relaxation step, stamps it) is due when it was found so. The
rank is the earliest of them, less four hours (``DUE_LEAD``), so a task without an SLA
ranks by its arrival moved by its priority (urgent four hours earlier, high one, low one
later): priority wins over small differences in waiting time, and waiting always wins in
the end. That is the ageing that keeps low-priority work from starving: under any flow of
high-priority work, a low task is taken no later than the high tasks that arrived up to
two hours after it, and than any task that arrived up to five hours after it, due at once
(``starvation_bound``). Among tasks whose SLA is due sooner than their priority's
deadline, the least slack goes first: a normal task due in ten minutes before one due in
an hour that arrived earlier, and before high work without an SLA.

A static key, unlike a score computed at claim time, is served by an index
(``ix_tasks_queued_rank``): the next task is the first entry, not a sort of the backlog.
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
# A task due now ranks as urgent work arriving now: priority's deadlines are arrival plus
# DUE_LEAD - PRIORITY_LEAD.
DUE_LEAD = PRIORITY_LEAD[Priority.URGENT]


def rank_at(
    created_at: datetime,
    priority: Priority | str,
    at_risk_since: datetime | None = None,
    due_at: datetime | None = None,
) -> datetime:
    ranks = [created_at - PRIORITY_LEAD[Priority(priority)]]
    if at_risk_since is not None:
        ranks.append(at_risk_rank(at_risk_since))
    if due_at is not None:  # never before arrival: no task ranks earlier than arrival - DUE_LEAD
        ranks.append(due_at - DUE_LEAD)
    return min(ranks)


def at_risk_rank(since: datetime) -> datetime:
    """Where a task found at risk at ``since`` ranks, if it does not rank earlier already."""
    return since - DUE_LEAD


def starvation_bound(low: Priority, high: Priority) -> timedelta:
    """How much later than a ``low`` task a ``high`` one may arrive and still go first (a
    task due at once goes first as an urgent one would)."""
    return PRIORITY_LEAD[high] - PRIORITY_LEAD[low]
