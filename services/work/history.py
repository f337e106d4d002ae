"""Who acted, and the append-only history of each task."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from services.core.ids import new_id
from services.core.time import utcnow
from services.work.lifecycle import Side
from services.work.models import Task, TaskEvent
from tenants.principal import OrgKind, Principal

_SIDE_BY_KIND = {
    OrgKind.CLIENT: Side.CLIENT,
    OrgKind.PROVIDER: Side.PROVIDER,
    OrgKind.OPERATOR: Side.OPERATOR,
}


@dataclass(frozen=True)
class Actor:
    kind: str  # user, api_client, system
    id: uuid.UUID | None
    name: str
    side: Side

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        side = _SIDE_BY_KIND[principal.org_kind]
        return cls(principal.subject_kind, principal.subject_id, principal.display_name, side)

    @classmethod
    def system(cls, name: str = "platform") -> Actor:
        return cls("system", None, name, Side.SYSTEM)


def record(session: Session, task: Task, actor: Actor, kind: str, **details: Any) -> TaskEvent:
    """Append an entry to ``task``'s history (``details`` as in ``entry``)."""
    event = TaskEvent(**entry(task.tenant_id, task.id, actor, kind, **details))
    session.add(event)
    return event


def entry(
    tenant_id: uuid.UUID,
    task_id: uuid.UUID,
    actor: Actor,
    kind: str,
    *,
    action: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    changes: dict[str, Any] | None = None,
    internal: bool = False,
) -> dict[str, Any]:
    """The column values of one history entry (bulk intake inserts them as rows)."""
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "task_id": task_id,
        "at": utcnow(),
        "kind": kind,
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "action": action,
        "from_status": from_status,
        "to_status": to_status,
        "changes": changes or {},
        "internal": internal,
    }
