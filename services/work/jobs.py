"""Celery jobs of work intake."""

from __future__ import annotations

from services.work import idempotency
from services.worker import celery_app, unit_of_work
from tenants.scoping import AccessScope


@celery_app.task(name="work.purge_idempotency_records")
def purge_idempotency_records() -> int:
    with unit_of_work(AccessScope.everything()) as session:
        return idempotency.purge_expired(session)
