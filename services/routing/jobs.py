"""Celery jobs of routing."""

from __future__ import annotations

from services.core.background import celery_app, unit_of_work
from services.routing import offers, relaxation, traces
from tenants.scoping import AccessScope


@celery_app.task(name="routing.purge_decisions")
def purge_decisions() -> int:
    with unit_of_work(AccessScope.everything()) as session:
        return traces.purge_old_decisions(session)


@celery_app.task(name="routing.push_sweep")
def push_sweep() -> dict[str, int]:
    """Offers made, expired and rescinded (push mode); overlapping sweeps skip each
    other's rows (SKIP LOCKED)."""
    with unit_of_work(AccessScope.everything()) as session:
        return offers.sweep(session)


@celery_app.task(name="routing.relax")
def relax() -> int:
    """Waiting tasks whose SLA time left fell under their queue's relaxation threshold."""
    with unit_of_work(AccessScope.everything()) as session:
        return relaxation.mark_at_risk(session)
