"""The client portal: queues, task submission from the kind's schema, task list and
detail (timeline, comments, attachments), bulk upload with its per-row report.

Pages call the same services as the API, so the rules, the scoping and the
history are the same whichever way the work comes in.
"""

from __future__ import annotations

import tempfile
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response, StreamingResponse

from services.core.background import enqueue
from services.core.deps import AppSettings, DbSession
from services.core.errors import DomainError, ValidationFailed
from services.core.pagination import PageRequest, decode_cursor
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.web import forms
from services.web.deps import Member
from services.web.templating import render
from services.work import attachments, bulk, imports, kinds, lifecycle, queues, service
from services.work.history import Actor
from services.work.models import CommentVisibility, ImportStatus, Priority, QueueMode, TaskStatus
from services.work.schemas import QueueCreate, TaskCreate
from services.work.storage import READ_CHUNK_BYTES, blob_store
from tenants import service as tenancy

router = APIRouter(
    route_class=UnitOfWorkRoute,
    prefix="/portal",
    include_in_schema=False,
    dependencies=[Depends(csrf.verify)],
)
PAGE = 50


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def page(request: Request, session: DbSession, viewer: Any, template: str, **context: Any) -> Response:
    """A portal page: the viewer and their organisation in the context, the CSRF cookie set."""
    organization = tenancy.get_organization(session, viewer.org_id)
    response = render(request, template, {"viewer": viewer, "organization": organization, **context})
    csrf.set_cookie(request, response)
    return response


def _all_queues(session: DbSession) -> list[Any]:
    found, _next = queues.list_queues(session, PageRequest(limit=200, after=None))
    return list(found)


# ---------------------------------------------------------------- queues


@router.get("/queues")
def queues_page(request: Request, session: DbSession, viewer: Member) -> Response:
    return _queues(request, session, viewer)


