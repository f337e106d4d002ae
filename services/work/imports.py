"""Bulk files: small ones answered at once, large ones imported by a worker as a job.

The job's file is kept in the blob store; its per-row results are written there
too, as NDJSON, while it runs. A job is claimed by one worker only (a guarded
UPDATE from pending to running), so two workers never import a file twice.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.core.database import Database, affected_rows
from services.core.errors import DomainError, NotFound, ValidationFailed
from services.core.time import utcnow
from services.work import bulk, kinds
from services.work.history import Actor
from services.work.lifecycle import Side
from services.work.models import ImportJob, ImportStatus, Queue
from services.work.queues import queue_for_intake
from services.work.storage import BlobStore
from tenants.principal import Permission, Principal
from tenants.scoping import AccessScope, bind, fetch

log = structlog.get_logger()


@dataclass(frozen=True)
class BulkRequest:
    queue_id: uuid.UUID
    file_format: bulk.FileFormat
    all_or_nothing: bool
    delimiter: str


def check_delimiter(delimiter: str) -> str:
    if delimiter not in bulk.DELIMITERS:
        raise ValidationFailed(errors=[_query_error("delimiter", f"one of {list(bulk.DELIMITERS)}")])
    return delimiter


def _query_error(name: str, message: str) -> Any:
    from services.core.errors import FieldError

    return FieldError(f"/query/{name}", message)


def import_now(
    session: Session, principal: Principal, request: BulkRequest, source: IO[bytes]
) -> bulk.Summary:
    """A small file, in the request's own transaction: with all_or_nothing, a bad row
    raises and the unit of work rolls back every row."""
    principal.require(Permission.TASKS_WRITE)
    queue = queue_for_intake(session, principal, request.queue_id)
    kind = kinds.require(session, queue.tenant_id, queue.task_kind)
    summary = bulk.import_records(
        session,
        Actor.of(principal),
        queue,
        bulk.records(source, request.file_format, kind, request.delimiter),
        request.file_format,
        detect_language=False,  # the worker detects it: the model stays out of the API process
        all_or_nothing=request.all_or_nothing,
        commit_batches=False,
    )
    if request.all_or_nothing and summary.rejected:
        raise ValidationFailed(
            f"{summary.rejected} row(s) rejected; nothing was imported (all_or_nothing)",
            extra={"accepted": 0, "rejected": summary.rejected, "rows": _rejected_only(summary.rows)},
        )
    return summary


def _rejected_only(rows: Iterable[bulk.RowOutcome]) -> list[dict[str, Any]]:
    return [row.as_json() for row in rows if row.task_id is None]


def start_job(
    session: Session,
    principal: Principal,
    request: BulkRequest,
    source: IO[bytes],
    size: int,
    store: BlobStore,
) -> ImportJob:
    """Keep the file and record the job; the caller enqueues it after the commit."""
    principal.require(Permission.TASKS_WRITE)
    queue = queue_for_intake(session, principal, request.queue_id)
    job_id = uuid.uuid4()
    key = f"{queue.tenant_id}/imports/{job_id}/source"
    store.put(key, _chunks(source), max_bytes=size)
    job = ImportJob(
        id=job_id,
        tenant_id=queue.tenant_id,
        queue_id=queue.id,
        file_format=request.file_format.value,
        delimiter=request.delimiter,
        all_or_nothing=request.all_or_nothing,
        source_key=key,
        size_bytes=size,
        created_by=principal.subject_id,
        actor_kind=principal.subject_kind,
        actor_name=principal.display_name,
    )
    session.add(job)
    session.flush()
    return job


def _chunks(source: IO[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    source.seek(0)
    while chunk := source.read(size):
        yield chunk


def get_job(session: Session, principal: Principal, job_id: uuid.UUID) -> ImportJob:
    principal.require(Permission.TASKS_READ)
    job = fetch(session, ImportJob, job_id)
    if job is None:
        raise NotFound("no such import")
    return job


def result_rows(store: BlobStore, job: ImportJob, only_rejected: bool = False) -> Iterator[dict[str, Any]]:
    """Every row's outcome, in file order, from the parts written batch by batch."""
    for part in range(job.result_parts):
        pending = b""
        for chunk in store.open(part_key(job.tenant_id, job.id, part)):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                row = json.loads(line)
                if not only_rejected or row["status"] == "rejected":
                    yield row


