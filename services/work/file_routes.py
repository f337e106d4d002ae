"""HTTP of files: task attachments, bulk intake and the imports it makes."""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from services.core.background import enqueue
from services.core.deps import AppSettings, DbSession
from services.core.errors import PayloadTooLarge, UnsupportedMediaType
from services.core.pagination import Page
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.identity.deps import CurrentPrincipal
from services.work import attachments, bulk, idempotency, imports, queues
from services.work.routes import IdempotencyKey, replayed
from services.work.schemas import AttachmentOut, ImportOut
from services.work.storage import READ_CHUNK_BYTES, BlobStore, blob_store
from tenants.principal import Permission

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["work"], responses=PROBLEM_RESPONSES)


# ---------------------------------------------------------------- attachments


def _blob_store(settings: AppSettings) -> BlobStore:
    return blob_store(settings)


Blobs = Annotated[BlobStore, Depends(_blob_store)]


def _chunks(upload: UploadFile) -> Iterator[bytes]:
    while chunk := upload.file.read(READ_CHUNK_BYTES):
        yield chunk


@router.post(
    "/tasks/{task_id}/attachments",
    response_model=AttachmentOut,
    status_code=201,
    summary="Attach a file (multipart field 'file'); its type is read from its content",
)
def add_attachment(
    task_id: uuid.UUID,
    file: Annotated[UploadFile, File()],
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    store: Blobs,
) -> AttachmentOut:
    attachment = attachments.add(
        session, principal, task_id, file.filename, _chunks(file), store, settings.attachment_max_bytes
    )
    return AttachmentOut.model_validate(attachment)


@router.get(
    "/tasks/{task_id}/attachments", response_model=Page[AttachmentOut], summary="A task's attachments"
)
def list_attachments(
    task_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> Page[AttachmentOut]:
    rows = attachments.list_for_task(session, principal, task_id)
    return Page(items=[AttachmentOut.model_validate(a) for a in rows], next_cursor=None)


@router.get(
    "/tasks/{task_id}/attachments/{attachment_id}/content",
    response_class=StreamingResponse,
    summary="Download an attachment",
)
def download_attachment(
    task_id: uuid.UUID,
    attachment_id: uuid.UUID,
    session: DbSession,
    principal: CurrentPrincipal,
    store: Blobs,
) -> StreamingResponse:
    attachment = attachments.get(session, principal, task_id, attachment_id)
    body = store.open(attachment.storage_key)  # raises before any header is sent if the blob is gone
    return StreamingResponse(
        body, media_type=attachment.content_type, headers=attachments.download_headers(attachment)
    )


# ---------------------------------------------------------------- bulk intake

BULK_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}


async def _spool(
    request: Request, settings: AppSettings
) -> tuple[tempfile.SpooledTemporaryFile[bytes], int, str]:
    """The body to a temporary file (in memory while small), refusing it past the limits;
    with its size and SHA-256 (what an ``Idempotency-Key`` is checked against)."""
    # Closed by the caller (``with spool:``), or here when refused.
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
        max_size=settings.bulk_sync_max_bytes
    )
    size = lines = 0
    digest = hashlib.sha256()
    async for chunk in request.stream():
        size += len(chunk)
        digest.update(chunk)
        lines += chunk.count(b"\n")
        if lines > settings.bulk_max_rows + 1:  # + a CSV header
            spool.close()
            raise PayloadTooLarge(f"more than {settings.bulk_max_rows} rows; split the file")
        spool.write(chunk)
    spool.seek(0)
    return spool, size, digest.hexdigest()


@router.post(
    "/tasks/bulk",
    summary="Submit many tasks from a CSV or NDJSON file",
    description="Small files answer at once, a result per row; large ones answer 202 and become an import.",
    openapi_extra={"requestBody": BULK_BODY},
    responses={202: {"description": "Accepted as an import job: follow /v1/imports/{import_id}"}},
)
async def bulk_intake(
    request: Request,
    queue_id: uuid.UUID,
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    store: Blobs,
    background: BackgroundTasks,
    all_or_nothing: bool = False,
    delimiter: Annotated[str, Query(description="CSV only: , ; tab or |")] = ",",
    idempotency_key: IdempotencyKey = None,
) -> Response:
    file_format = bulk.FileFormat.of_media_type(request.headers.get("content-type", ""))
    if file_format is None:
        raise UnsupportedMediaType("send text/csv (with a header row) or application/x-ndjson")
    order = imports.BulkRequest(queue_id, file_format, all_or_nothing, imports.check_delimiter(delimiter))
    principal.require(Permission.TASKS_WRITE)  # before a replay too: the record is the organisation's
    await run_in_threadpool(
        queues.queue_for_intake, session, principal, queue_id
    )  # 404 before reading the body
    spool, size, digest = await _spool(request, settings)
    endpoint = "POST /v1/tasks/bulk"
    request_hash = idempotency.fingerprint(
        {
            "file": digest,
            "format": file_format.value,
            "queue_id": str(queue_id),
            "all": all_or_nothing,
            "sep": delimiter,
        }
    )
    if idempotency_key is not None:
        stored = await run_in_threadpool(
            idempotency.replay, session, principal, idempotency_key, endpoint, request_hash
        )
        if stored is not None:
            spool.close()
            return replayed(stored)
    with spool:
        if size <= settings.bulk_sync_max_bytes:
            summary = await run_in_threadpool(imports.import_now, session, principal, order, spool)
            status_code, headers = 200, {}
            content: dict[str, Any] = {
                "accepted": summary.accepted,
                "rejected": summary.rejected,
                "rows": [row.as_json() for row in summary.rows],
            }
        else:
            job = await run_in_threadpool(imports.start_job, session, principal, order, spool, size, store)
            # After the commit (background tasks run once the answer is sent): the worker must find the job.
            background.add_task(
                enqueue, "work.run_import", str(job.id), broker_url=settings.resolved_broker_url()
            )
            status_code, headers = 202, {"Location": f"/v1/imports/{job.id}"}
            content = {"import_id": str(job.id), "status": job.status.value}
    if idempotency_key is not None:
        answer = idempotency.StoredAnswer(status_code, json.dumps(content), headers)
        await run_in_threadpool(
            idempotency.remember,
            session,
            principal,
            idempotency_key,
            endpoint,
            request_hash,
            answer,
            settings.idempotency_ttl_seconds,
        )
    return JSONResponse(content, status_code=status_code, headers=headers)


@router.get("/imports/{import_id}", response_model=ImportOut, summary="Progress and outcome of a bulk import")
def get_import(import_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> ImportOut:
    return ImportOut.model_validate(imports.get_job(session, principal, import_id))


@router.get(
    "/imports/{import_id}/rows",
    summary="The result of every row (NDJSON), or the per-row report with Accept: text/csv",
    response_class=StreamingResponse,
)
def get_import_rows(
    request: Request,
    import_id: uuid.UUID,
    session: DbSession,
    principal: CurrentPrincipal,
    store: Blobs,
    status: Annotated[str | None, Query(pattern="^(accepted|rejected)$")] = None,
) -> StreamingResponse:
    job = imports.get_job(session, principal, import_id)
    rows = (r for r in imports.result_rows(store, job) if status is None or r["status"] == status)
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(
            imports.report_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="import-{job.id}.csv"'},
        )
    return StreamingResponse((json.dumps(r) + "\n" for r in rows), media_type="application/x-ndjson")
