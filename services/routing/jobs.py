"""Celery jobs of routing."""

from __future__ import annotations

from services.core.background import celery_app, unit_of_work
from services.routing import traces
from tenants.scoping import AccessScope


@celery_app.task(name="routing.purge_decisions")
def purge_decisions() -> int:
    with unit_of_work(AccessScope.everything()) as session:
        return traces.purge_old_decisions(session)
