"""HTTP of work intake: queues, task kinds, tasks, transitions, history and comments."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from services.core.deps import AppSettings, DbSession
from services.core.pagination import Page, PageRequest, page_request
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.identity.deps import CurrentPrincipal
from services.work import documents, idempotency, kinds, queues, service
from services.work.lifecycle import Action
from services.work.models import Priority, Queue, Task, TaskStatus
from services.work.schemas import (
    CommentCreate,
    CommentOut,
    QueueCreate,
    QueueOut,
    QueueUpdate,
    Residency,
    RoutingPolicy,
    Skill,
    TaskCreate,
    TaskEventOut,
    TaskKindCreate,
    TaskKindOut,
    TaskOut,
    TaskUpdate,
    TransitionIn,
)
from tenants.principal import Permission, Principal

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["work"], responses=PROBLEM_RESPONSES)

Paging = Annotated[PageRequest, Depends(page_request)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retries with the same key and body replay the first answer"),
]
IfMatch = Annotated[
    str | None, Header(alias="If-Match", description="The task's ETag, to refuse stale writes")
]


def _idempotent(
    request: Request,
    session: Session,
    principal: Principal,
    settings: AppSettings,
    key: str | None,
    body: BaseModel,
    produce: Callable[[], tuple[int, Any, dict[str, str]]],
    authorise: Callable[[], object],
) -> Response:
    """Answer ``produce()``, or the stored first answer when the key was seen with the same
    body. A replay is authorised as the first call was (``authorise`` raises otherwise): the
    record is the organisation's, and a colleague without the permission, or a provider who
    lost the queue since, gets no stored answer."""
    if key is None:
        status_code, content, headers = produce()
        return JSONResponse(content, status_code=status_code, headers=headers)
    endpoint = f"{request.method} {request.url.path}"  # the path itself: a key is not shared by two tasks
    request_hash = idempotency.fingerprint(body.model_dump(mode="json", exclude_unset=True))
    authorise()
    stored = idempotency.replay(session, principal, key, endpoint, request_hash)
    if stored is None:
        status_code, content, headers = produce()
        stored = idempotency.StoredAnswer(status_code, json.dumps(content), headers)
        idempotency.remember(
            session, principal, key, endpoint, request_hash, stored, settings.idempotency_ttl_seconds
        )
        return JSONResponse(content, status_code=status_code, headers=headers)
    return replayed(stored)


def _may_change(session: Session, principal: Principal, task_id: uuid.UUID) -> None:
    principal.require(Permission.TASKS_WRITE)
    service.get_task(session, principal, task_id)  # 404 once the task is out of sight


def replayed(stored: idempotency.StoredAnswer) -> Response:
    return Response(
        stored.body,
        status_code=stored.status_code,
        media_type="application/json",
        headers={**stored.headers, "Idempotent-Replayed": "true"},
    )


# ---------------------------------------------------------------- tasks
# First in the module, so first in the router: FastAPI tries an included router's routes
# in order, twice a request, and task intake is the route clients call most (its
# matching was 5% of the instructions of a POST /v1/tasks behind six queue and kind routes).


def _etag(task: Task) -> str:
    return f'"{task.revision}"'


def _expected_revision(if_match: str | None) -> int | None:
    """The revision an If-Match names; -1 (never current) for a tag this API did not issue."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.split(",")[0].strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else -1


def _task_answer(
    task: Task, status_code: int = 200, location: bool = False
) -> tuple[int, Any, dict[str, str]]:
    headers = {"ETag": _etag(task)}
    if location:
        headers["Location"] = f"/v1/tasks/{task.id}"
    return status_code, documents.task_document(task), headers


def _task_response(task: Task) -> JSONResponse:
    status_code, content, headers = _task_answer(task)
    return JSONResponse(content, status_code=status_code, headers=headers)


