"""Business rules of work intake: queues and tasks, their changes, history and comments.

Every change to a task appends to its history and writes an outbox event in the
same transaction; the caller's unit of work commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from services.core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from services.core.ids import new_id
from services.core.pagination import PageRequest, fetch_page
from services.core.time import utcnow
from services.notify.outbox import emit
from services.work import detection, documents, history, kinds, language, lifecycle, ranking
from services.work.bulk_insert import insert_created
from services.work.history import Actor, record, recorded_many
from services.work.known_queues import KNOWN_QUEUES, KnownQueue
from services.work.lifecycle import Action, Side
from services.work.models import (
    CommentVisibility,
    LanguageSource,
    Priority,
    Queue,
    Task,
    TaskComment,
    TaskEvent,
    TaskStatus,
)
from services.work.schemas import CommentOut, TaskCreate, TaskUpdate
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import ScopedRead, fetch, narrowed_to, sees

# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TaskFilters:
    queue_id: uuid.UUID | None = None
    status: TaskStatus | None = None
    priority: Priority | None = None
    language: str | None = None
    external_ref: str | None = None
    case_ref: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class IntakeQueue(Protocol):
    """What taking a task in reads of its queue (a ``Queue``, or a row of these columns)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def tenant_id(self) -> uuid.UUID: ...
    @property
    def task_kind(self) -> str: ...
    @property
    def default_priority(self) -> Priority | None: ...  # None: the task names its own


# Every task submitted reads its queue: a row of four columns, not an entity (see ScopedRead).
_INTAKE_QUEUE = ScopedRead(
    select(
        Queue.__table__.c.id,
        Queue.__table__.c.tenant_id,
        Queue.__table__.c.task_kind,
        Queue.__table__.c.default_priority,
    ).where(Queue.__table__.c.id == bindparam("queue_id"))
)


def create_task(session: Session, principal: Principal, data: TaskCreate) -> Task:
    principal.require(Permission.TASKS_WRITE)
    if principal.org_kind is OrgKind.PROVIDER:  # providers work tasks, they never submit them
        raise _no_such_queue()
    return submit(session, Actor.of(principal), _intake_queue(session, data), data)


def _intake_queue(session: Session, data: TaskCreate) -> IntakeQueue:
    """The task's queue: as this process remembers it (its tenant and kind never change)
    when the task names its priority, else as read now."""
    known = KNOWN_QUEUES.get(data.queue_id)
    if known is not None and data.priority is not None:
        if not sees(session, known.tenant_id):
            raise _no_such_queue()
        return known
    queue = _INTAKE_QUEUE.execute(session, {"queue_id": data.queue_id}).one_or_none()
    if queue is None:
        raise _no_such_queue()
    if known is None:
        KNOWN_QUEUES.remember_on_commit(session, KnownQueue(queue.id, queue.tenant_id, queue.task_kind))
    return queue


def _no_such_queue() -> NotFound:
    return NotFound("no such queue", errors=[FieldError("/queue_id", "no such queue")])


def submit(session: Session, actor: Actor, queue: IntakeQueue, data: TaskCreate) -> Task:
    """Validate and take in one task, with its history entry and event (the rows bulk intake
    writes for each of its tasks, by the same statement). A reference already taken is
    found by the unique index as the row goes in. The language, if not given, is detected
    later by the worker (``detect_pending_languages``): the detector's model stays out of
    the API process."""
    kind = kinds.require(session, queue.tenant_id, queue.task_kind)
    values = task_values(queue, kind, data, detect_language=False)
    values.update(id=new_id(), created_by=actor.id)
    if insert_created(session, actor, [values]):  # refused: the reference is taken
        raise _duplicate(session, queue.tenant_id, str(data.external_ref))
    recorded_many(session, [values])
    return Task(**values)


