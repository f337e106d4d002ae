"""The Celery application every context's ``jobs.py`` registers its jobs on, and
``enqueue`` for sending one after a commit.

Jobs receive ids, open their own unit of work with the scope they act for, and
call one service function. The ``worker`` and ``beat`` entry points
(``services/worker.py``) load every context's tables and jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import structlog
from celery import Celery
from kombu import Connection
from sqlalchemy.orm import Session

from services.core.database import Database
from services.core.settings import get_settings
from tenants.scoping import AccessScope, bind

settings = get_settings()
log = structlog.get_logger()

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
        "work.detect_languages": {
            "task": "work.detect_languages",
            "schedule": 5.0,
            "options": {"expires": 30},
        },
        "work.resume_imports": {"task": "work.resume_imports", "schedule": 30.0, "options": {"expires": 60}},
        # Relays may overlap (leases); an expired one is dropped, not piled up while workers are away.
        "notify.relay": {"task": "notify.relay", "schedule": 2.0, "options": {"expires": 10}},
        # Overlapping sweeps are safe (each clock is claimed once); a late one is dropped.
        "sla.sweep": {"task": "sla.sweep", "schedule": 5.0, "options": {"expires": 15}},
        "routing.purge_decisions": {"task": "routing.purge_decisions", "schedule": 3600.0},
        "routing.push_sweep": {"task": "routing.push_sweep", "schedule": 2.0, "options": {"expires": 10}},
        "routing.relax": {"task": "routing.relax", "schedule": 15.0, "options": {"expires": 30}},
        # One recorder at a time holds the metering cursor; the others find nothing to do.
        "metering.record": {"task": "metering.record", "schedule": 5.0, "options": {"expires": 15}},
        # Midnight in each contract's billing timezone comes on the hour or half hour somewhere.
        "billing.close_due": {"task": "billing.close_due", "schedule": 300.0, "options": {"expires": 600}},
        # Overlapping syncs are safe: each invoice is synced under its row lock.
        "billing.sync_stripe": {"task": "billing.sync_stripe", "schedule": 30.0, "options": {"expires": 60}},
    },
    imports=[
        "services.identity.jobs",
        "services.work.jobs",
        "services.notify.jobs",
        "services.sla.jobs",
        "services.routing.jobs",
        "services.metering.jobs",
        "services.billing.jobs",
    ],
)


@lru_cache(maxsize=1)
def database() -> Database:
    return Database.from_settings(settings)


@contextmanager
def unit_of_work(scope: AccessScope) -> Iterator[Session]:
    """A job's own transaction, scoped to what it acts for."""
    with database().session() as session:
        bind(session, scope)
        yield session


def enqueue(name: str, *args: str, broker_url: str | None = None) -> bool:
    """Send a job, called after the commit that it depends on. False when the broker is
    unreachable: the data is safe in the database and a beat sweep picks the work up."""
    try:
        with Connection(broker_url or settings.resolved_broker_url(), connect_timeout=3) as connection:
            celery_app.send_task(name, args=list(args), connection=connection, retry=False)
        return True
    except Exception:  # any broker failure; the sweep is the safety net
        log.warning("enqueue failed; the beat sweep will pick it up", job=name)
        return False