def report_csv(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The per-row report people open in a spreadsheet: one line per error, or per accepted row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "status", "task_id", "field", "message"])
    for row in rows:
        if row["status"] == "accepted":
            writer.writerow([row["row"], "accepted", row["id"], "", ""])
        for error in row.get("errors", []):
            writer.writerow([row["row"], "rejected", "", error["field"], error["message"]])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def claim(database: Database, job_id: uuid.UUID) -> bool:
    with database.session() as session:
        bind(session, AccessScope.everything())
        claimed = session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status == ImportStatus.PENDING)
            .values(status=ImportStatus.RUNNING, started_at=utcnow())
        )
        return affected_rows(claimed) == 1


def run_job(database: Database, store: BlobStore, job_id: uuid.UUID, *, in_worker: bool = True) -> None:
    """Import a pending job's file; does nothing if another worker has it. Outside the
    worker (a small portal upload, in the API process): one writer, and language
    detection left to the worker (its model stays out of the API process)."""
    if claim(database, job_id):
        _import(database, store, job_id, in_worker)


def resume_stalled(
    database: Database, store: BlobStore, job_id: uuid.UUID, heartbeat: datetime | None
) -> None:
    """Carry on a job whose worker died, from its last committed batch, if no one else has."""
    with database.session() as session:
        bind(session, AccessScope.everything())
        taken = session.execute(
            update(ImportJob)
            .where(
                ImportJob.id == job_id,
                ImportJob.status == ImportStatus.RUNNING,
                ImportJob.heartbeat_at.is_(None)
                if heartbeat is None
                else ImportJob.heartbeat_at == heartbeat,
            )
            .values(heartbeat_at=utcnow())
        )
        if affected_rows(taken) != 1:
            return
    _import(database, store, job_id, in_worker=True)


def _import(database: Database, store: BlobStore, job_id: uuid.UUID, in_worker: bool) -> None:
    with database.session() as session, _spare_session(database, in_worker) as spare:
        bind(session, AccessScope.everything())
        job = session.scalars(select(ImportJob).where(ImportJob.id == job_id)).one()
        bind(session, AccessScope.tenants({job.tenant_id}))
        if spare is not None:
            bind(spare, AccessScope.tenants({job.tenant_id}))
        try:
            _run(session, spare, store, job, detect_language=in_worker)
        except DomainError as exc:  # the file itself is unreadable: encoding, header
            _roll_back(session, spare)
            _finish(session, job_id, ImportStatus.FAILED, error=exc.detail or exc.title)
        except Exception:
            log.exception("import failed", import_id=str(job_id))
            _roll_back(session, spare)  # the failing batch and the one after: the batches before stay
            _finish(session, job_id, ImportStatus.FAILED, error=STOPPED)


def _roll_back(session: Session, spare: Session | None) -> None:
    if spare is not None:
        spare.rollback()
    session.rollback()


@contextmanager
def _spare_session(database: Database, in_worker: bool) -> Iterator[Session | None]:
    """A second session, to write two batches at once (``bulk.import_records``): in the
    worker, where the database takes two writers."""
    if not (in_worker and database.concurrent_writers):
        yield None
        return
    with database.session() as spare:
        yield spare


STOPPED = (
    "stopped by an internal error; the rows counted were imported (see the report); the operator was alerted"
)