@router.post("/tasks", response_model=TaskOut, status_code=201, summary="Submit a task")
def create_task(
    request: Request,
    body: TaskCreate,
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def produce() -> tuple[int, Any, dict[str, str]]:
        return _task_answer(service.create_task(session, principal, body), 201, location=True)

    return _idempotent(
        request,
        session,
        principal,
        settings,
        idempotency_key,
        body,
        produce,
        authorise=lambda: principal.require(Permission.TASKS_WRITE),
    )


@router.get("/tasks", response_model=Page[TaskOut], summary="Tasks, newest last, with filters")
def list_tasks(
    session: DbSession,
    principal: CurrentPrincipal,
    page: Paging,
    queue_id: uuid.UUID | None = None,
    status: TaskStatus | None = None,
    priority: Priority | None = None,
    language: str | None = None,
    external_ref: str | None = None,
    case_ref: str | None = None,
    created_after: Annotated[datetime | None, Query(description="Inclusive, ISO 8601 with offset")] = None,
    created_before: Annotated[datetime | None, Query(description="Exclusive")] = None,
) -> Page[TaskOut]:
    filters = service.TaskFilters(
        queue_id=queue_id,
        status=status,
        priority=priority,
        language=language,
        external_ref=external_ref,
        case_ref=case_ref,
        created_after=created_after,
        created_before=created_before,
    )
    rows, next_cursor = service.list_tasks(session, principal, filters, page)
    return Page(items=[TaskOut(**documents.task_document(t)) for t in rows], next_cursor=next_cursor)


@router.get("/tasks/{task_id}", response_model=TaskOut, summary="One task, with its ETag")
def get_task(task_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> Response:
    return _task_response(service.get_task(session, principal, task_id))


@router.patch(
    "/tasks/{task_id}", response_model=TaskOut, summary="Change a task (If-Match to refuse stale writes)"
)
def update_task(
    task_id: uuid.UUID,
    body: TaskUpdate,
    session: DbSession,
    principal: CurrentPrincipal,
    if_match: IfMatch = None,
) -> Response:
    task = service.update_task(session, principal, task_id, body, _expected_revision(if_match))
    return _task_response(task)


@router.post(
    "/tasks/{task_id}/transitions", response_model=TaskOut, summary="Move a task through its lifecycle"
)
def transition_task(
    request: Request,
    task_id: uuid.UUID,
    body: TransitionIn,
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def produce() -> tuple[int, Any, dict[str, str]]:
        task = service.transition(
            session, principal, task_id, Action(body.action), body.comment, _expected_revision(if_match)
        )
        return _task_answer(task)

    return _idempotent(
        request,
        session,
        principal,
        settings,
        idempotency_key,
        body,
        produce,
        authorise=lambda: _may_change(session, principal, task_id),
    )


@router.get("/tasks/{task_id}/events", response_model=Page[TaskEventOut], summary="The task's history")
def list_task_events(
    task_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal, page: Paging
) -> Page[TaskEventOut]:
    rows, next_cursor = service.list_events(session, principal, task_id, page)
    return Page(
        items=[_as_seen(principal, TaskEventOut.model_validate(e)) for e in rows], next_cursor=next_cursor
    )


@router.post(
    "/tasks/{task_id}/comments", response_model=CommentOut, status_code=201, summary="Comment on a task"
)
def add_comment(
    request: Request,
    task_id: uuid.UUID,
    body: CommentCreate,
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def produce() -> tuple[int, Any, dict[str, str]]:
        comment = service.add_comment(session, principal, task_id, body.body, body.visibility)
        return 201, _as_seen(principal, CommentOut.model_validate(comment)).model_dump(mode="json"), {}

    return _idempotent(
        request,
        session,
        principal,
        settings,
        idempotency_key,
        body,
        produce,
        authorise=lambda: _may_change(session, principal, task_id),
    )


@router.get("/tasks/{task_id}/comments", response_model=Page[CommentOut], summary="Comments you may see")
def list_comments(
    task_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal, page: Paging
) -> Page[CommentOut]:
    rows, next_cursor = service.list_comments(session, principal, task_id, page)
    return Page(
        items=[_as_seen(principal, CommentOut.model_validate(c)) for c in rows], next_cursor=next_cursor
    )


def _as_seen(principal: Principal, item: Any) -> Any:
    return item.seen_by(principal)


# ---------------------------------------------------------------- queues


def _queue_out(queue: Queue) -> QueueOut:
    return QueueOut(
        id=queue.id,
        name=queue.name,
        task_kind=queue.task_kind,
        languages=queue.languages,
        skills=[Skill(**skill) for skill in queue.skills],
        residency=Residency(allow=queue.residency_allow, deny=queue.residency_deny),
        default_priority=queue.default_priority,
        out_of_hours=queue.out_of_hours,
        mode=queue.mode,
        accepted_attachment_types=queue.accepted_attachment_types,
        routing=RoutingPolicy(**queue.routing_policy),
        created_at=queue.created_at,
        updated_at=queue.updated_at,
    )


@router.post("/queues", response_model=QueueOut, status_code=201, summary="Define a queue")
def create_queue(
    request: Request,
    body: QueueCreate,
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def produce() -> tuple[int, Any, dict[str, str]]:
        queue = queues.create_queue(session, principal, body)
        return 201, _queue_out(queue).model_dump(mode="json"), {"Location": f"/v1/queues/{queue.id}"}

    return _idempotent(
        request,
        session,
        principal,
        settings,
        idempotency_key,
        body,
        produce,
        authorise=lambda: principal.require(Permission.QUEUES_MANAGE),
    )


@router.get("/queues", response_model=Page[QueueOut], summary="Queues you may see")
def list_queues(session: DbSession, principal: CurrentPrincipal, page: Paging) -> Page[QueueOut]:
    principal.require(Permission.TASKS_READ)
    rows, next_cursor = queues.list_queues(session, page)
    return Page(items=[_queue_out(q) for q in rows], next_cursor=next_cursor)


@router.get("/queues/{queue_id}", response_model=QueueOut, summary="One queue")
def get_queue(queue_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> QueueOut:
    principal.require(Permission.TASKS_READ)
    return _queue_out(queues.get_queue(session, queue_id))


@router.patch("/queues/{queue_id}", response_model=QueueOut, summary="Change a queue")
def update_queue(
    queue_id: uuid.UUID, body: QueueUpdate, session: DbSession, principal: CurrentPrincipal
) -> QueueOut:
    return _queue_out(queues.update_queue(session, principal, queue_id, body))


# ---------------------------------------------------------------- task kinds


def _kind_out(kind: kinds.Kind) -> TaskKindOut:
    return TaskKindOut(name=kind.name, version=kind.version, builtin=kind.builtin, json_schema=kind.schema)


@router.get("/task-kinds", summary="Task kinds you can use, each with its payload schema")
def list_task_kinds(session: DbSession, principal: CurrentPrincipal) -> Page[TaskKindOut]:
    principal.require(Permission.TASKS_READ)
    return Page(items=[_kind_out(k) for k in kinds.list_kinds(session)], next_cursor=None)


@router.post(
    "/task-kinds", status_code=201, response_model=TaskKindOut, summary="Define a kind or its next version"
)
def define_task_kind(
    request: Request,
    body: TaskKindCreate,
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def produce() -> tuple[int, Any, dict[str, str]]:
        kind = kinds.define(session, principal, body.name, body.json_schema)
        return 201, _kind_out(kind).model_dump(mode="json", by_alias=True), {}

    return _idempotent(
        request,
        session,
        principal,
        settings,
        idempotency_key,
        body,
        produce,
        authorise=lambda: principal.require(Permission.QUEUES_MANAGE),
    )
