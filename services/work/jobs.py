"""Celery jobs of work intake."""

from __future__ import annotations

import uuid

from services.core.background import celery_app, database, unit_of_work
from services.core.settings import get_settings
from services.work import idempotency, imports, service
from services.work.storage import blob_store
from tenants.scoping import AccessScope


@celery_app.task(name="work.purge_idempotency_records")
def purge_idempotency_records() -> int:
    with unit_of_work(AccessScope.everything()) as session:
        return idempotency.purge_expired(session)


@celery_app.task(name="work.detect_languages")
def detect_languages() -> int:
    """Tasks submitted without a language get one here, in the worker (its model is ~90 MiB)."""
    done = 0
    while True:
        with unit_of_work(AccessScope.everything()) as session:
            found = service.detect_pending_languages(session)
        done += found
        if found < service.LANGUAGE_BATCH:
            return done


@celery_app.task(name="work.run_import")
def run_import(import_id: str) -> None:
    imports.run_job(database(), blob_store(get_settings()), uuid.UUID(import_id))


@celery_app.task(name="work.resume_imports")
def resume_imports() -> int:
    """Runs the jobs whose enqueue was lost while the broker was down, and carries on
    the ones whose worker died (from their last committed batch)."""
    with unit_of_work(AccessScope.everything()) as session:
        waiting = imports.pending_jobs(session)
        stalled = imports.stalled_jobs(session)
    store = blob_store(get_settings())
    for import_id in waiting:
        imports.run_job(database(), store, import_id)
    for import_id, heartbeat in stalled:
        imports.resume_stalled(database(), store, import_id, heartbeat)
    return len(waiting) + len(stalled)