def _run(
    session: Session, spare: Session | None, store: BlobStore, job: ImportJob, detect_language: bool
) -> None:
    """Batches commit with their progress and their part of the report, so a job that
    stops keeps what it did, and a resumed one starts at the first row not done."""
    job_id, tenant_id, all_or_nothing = job.id, job.tenant_id, job.all_or_nothing
    done, accepted_before, rejected_before, parts = (
        job.rows_done,
        job.accepted,
        job.rejected,
        job.result_parts,
    )
    queue = session.scalars(select(Queue).where(Queue.id == job.queue_id)).one()
    kind = kinds.require(session, tenant_id, queue.task_kind)
    actor = Actor(job.actor_kind, job.created_by, job.actor_name, Side.CLIENT)
    file_format = bulk.FileFormat(job.file_format)
    with tempfile.TemporaryFile() as source:
        for chunk in store.open(job.source_key):
            source.write(chunk)
        source.seek(0)
        bulk.check_readable(source, file_format, kind, job.delimiter)

        def on_batch(writing: Session, summary: bulk.Summary) -> None:
            nonlocal parts
            lines = [row.json_line() for row in summary.rows if not all_or_nothing or row.task_id is None]
            store.put(part_key(tenant_id, job_id, parts), [b"".join(lines)], max_bytes=2**40)
            parts += 1
            summary.rows.clear()  # written out: memory stays flat on a large file
            writing.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    rows_done=done + summary.accepted + summary.rejected,
                    accepted=0 if all_or_nothing else accepted_before + summary.accepted,
                    rejected=rejected_before + summary.rejected,
                    result_parts=parts,
                    heartbeat_at=utcnow(),
                )
            )

        # Closed here, while its file is open, even when a batch fails half-way.
        with closing(bulk.records(source, file_format, kind, job.delimiter)) as records:
            summary = bulk.import_records(
                session,
                actor,
                queue,
                itertools.islice(records, done, None),
                file_format,
                detect_language=detect_language,
                all_or_nothing=all_or_nothing,
                on_batch=on_batch,
                spare=spare,
            )
    if all_or_nothing and summary.rejected:
        session.rollback()
        _finish(
            session,
            job_id,
            ImportStatus.FAILED,
            error="rows rejected; nothing imported (all_or_nothing)",
            rows_done=summary.rejected + summary.accepted,
            accepted=0,
            rejected=summary.rejected,
            result_parts=parts,
        )
    else:
        _finish(session, job_id, ImportStatus.SUCCEEDED)


def part_key(tenant_id: uuid.UUID, job_id: uuid.UUID, part: int) -> str:
    return f"{tenant_id}/imports/{job_id}/rows-{part:06d}.ndjson"


def _finish(session: Session, job_id: uuid.UUID, status: ImportStatus, **values: Any) -> None:
    session.execute(
        update(ImportJob).where(ImportJob.id == job_id).values(status=status, finished_at=utcnow(), **values)
    )
    session.commit()


def stalled_jobs(session: Session, quiet_seconds: float = 600) -> list[tuple[uuid.UUID, datetime | None]]:
    """Running jobs with no progress for a while: their worker died (the sweep resumes them)."""
    cutoff = utcnow() - timedelta(seconds=quiet_seconds)
    quiet = or_(
        ImportJob.heartbeat_at < cutoff, ImportJob.heartbeat_at.is_(None) & (ImportJob.started_at < cutoff)
    )
    found = session.execute(
        select(ImportJob.id, ImportJob.heartbeat_at).where(ImportJob.status == ImportStatus.RUNNING, quiet)
    ).all()
    return [(job_id, heartbeat) for job_id, heartbeat in found]


def pending_jobs(session: Session, older_than_seconds: float = 10) -> list[uuid.UUID]:
    """Jobs whose enqueue was lost (broker down at upload time): the beat sweep runs them."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return list(
        session.scalars(
            select(ImportJob.id)
            .where(ImportJob.status == ImportStatus.PENDING, ImportJob.created_at <= cutoff)
            .order_by(ImportJob.id)
        )
    )
