"""Celery jobs of the SLA engine: the sweep, run by beat every few seconds."""

from __future__ import annotations

from services.sla import sweep
from services.worker import celery_app, unit_of_work
from tenants.scoping import AccessScope


@celery_app.task(name="sla.sweep", ignore_result=True)
def sweep_clocks() -> int:
    """Batches until the warnings and breaches due are all fired; each batch commits."""
    fired = 0
    while True:
        with unit_of_work(AccessScope.everything()) as session:
            batch = sweep.sweep(session)
        fired += batch.warnings + batch.breaches
        if max(batch.warnings, batch.breaches) < sweep.BATCH:
            return fired
