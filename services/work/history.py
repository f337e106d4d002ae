"""Who acted, and the append-only history of each task."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from services.core.ids import new_id
from services.core.time import utcnow
from services.work.lifecycle import Action, Side
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
    org_id: uuid.UUID | None = None
    public_name: str = ""  # the name clients read, if the provider shows one

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        side = _SIDE_BY_KIND[principal.org_kind]
        subject = principal.subject_id
        return cls(
            principal.subject_kind,
            subject,
            principal.display_name,
            side,
            principal.org_id,
            principal.public_name,
        )

    @property
    def provider_id(self) -> uuid.UUID | None:
        """The provider organisation acting, if a provider's person or integration acts."""
        return self.org_id if self.side is Side.PROVIDER else None

    @classmethod
    def system(cls, name: str = "platform") -> Actor:
        return cls("system", None, name, Side.SYSTEM)


class Observer(Protocol):
    """Another context following task changes in their own transaction (the SLA clocks).
    Work never imports its observers: they subscribe with ``observe``."""

    def recorded(self, session: Session, task: Task, actor: Actor, event: TaskEvent) -> None: ...

    def creating_many(self, session: Session, tasks: list[dict[str, Any]]) -> bool:
        """Bulk intake, before it inserts ``tasks`` (column values, all of one queue): True
        if the observer changed a value they start with (the SLA moves ``rank_at``)."""

    def created_many(self, session: Session, tasks: list[dict[str, Any]]) -> None:
        """Bulk intake: the column values of tasks inserted as rows (all of one queue)."""

    def applied(self, session: Session, task: Task, actor: Actor, action: Action) -> None:
        """A transition is complete (its entry and event written): what follows from it
        (routing ends or moves the assignment) may take the next one."""


_observers: list[Observer] = []


def observe(observer: Observer) -> Observer:
    if observer not in _observers:
        _observers.append(observer)
    return observer


def record(session: Session, task: Task, actor: Actor, kind: str, **details: Any) -> TaskEvent:
    """Append an entry to ``task``'s history (``details`` as in ``entry``)."""
    event = TaskEvent(**entry(task.tenant_id, task.id, actor, kind, **details))
    session.add(event)
    for observer in _observers:
        observer.recorded(session, task, actor, event)
    return event


def applied(session: Session, task: Task, actor: Actor, action: Action) -> None:
    for observer in _observers:
        observer.applied(session, task, actor, action)


def creating_many(session: Session, tasks: list[dict[str, Any]]) -> bool:
    """Bulk intake is about to insert ``tasks``: True if an observer changed their values."""
    return any([observer.creating_many(session, tasks) for observer in _observers])  # each one runs


def recorded_many(session: Session, tasks: list[dict[str, Any]]) -> None:
    """Bulk intake inserted ``tasks`` (and their history entries) as rows."""
    for observer in _observers:
        observer.created_many(session, tasks)


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
        "actor_public_name": actor.public_name,
        "actor_side": actor.side.value,
        "action": action,
        "from_status": from_status,
        "to_status": to_status,
        "changes": changes or {},
        "internal": internal,
        "provider_id": actor.provider_id,
    }
