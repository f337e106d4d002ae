"""Celery jobs of the SLA engine: the sweep, run by beat every few seconds."""

from __future__ import annotations

from services.core.background import celery_app, unit_of_work
from services.sla import escalations, sweep
from tenants.scoping import AccessScope


@celery_app.task(name="sla.sweep", ignore_result=True)
def sweep_clocks() -> int:
    """Batches until the breaches and warnings due are all fired (each batch commits),
    then the task changes their escalations call for, each batch in its own transaction."""
    fired = 0
    while True:
        with unit_of_work(AccessScope.everything()) as session:
            batch = sweep.sweep(session)
        fired += batch.warnings + batch.breaches
        if max(batch.warnings, batch.breaches) < sweep.BATCH:
            break
    while True:
        with unit_of_work(AccessScope.everything()) as session:
            applied = escalations.apply_pending(session)
        if applied < escalations.PENDING_BATCH:
            return fired
