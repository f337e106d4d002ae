"""Celery jobs of notify: the outbox relay, run by beat every few seconds."""

from __future__ import annotations

from services.core.background import celery_app, database
from services.core.settings import get_settings
from services.notify import relay


@celery_app.task(name="notify.relay", ignore_result=True)
def relay_outbox() -> int:
    return relay.run(database(), get_settings())
