"""An import job enqueued twice (a retry, or the beat sweep meeting the worker) is
run by one worker only."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from services.core.database import Database
from services.core.settings import Settings
from services.work import imports
from services.work.models import Task
from services.work.storage import blob_store
from tenants.scoping import AccessScope, bind
from tests.factories import make_import, make_org, make_queue

pytestmark = pytest.mark.postgres


def test_two_workers_given_the_same_job_import_it_once(committed: Database, settings: Settings) -> None:
    queue = make_queue(committed, make_org(committed))
    rows = "".join(f"Ticket {i},Demande {i}\n" for i in range(500))
    job = make_import(committed, settings, queue, f"title,description\n{rows}".encode(), run=False)
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        imports.run_job(committed, blob_store(settings), job.id)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with committed.session() as session:
        bind(session, AccessScope.tenants({queue.tenant_id}))
        assert session.scalar(select(func.count()).select_from(Task)) == 500