def task_values(
    queue: IntakeQueue,
    kind: kinds.Kind,
    data: TaskCreate,
    *,
    detect_language: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``prepare`` without the database: the payload checked against ``kind``, the
    language normalised (or detected). Bulk intake calls it while a batch is being
    written, with one creation time for the batch."""
    errors = kinds.payload_errors(kind, data.payload)
    task_language = data.language
    if task_language is not None:
        task_language = language.normalize(task_language)
        if task_language is None:
            errors.append(FieldError("/language", f"{data.language} is not a BCP 47 language tag"))
    if errors:
        raise ValidationFailed(errors=errors)
    now = now or utcnow()
    values: dict[str, Any] = {
        "tenant_id": queue.tenant_id,
        "queue_id": queue.id,
        "external_ref": data.external_ref,
        "case_ref": data.case_ref,
        "title": data.title,
        "payload": data.payload,
        "kind_name": kind.name,
        "kind_version": kind.version,
        "priority": data.priority or queue.default_priority,
        "status": lifecycle.target_of(TaskStatus.NEW, Action.ENQUEUE, Side.SYSTEM),
        "language": task_language,
        "language_confidence": None,
        "language_source": LanguageSource.CLIENT if task_language else None,
        "revision": 1,
        "created_at": now,
        "updated_at": now,
    }
    values["rank_at"] = ranking.rank_at(now, values["priority"])
    if task_language is None and detect_language:
        values.update(detection.detected_language(kind, data.title, data.payload))
    return values


LANGUAGE_BATCH = 500


def detect_pending_languages(session: Session, batch: int = LANGUAGE_BATCH) -> int:
    """Detect the language of tasks submitted without one; each gets a history entry and an event."""
    tasks = session.scalars(
        select(Task)
        .where(Task.language_source.is_(None))
        .order_by(Task.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    actor = Actor.system("language detection")
    found: dict[tuple[uuid.UUID, str, int], kinds.Kind] = {}
    for task in tasks:
        key = (task.tenant_id, task.kind_name, task.kind_version)
        kind = found.get(key) or found.setdefault(key, kinds.require(session, *key))
        for name, value in detection.detected_language(kind, task.title, task.payload).items():
            setattr(task, name, value)
        if task.language is None:
            continue
        _changed(session, task, actor, {"language": [None, task.language]})
    session.flush()
    return len(tasks)


def _duplicate(session: Session, tenant_id: uuid.UUID, external_ref: str) -> Conflict:
    with narrowed_to(session, tenant_id):
        existing = session.scalars(select(Task.id).where(Task.external_ref == external_ref)).first()
    return Conflict(
        f"a task with external_ref {external_ref} exists: {existing}",
        errors=[FieldError("/external_ref", "already used by another task")],
        extra={"existing_id": str(existing)},
    )


def get_task(session: Session, principal: Principal, task_id: uuid.UUID, *, for_change: bool = False) -> Task:
    """``for_change`` locks the task until the commit: the changes of one task (and so its
    history and outbox events, whose ids order them) are made one after the other."""
    principal.require(Permission.TASKS_READ)
    task = fetch(session, Task, task_id, lock=for_change)
    if task is None:
        raise NotFound("no such task")
    return task


def list_tasks(
    session: Session, principal: Principal, filters: TaskFilters, page: PageRequest
) -> tuple[Sequence[Task], str | None]:
    principal.require(Permission.TASKS_READ)
    query: Select[Any] = select(Task)
    for column, value in (
        (Task.queue_id, filters.queue_id),
        (Task.status, filters.status),
        (Task.priority, filters.priority),
        (Task.language, filters.language),
        (Task.external_ref, filters.external_ref),
        (Task.case_ref, filters.case_ref),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.created_after is not None:
        query = query.where(Task.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Task.created_at < filters.created_before)
    return fetch_page(session, query, Task.id, page)


def update_task(
    session: Session,
    principal: Principal,
    task_id: uuid.UUID,
    data: TaskUpdate,
    expected_revision: int | None,
) -> Task:
    principal.require(Permission.TASKS_WRITE)
    task = _task_for_change(session, principal, task_id, expected_revision)
    if principal.org_kind is OrgKind.PROVIDER:
        raise Forbidden("a task's content is the client's: the provider works it through its actions")
    if task.status in lifecycle.FINAL_STATES:
        raise Conflict(f"the task is {task.status.value}", extra={"current_status": task.status.value})
    fields = data.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if fields.get("queue_id") is not None and fields["queue_id"] != task.queue_id:
        with narrowed_to(session, task.tenant_id):  # a task never moves to another tenant
            queue = fetch(session, Queue, fields["queue_id"])
        if queue is None:
            raise NotFound("no such queue", errors=[FieldError("/queue_id", "no such queue")])
        if queue.task_kind != task.kind_name:
            raise ValidationFailed(errors=[FieldError("/queue_id", "the queue takes another task kind")])
        changes["queue_id"] = [str(task.queue_id), str(queue.id)]
        task.queue_id = queue.id
    if fields.get("payload") is not None:
        kind = kinds.require(session, task.tenant_id, task.kind_name, task.kind_version)
        errors = kinds.payload_errors(kind, fields["payload"])
        if errors:
            raise ValidationFailed(errors=errors)
    if fields.get("language") is not None:
        normalized = language.normalize(fields["language"])
        if normalized is None:
            raise ValidationFailed(errors=[FieldError("/language", "not a BCP 47 language tag")])
        fields["language"] = normalized
        if normalized != task.language:
            task.language_confidence = None
            task.language_source = LanguageSource.CLIENT
    for name in ("title", "payload", "priority", "language"):
        value = fields.get(name)
        if value is not None and value != getattr(task, name):
            old = getattr(task, name)
            changes[name] = [documents.plain(old), documents.plain(value)]
            setattr(task, name, value)
    if "priority" in changes:
        task.rank_at = ranking.rank_at(task.created_at, task.priority, task.overflow_since)
    if not changes:
        return task
    _changed(session, task, Actor.of(principal), changes)
    return task


PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)


def raise_priority(session: Session, actor: Actor, task: Task) -> bool:
    """One step up (an SLA escalation); False if the task is urgent already or settled."""
    step = PRIORITY_ORDER.index(task.priority) + 1
    if step == len(PRIORITY_ORDER) or task.status in lifecycle.FINAL_STATES:
        return False
    raised = PRIORITY_ORDER[step]
    changes = {"priority": [task.priority.value, raised.value]}
    task.priority = raised
    task.rank_at = ranking.rank_at(task.created_at, raised, task.overflow_since)
    _changed(session, task, actor, changes)
    return True


def request_overflow(session: Session, actor: Actor, task: Task) -> bool:
    """Let routing offer the task beyond its usual teams (an SLA escalation, or its queue's
    relaxation step for tasks at risk), and take it ahead of the queue."""
    if task.overflow_since is not None or task.status in lifecycle.FINAL_STATES:
        return False
    task.overflow_since = utcnow()
    task.rank_at = ranking.rank_at(task.created_at, task.priority, task.overflow_since)  # SLA: its observer
    _changed(session, task, actor, {"overflow_since": [None, task.overflow_since.isoformat()]})
    return True


def _changed(session: Session, task: Task, actor: Actor, changes: dict[str, Any]) -> None:
    """A change of a task's fields: its history entry and its event (after the new revision)."""
    record(session, task, actor, "updated", changes=changes)
    session.flush()
    emit(
        session,
        task.tenant_id,
        "task.updated",
        task.id,
        {"task": documents.task_document(task), "changes": changes},
    )


# Checks another context makes before a principal's transition (routing: an agent acts
# only on the tasks they hold). Work never imports them: they register here.
TransitionGuard = Callable[[Session, Principal, Task, Action], None]
TRANSITION_GUARDS: list[TransitionGuard] = []


def transition(
    session: Session,
    principal: Principal,
    task_id: uuid.UUID,
    action: Action,
    comment: str | None = None,
    expected_revision: int | None = None,
) -> Task:
    principal.require(Permission.TASKS_WRITE)
    task = _task_for_change(session, principal, task_id, expected_revision)
    for guard in TRANSITION_GUARDS:
        guard(session, principal, task, action)
    return apply(session, Actor.of(principal), task, action, comment)


def apply(session: Session, actor: Actor, task: Task, action: Action, comment: str | None = None) -> Task:
    """Take ``action`` on ``task`` as ``actor``: the one way a task changes state."""
    try:
        target = lifecycle.target_of(task.status, action, actor.side)
    except lifecycle.IllegalTransition as exc:
        allowed = [a.value for a in exc.allowed]
        raise Conflict(
            f"{action.value} is not allowed while the task is {exc.current.value}; "
            f"allowed: {', '.join(allowed) or 'none'}",
            extra={"current_status": exc.current.value, "allowed_actions": allowed},
        ) from None
    except lifecycle.NotYourAction as exc:
        raise Forbidden(str(exc)) from None
    source = task.status
    worked = _work_segment(task, source, target)
    task.status = target
    changes = {"status": [source.value, target.value]}
    record(
        session,
        task,
        actor,
        "transitioned",
        action=action,
        from_status=source,
        to_status=target,
        changes=changes,
    )
    if comment:
        _add_comment(session, task, actor, comment, CommentVisibility.CLIENT)
    session.flush()
    emit(
        session,
        task.tenant_id,
        "task.status_changed",
        task.id,
        {
            "task": documents.task_document(task),
            "action": action.value,
            "from": source.value,
            "to": target.value,
        }
        | ({"worked": worked} if worked else {}),
    )
    history.applied(session, task, actor, action)
    return task


def _work_segment(task: Task, source: TaskStatus, target: TaskStatus) -> dict[str, Any] | None:
    """A task records when it went in progress; leaving that state ends one segment of
    work (time waiting on the client or a third party is not in it), which the status
    event carries: the handle time metering bills."""
    now = utcnow()
    if target is TaskStatus.IN_PROGRESS and source is not TaskStatus.IN_PROGRESS:
        task.working_since = now
        return None
    if source is not TaskStatus.IN_PROGRESS or target is TaskStatus.IN_PROGRESS or task.working_since is None:
        return None
    began, task.working_since = task.working_since, None
    return {"from": documents.iso(began), "to": documents.iso(now), "seconds": (now - began).total_seconds()}


def _task_for_change(
    session: Session, principal: Principal, task_id: uuid.UUID, expected_revision: int | None
) -> Task:
    task = get_task(session, principal, task_id, for_change=True)
    if expected_revision is not None and expected_revision != task.revision:
        raise PreconditionFailed(
            f"the task is at revision {task.revision}, not {expected_revision}; read it again",
            extra={"current_revision": task.revision},
        )
    return task


# ---------------------------------------------------------------- history and comments


def is_client_side(principal: Principal) -> bool:
    return principal.org_kind is OrgKind.CLIENT


def list_events(
    session: Session, principal: Principal, task_id: uuid.UUID, page: PageRequest
) -> tuple[Sequence[TaskEvent], str | None]:
    task = get_task(session, principal, task_id)
    query = select(TaskEvent).where(TaskEvent.task_id == task.id)
    if is_client_side(principal):
        query = query.where(TaskEvent.internal.is_(False))
    return fetch_page(session, query, TaskEvent.id, page)


def add_comment(
    session: Session, principal: Principal, task_id: uuid.UUID, body: str, visibility: CommentVisibility
) -> TaskComment:
    principal.require(Permission.TASKS_WRITE)
    if visibility is CommentVisibility.INTERNAL and is_client_side(principal):
        raise Forbidden("internal comments are for the provider and the operator")
    task = get_task(session, principal, task_id, for_change=True)
    return _add_comment(session, task, Actor.of(principal), body, visibility)


def _add_comment(
    session: Session, task: Task, actor: Actor, body: str, visibility: CommentVisibility
) -> TaskComment:
    comment = TaskComment(
        tenant_id=task.tenant_id,
        task_id=task.id,
        body=body,
        visibility=visibility,
        author_kind=actor.kind,
        author_id=actor.id,
        author_name=actor.name,
        author_public_name=actor.public_name,
        author_side=actor.side.value,
        provider_id=actor.provider_id,
    )
    session.add(comment)
    session.flush()
    internal = visibility is CommentVisibility.INTERNAL
    record(session, task, actor, "commented", changes={"comment_id": str(comment.id)}, internal=internal)
    if not internal:
        document = CommentOut.model_validate(comment).seen_by(None).model_dump(mode="json")
        emit(
            session,
            task.tenant_id,
            "task.comment_added",
            task.id,
            {"task_id": str(task.id), "comment": document},
        )
    return comment


def list_comments(
    session: Session, principal: Principal, task_id: uuid.UUID, page: PageRequest
) -> tuple[Sequence[TaskComment], str | None]:
    task = get_task(session, principal, task_id)
    query = select(TaskComment).where(TaskComment.task_id == task.id)
    if is_client_side(principal):
        query = query.where(TaskComment.visibility == CommentVisibility.CLIENT)
    return fetch_page(session, query, TaskComment.id, page)
