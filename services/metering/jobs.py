"""Celery jobs of metering: the outbox recorder, run by beat every few seconds."""

from __future__ import annotations

from services.core.background import celery_app, unit_of_work
from services.metering import recorder
from tenants.scoping import AccessScope


@celery_app.task(name="metering.record", ignore_result=True)
def record_usage() -> int:
    """Batches until the outbox is read to its end (each batch commits)."""
    read = 0
    while True:
        with unit_of_work(AccessScope.everything()) as session:
            batch = recorder.record_batch(session)
        read += batch
        if batch < recorder.BATCH:
            return read
