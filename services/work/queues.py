"""Queues: where a client's work of one kind goes, with what it needs to be handled."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import FieldError, Forbidden, NotFound, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from services.work import kinds, language, residency
from services.work.models import Queue
from services.work.schemas import QueueCreate, QueueUpdate
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import fetch


def create_queue(session: Session, principal: Principal, data: QueueCreate) -> Queue:
    principal.require(Permission.QUEUES_MANAGE)
    if principal.org_kind is not OrgKind.CLIENT:
        raise Forbidden("queues belong to client organisations")
    if kinds.resolve(session, principal.org_id, data.task_kind) is None:
        raise ValidationFailed(errors=[FieldError("/task_kind", f"no task kind {data.task_kind}")])
    queue = Queue(tenant_id=principal.org_id, name=data.name, task_kind=data.task_kind)
    _apply_queue_fields(queue, data.model_dump(exclude={"name", "task_kind"}))
    session.add(queue)
    session.flush()
    return queue


def update_queue(session: Session, principal: Principal, queue_id: uuid.UUID, data: QueueUpdate) -> Queue:
    principal.require(Permission.QUEUES_MANAGE)
    queue = get_queue(session, queue_id)
    if principal.org_kind is OrgKind.PROVIDER:  # it sees the queues it serves, never shapes them
        raise Forbidden("queues belong to client organisations")
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes:
        if changes["name"] is None:
            raise ValidationFailed(errors=[FieldError("/name", "may not be null")])
        queue.name = changes.pop("name")
    _apply_queue_fields(queue, {k: v for k, v in changes.items() if v is not None})
    session.flush()
    return queue


def _apply_queue_fields(queue: Queue, fields: dict[str, Any]) -> None:
    errors: list[FieldError] = []
    if "languages" in fields:
        tags = []
        for index, tag in enumerate(fields["languages"]):
            normalized = language.normalize(tag)
            if normalized is None:
                errors.append(FieldError(f"/languages/{index}", f"{tag} is not a BCP 47 language tag"))
            tags.append(normalized or tag)
        queue.languages = sorted(set(tags))
    if "skills" in fields:
        queue.skills = [{"name": s["name"], "min_level": s["min_level"]} for s in fields["skills"]]
    if "residency" in fields:
        rule = fields["residency"]
        for side in ("allow", "deny"):
            codes = [code.upper() for code in rule.get(side, [])]
            errors += [
                FieldError(
                    f"/residency/{side}/{codes.index(code)}", f"{code} is not a country code or region"
                )
                for code in residency.unknown_codes(codes)
            ]
            setattr(queue, f"residency_{side}", codes)
    if "routing" in fields:
        queue.routing_policy = dict(fields["routing"])
    for name in ("default_priority", "out_of_hours", "mode", "accepted_attachment_types"):
        if name in fields:
            setattr(queue, name, fields[name])
    if errors:
        raise ValidationFailed(errors=errors)


def get_queue(session: Session, queue_id: uuid.UUID) -> Queue:
    queue = fetch(session, Queue, queue_id)
    if queue is None:
        raise NotFound("no such queue")
    return queue


def queue_for_intake(session: Session, principal: Principal, queue_id: uuid.UUID) -> Queue:
    """The queue work is submitted to. Providers work tasks, they never submit them: a queue
    they serve is, for intake, a queue that does not exist."""
    if principal.org_kind is OrgKind.PROVIDER:
        raise NotFound("no such queue", errors=[FieldError("/queue_id", "no such queue")])
    return get_queue(session, queue_id)


def list_queues(session: Session, page: PageRequest) -> tuple[Sequence[Queue], str | None]:
    return fetch_page(session, select(Queue), Queue.id, page)