def _queues(
    request: Request,
    session: DbSession,
    viewer: Any,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    return page(
        request,
        session,
        viewer,
        "portal/queues.html",
        queues=_all_queues(session),
        kinds=kinds.list_kinds(session),
        priorities=list(Priority),
        modes=list(QueueMode),
        errors=errors or {},
        values=values or {},
    )


@router.post("/queues")
def create_queue(
    request: Request,
    session: DbSession,
    viewer: Member,
    name: Annotated[str, Form(max_length=200)],
    task_kind: Annotated[str, Form(max_length=64)],
    languages: Annotated[str, Form(max_length=200)] = "",
    default_priority: Annotated[str, Form()] = "normal",
    mode: Annotated[str, Form()] = "pull",
    out_of_hours: Annotated[str, Form()] = "",
) -> Response:
    values = {"name": name, "task_kind": task_kind, "languages": languages}
    try:
        data = QueueCreate(
            name=name,
            task_kind=task_kind,
            languages=[tag.strip() for tag in languages.replace(";", ",").split(",") if tag.strip()],
            default_priority=Priority(default_priority),
            mode=QueueMode(mode),
            out_of_hours=bool(out_of_hours),
        )
        queues.create_queue(session, viewer, data)
    except (ValidationError, ValueError, ValidationFailed) as exc:
        session.rollback()
        return _queues(request, session, viewer, _messages(exc), values)
    return _redirect("/portal/queues")


def _messages(exc: Exception) -> dict[str, str]:
    """Errors by field name, whatever raised them."""
    if isinstance(exc, ValidationError):
        return {".".join(str(p) for p in e["loc"]) or "form": e["msg"] for e in exc.errors()}
    if isinstance(exc, DomainError) and exc.errors:
        return {e.pointer.strip("/").replace("/", "."): e.message for e in exc.errors}
    return {"form": str(getattr(exc, "detail", None) or exc)}


# ---------------------------------------------------------------- tasks


@router.get("/tasks")
def tasks_page(
    request: Request,
    session: DbSession,
    viewer: Member,
    queue_id: Annotated[str, Query()] = "",
    status: Annotated[str, Query()] = "",
    priority: Annotated[str, Query()] = "",
    language: Annotated[str, Query()] = "",
    external_ref: Annotated[str, Query()] = "",
    cursor: Annotated[str, Query()] = "",
) -> Response:
    filters = service.TaskFilters(
        queue_id=_uuid_or_none(queue_id),
        status=TaskStatus(status) if status in set(TaskStatus) else None,
        priority=Priority(priority) if priority in set(Priority) else None,
        language=language or None,
        external_ref=external_ref or None,
    )
    paging = PageRequest(limit=PAGE, after=decode_cursor(cursor) if cursor else None)
    tasks, next_cursor = service.list_tasks(session, viewer, filters, paging)
    chosen = {
        "queue_id": queue_id,
        "status": status,
        "priority": priority,
        "language": language,
        "external_ref": external_ref,
    }
    return page(
        request,
        session,
        viewer,
        "portal/tasks.html",
        tasks=tasks,
        queues={q.id: q for q in _all_queues(session)},
        statuses=list(TaskStatus),
        priorities=list(Priority),
        chosen=chosen,
        next_query=urlencode({**chosen, "cursor": next_cursor}) if next_cursor else None,
    )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


@router.get("/tasks/new")
def new_task_page(
    request: Request, session: DbSession, viewer: Member, queue_id: Annotated[str, Query()] = ""
) -> Response:
    return _task_form(request, session, viewer, _uuid_or_none(queue_id), {}, {})


def _task_form(
    request: Request,
    session: DbSession,
    viewer: Any,
    queue_id: uuid.UUID | None,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    queues = _all_queues(session)
    queue = next((q for q in queues if q.id == queue_id), None)
    fields = []
    if queue is not None:
        kind = kinds.require(session, queue.tenant_id, queue.task_kind)
        fields = forms.fields_of(kind.schema)
    response = page(
        request,
        session,
        viewer,
        "portal/task_new.html",
        queues=queues,
        queue=queue,
        fields=fields,
        values=values,
        errors=errors,
        priorities=list(Priority),
    )
    response.status_code = status_code
    return response


@router.post("/tasks")
async def submit_task(request: Request, session: DbSession, viewer: Member) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    return await run_in_threadpool(_submit_task, request, session, viewer, form)


def _submit_task(request: Request, session: DbSession, viewer: Any, form: dict[str, str]) -> Response:
    queue_id = _uuid_or_none(form.get("queue_id", ""))
    queue = queues.get_queue(session, queue_id) if queue_id else None
    if queue is None:
        return _task_form(request, session, viewer, None, form, {"queue_id": "choose a queue"}, 422)
    kind = kinds.require(session, queue.tenant_id, queue.task_kind)
    payload, errors = forms.payload_of(form, kind.schema)
    for error in kinds.payload_errors(kind, payload):  # every mistake at once, not one at a time
        errors.setdefault(error.pointer.removeprefix("/payload/"), error.message)
    if not errors:
        try:
            data = TaskCreate(
                queue_id=queue.id,
                title=form.get("title", ""),
                external_ref=form.get("external_ref") or None,
                case_ref=form.get("case_ref") or None,
                priority=Priority(form["priority"]) if form.get("priority") else None,
                language=form.get("language") or None,
                payload=payload,
            )
            task = service.create_task(session, viewer, data)
        except (ValidationError, DomainError) as exc:
            session.rollback()
            errors = {key.removeprefix("payload."): message for key, message in _messages(exc).items()}
        else:
            return _redirect(f"/portal/tasks/{task.id}")
    return _task_form(request, session, viewer, queue.id, form, errors, 422)


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    task = service.get_task(session, viewer, task_id)
    events, _next = service.list_events(session, viewer, task.id, PageRequest(limit=200, after=None))
    comments, _next = service.list_comments(session, viewer, task.id, PageRequest(limit=200, after=None))
    side = Actor.of(viewer).side
    return page(
        request,
        session,
        viewer,
        "portal/task.html",
        task=task,
        queue=queues.get_queue(session, task.queue_id),
        events=events,
        comments=comments,
        files=attachments.list_for_task(session, viewer, task.id),
        actions=[a.value for a in lifecycle.allowed_actions(task.status, side)],
    )


@router.post("/tasks/{task_id}/comments")
def add_comment(
    task_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    body: Annotated[str, Form(min_length=1, max_length=20_000)],
) -> Response:
    service.add_comment(session, viewer, task_id, body, CommentVisibility.CLIENT)
    return _redirect(f"/portal/tasks/{task_id}#comments")


@router.post("/tasks/{task_id}/transitions")
def transition(
    task_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    action: Annotated[str, Form(max_length=32)],
    revision: Annotated[int, Form()],
) -> Response:
    if action not in {a.value for a in lifecycle.PUBLIC_ACTIONS}:
        raise ValidationFailed(f"unknown action {action}")
    service.transition(session, viewer, task_id, lifecycle.Action(action), expected_revision=revision)
    return _redirect(f"/portal/tasks/{task_id}")


@router.post("/tasks/{task_id}/attachments")
def upload_attachment(
    task_id: uuid.UUID,
    session: DbSession,
    viewer: Member,
    settings: AppSettings,
    file: Annotated[UploadFile, File()],
) -> Response:
    chunks = iter(lambda: file.file.read(READ_CHUNK_BYTES), b"")
    attachments.add(
        session, viewer, task_id, file.filename, chunks, blob_store(settings), settings.attachment_max_bytes
    )
    return _redirect(f"/portal/tasks/{task_id}#attachments")


@router.get("/tasks/{task_id}/attachments/{attachment_id}")
def download_attachment(
    task_id: uuid.UUID, attachment_id: uuid.UUID, session: DbSession, viewer: Member, settings: AppSettings
) -> Response:
    attachment = attachments.get(session, viewer, task_id, attachment_id)
    return StreamingResponse(
        blob_store(settings).open(attachment.storage_key),
        media_type=attachment.content_type,
        headers=attachments.download_headers(attachment),
    )


# ---------------------------------------------------------------- bulk upload


@router.get("/imports")
def imports_page(request: Request, session: DbSession, viewer: Member) -> Response:
    return page(request, session, viewer, "portal/imports.html", queues=_all_queues(session), error=None)


@router.post("/imports")
def upload_import(
    request: Request,
    session: DbSession,
    viewer: Member,
    settings: AppSettings,
    queue_id: Annotated[uuid.UUID, Form()],
    file: Annotated[UploadFile, File()],
    all_or_nothing: Annotated[str, Form()] = "",
    delimiter: Annotated[str, Form(max_length=1)] = ",",
) -> Response:
    """Every portal upload becomes an import, so its per-row report can be downloaded;
    a small one is run at once, a large one by the worker while the page follows it."""
    name = (file.filename or "").lower()
    file_format = bulk.FileFormat.NDJSON if name.endswith((".ndjson", ".jsonl")) else bulk.FileFormat.CSV
    order = imports.BulkRequest(
        queue_id, file_format, bool(all_or_nothing), imports.check_delimiter(delimiter)
    )
    with tempfile.SpooledTemporaryFile(max_size=settings.bulk_sync_max_bytes) as spool:
        size = 0
        while chunk := file.file.read(READ_CHUNK_BYTES):
            size += len(chunk)
            spool.write(chunk)
        store = blob_store(settings)
        job = imports.start_job(session, viewer, order, spool, size, store)
    session.commit()  # the job must exist before it runs, here or in the worker
    if size <= settings.bulk_sync_max_bytes:
        imports.run_job(request.app.state.db, store, job.id, in_worker=False)
    else:
        enqueue("work.run_import", str(job.id), broker_url=settings.resolved_broker_url())
    return _redirect(f"/portal/imports/{job.id}")


@router.get("/imports/{import_id}")
def import_page(
    request: Request, import_id: uuid.UUID, session: DbSession, viewer: Member, settings: AppSettings
) -> Response:
    job = imports.get_job(session, viewer, import_id)
    rejected = list(_first(imports.result_rows(blob_store(settings), job, only_rejected=True), 500))
    running = job.status in (ImportStatus.PENDING, ImportStatus.RUNNING)
    return page(request, session, viewer, "portal/import.html", job=job, rejected=rejected, running=running)


def _first(rows: Any, count: int) -> Any:
    for index, row in enumerate(rows):
        if index == count:
            return
        yield row


@router.get("/imports/{import_id}/report.csv")
def import_report(
    import_id: uuid.UUID, session: DbSession, viewer: Member, settings: AppSettings
) -> Response:
    job = imports.get_job(session, viewer, import_id)
    rows = imports.result_rows(blob_store(settings), job)
    return StreamingResponse(
        imports.report_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job.id}.csv"'},
    )
