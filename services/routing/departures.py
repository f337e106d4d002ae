"""An agent leaving their team (someone leaves the company, moves to another provider):
their record goes, and nothing they were given stays stuck with them.

Tasks given to them and not started go back to their queues, where they keep their place
(``rank_at``), and the offers waiting for their answer are rescinded; the next claim or
sweep routes them to someone else. A task they are working (in progress, or waiting for
the client's answer) is refused, not dropped: the lead hands it to another agent first
(``POST /v1/tasks/{id}/assignment``), who goes on with the conversation where it is. The
history keeps the names they worked under; the user account stays (identity's to close),
and may be made an agent again.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Conflict
from services.core.time import utcnow
from services.routing import assignments, offers
from services.routing.models import AssignmentEnd, Offer, OfferStatus
from services.work.models import HELD_STATUSES, Task, TaskStatus
from services.workforce.agents import get_agent
from services.workforce.teams import require_manager
from tenants.principal import Principal
from tenants.scoping import acting_for_tenant


def remove_agent(session: Session, principal: Principal, agent_id: uuid.UUID) -> int:
    """Remove the agent from their team: how many tasks went back to their queues."""
    # Locked first, as claims, accepts and hand-overs lock it before they give the agent a
    # task: none of them gives one to an agent being removed, and none waits in a cycle.
    agent = get_agent(session, principal, agent_id, lock=True)  # 404 for another provider's
    require_manager(principal)
    held = session.scalars(
        select(Task).where(Task.assignee_id == agent.id, Task.status.in_(HELD_STATUSES)).with_for_update()
    ).all()
    worked = [task for task in held if task.status is not TaskStatus.ASSIGNED]
    if worked:
        raise Conflict(
            f"the agent is working {len(worked)} task(s): hand them to another agent first",
            extra={"tasks": [str(task.id) for task in worked]},
        )
    now = utcnow()
    pending = session.scalars(
        select(Offer).where(Offer.agent_id == agent.id, Offer.status == OfferStatus.PENDING).with_for_update()
    )
    for offer in pending.all():
        offers.end(session, offer, OfferStatus.RESCINDED, "agent removed", now)
    for task in held:  # routing gives them back, whoever removes the agent (a lead, the operator),
        with acting_for_tenant(session, task.tenant_id):  # a queue the team no longer serves too
            assignments.give_back(session, assignments.ROUTING, task, AssignmentEnd.RELEASED)
    session.delete(agent)
    session.flush()
    return len(held)
