"""Celery jobs of identity."""

from __future__ import annotations

from services.core.background import celery_app, unit_of_work
from services.core.settings import get_settings
from services.identity import service
from tenants.scoping import AccessScope


@celery_app.task(name="identity.purge_expired_credentials")
def purge_expired_credentials() -> dict[str, int]:
    with unit_of_work(AccessScope.everything()) as session:
        return service.purge_expired_credentials(session, get_settings())
