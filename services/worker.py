"""The ``worker`` and ``beat`` process roles: the Celery application.

Jobs receive ids, open their own unit of work with the scope they act for, and
call one service function (each context's ``jobs.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from celery import Celery
from sqlalchemy.orm import Session

from services.core.database import Database
from services.core.settings import get_settings
from tenants.scoping import AccessScope, bind

settings = get_settings()

celery_app = Celery("bpo", broker=settings.resolved_broker_url())
celery_app.conf.update(
    task_ignore_result=True,
    task_acks_late=True,  # a job whose worker dies is delivered again
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    enable_utc=True,
    beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    beat_schedule={
        "identity.purge_expired_credentials": {
            "task": "identity.purge_expired_credentials",
            "schedule": 3600.0,
        },
        "work.purge_idempotency_records": {"task": "work.purge_idempotency_records", "schedule": 3600.0},
        # Relays may overlap (leases); an expired one is dropped, not piled up while workers are away.
        "notify.relay": {"task": "notify.relay", "schedule": 2.0, "options": {"expires": 10}},
    },
    imports=["services.identity.jobs", "services.work.jobs", "services.notify.jobs"],
)


@lru_cache(maxsize=1)
def database() -> Database:
    return Database(settings.resolved_database_url())


@contextmanager
def unit_of_work(scope: AccessScope) -> Iterator[Session]:
    """A job's own transaction, scoped to what it acts for."""
    with database().session() as session:
        bind(session, scope)
        yield session
