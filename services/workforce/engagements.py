"""Engagements: which provider team serves which client queue, set by the operator.

They are also where a provider principal's grants come from (``tenants.grants``): the
queues of the provider's active engagements (of the agent's own team, for an agent who
leads nothing, with the agent's id), read for every request, so a revoked engagement takes the queue's tasks
out of sight at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from services.core.time import utcnow
from services.work import residency
from services.work.models import Queue
from services.workforce.models import Agent, Engagement, Team
from services.workforce.schemas import EngagementCreate
from tenants import grants
from tenants.principal import OrgKind, Permission, Principal, Role
from tenants.scoping import fetch


def _require_operator(principal: Principal) -> None:
    principal.require(Permission.ENGAGEMENTS_MANAGE)
    if principal.org_kind is not OrgKind.OPERATOR:
        raise Forbidden("engagements are set by the operator")


def create_engagement(session: Session, principal: Principal, data: EngagementCreate) -> Engagement:
    """A team for a client's queue; refused when the queue's residency rule forbids the
    team's country, since no task of the queue could ever be routed there."""
    _require_operator(principal)
    queue = fetch(session, Queue, data.queue_id)
    if queue is None:
        raise NotFound("no such queue", errors=[FieldError("/queue_id", "no such queue")])
    team = fetch(session, Team, data.team_id)
    if team is None:
        raise NotFound("no such team", errors=[FieldError("/team_id", "no such team")])
    if not residency.allows(queue.residency_allow, queue.residency_deny, team.country):
        raise ValidationFailed(
            f"the queue's data may not be handled in {team.country}",
            errors=[FieldError("/team_id", f"the queue's residency rule excludes {team.country}")],
        )
    active = session.scalar(
        select(Engagement.id).where(
            Engagement.queue_id == queue.id, Engagement.team_id == team.id, Engagement.revoked_at.is_(None)
        )
    )
    if active is not None:
        raise Conflict("the team is engaged on the queue already", extra={"existing_id": str(active)})
    engagement = Engagement(
        tenant_id=queue.tenant_id,
        queue_id=queue.id,
        team_id=team.id,
        provider_id=team.tenant_id,
        rank=data.rank,
        share=data.share,
        created_by=principal.subject_id,
    )
    session.add(engagement)
    session.flush()
    return engagement


def revoke_engagement(session: Session, principal: Principal, engagement_id: uuid.UUID) -> Engagement:
    engagement = get_engagement(session, principal, engagement_id)  # 404 before 403
    _require_operator(principal)
    if engagement.revoked_at is None:
        engagement.revoked_at = utcnow()
        session.flush()
    return engagement


def get_engagement(session: Session, principal: Principal, engagement_id: uuid.UUID) -> Engagement:
    principal.require(Permission.ORG_READ)
    engagement = fetch(session, Engagement, engagement_id)
    if engagement is None:
        raise NotFound("no such engagement")
    return engagement


def list_engagements(
    session: Session, principal: Principal, page: PageRequest, queue_id: uuid.UUID | None = None
) -> tuple[Sequence[Engagement], str | None]:
    principal.require(Permission.ORG_READ)
    query = select(Engagement).where(Engagement.revoked_at.is_(None))
    if queue_id is not None:
        query = query.where(Engagement.queue_id == queue_id)
    return fetch_page(session, query, Engagement.id, page)


@grants.register
def engaged_queues(session: Session, principal: Principal) -> grants.Grants:
    """The (client tenant, queue) pairs of the provider's active engagements, and the
    (client tenant, queue, team) of its revoked ones, where the team keeps reading and
    finishing the tasks it holds; an agent's are those of their own team, and carry the
    agent's id (of those queues' tasks, an agent reaches their own and the waiting ones).
    A person who is an agent (a lead too) carries the name their provider shows clients.
    One statement; runs while identity tables are readable."""
    query = select(
        Engagement.tenant_id, Engagement.queue_id, Engagement.team_id, Engagement.revoked_at
    ).where(Engagement.provider_id == principal.org_id)
    leads = principal.roles & {Role.PROVIDER_ADMIN, Role.TEAM_LEAD}
    is_agent = principal.subject_kind == "user" and not leads
    if is_agent:
        query = query.add_columns(Agent.id.label("agent_id"), Agent.public_name).join(
            Agent, and_(Agent.team_id == Engagement.team_id, Agent.user_id == principal.subject_id)
        )
    elif principal.subject_kind == "user":  # a lead who also works tasks writes as the agent they are
        shown = select(Agent.public_name).where(Agent.user_id == principal.subject_id).scalar_subquery()
        query = query.add_columns(shown.label("public_name"))
    rows = session.execute(query).all()
    engaged = frozenset((row.tenant_id, row.queue_id) for row in rows if row.revoked_at is None)
    revoked = frozenset(
        (row.tenant_id, row.queue_id, row.team_id)
        for row in rows
        if row.revoked_at is not None and (row.tenant_id, row.queue_id) not in engaged
    )
    if not rows or principal.subject_kind != "user":
        return grants.Grants(engaged, revoked)
    agent_id = rows[0].agent_id if is_agent else None
    return grants.Grants(engaged, revoked, agent_id, rows[0].public_name or "")
