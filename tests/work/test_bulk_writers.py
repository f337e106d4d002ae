"""An import job writes two batches at once on PostgreSQL, and still commits them in the
order of the file: what is committed is always the file's first rows."""

from __future__ import annotations

import gc
import io
import sys
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.database import Database
from services.core.settings import Settings
from services.notify.models import OutboxEvent
from services.work import bulk, imports, kinds
from services.work.history import Actor
from services.work.models import ImportJob, Task, TaskEvent
from services.work.storage import blob_store
from tenants.scoping import AccessScope, bind
from tests.factories import make_import, make_org, make_queue

BATCH = 40


def _csv(rows: int, bad_every: int = 0) -> bytes:
    lines = ["title,description,external_ref"]
    for n in range(1, rows + 1):
        description = "" if bad_every and n % bad_every == 0 else f"Demande {n}"
        lines.append(f"Ticket {n},{description},W-{n}")
    return ("\n".join(lines) + "\n").encode()


def _job(database: Database, job_id: object) -> ImportJob:
    with database.session() as session:
        bind(session, AccessScope.everything())
        return session.scalars(select(ImportJob).where(ImportJob.id == job_id)).one()


def _count(database: Database, tenant_id: object, model: type) -> int:
    with database.session() as session:
        bind(session, AccessScope.tenants({tenant_id}))
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.postgres
def test_two_writers_take_every_good_row_and_report_in_the_order_of_the_file(
    committed: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert committed.concurrent_writers
    monkeypatch.setattr(bulk, "BATCH_ROWS", BATCH)
    queue = make_queue(committed, make_org(committed))
    job = make_import(committed, settings, queue, _csv(7 * BATCH + 13, bad_every=9))
    done = _job(committed, job.id)
    bad = (7 * BATCH + 13) // 9
    assert (done.status.value, done.rows_done, done.rejected) == ("succeeded", 7 * BATCH + 13, bad)
    assert done.accepted == 7 * BATCH + 13 - bad
    report = list(imports.result_rows(blob_store(settings), done))
    assert [row["row"] for row in report] == list(range(1, 7 * BATCH + 14))
    assert [row["row"] for row in report if row["status"] == "rejected"] == list(range(9, 7 * BATCH + 14, 9))
    for model in (Task, TaskEvent, OutboxEvent):  # each task with its history entry and its event
        assert _count(committed, queue.tenant_id, model) == done.accepted


@pytest.mark.postgres
def test_two_writers_write_at_once_and_count_and_commit_in_file_order(
    committed: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch is slow to count: the second, written meanwhile on the other
    connection, still waits for it before counting and committing."""
    monkeypatch.setattr(bulk, "BATCH_ROWS", BATCH)
    queue = make_queue(committed, make_org(committed))
    # (rows counted, writer) as each batch is counted. The writer is the session, not its
    # backend: a session that commits a batch may take another pooled connection for the next.
    seen: list[tuple[int, int]] = []

    def on_batch(writing: Session, summary: bulk.Summary) -> None:
        counted = summary.accepted + summary.rejected
        if counted == BATCH:
            time.sleep(0.5)
        seen.append((counted, id(writing)))

    with committed.session() as session, committed.session() as spare:
        for writer in (session, spare):
            bind(writer, AccessScope.tenants({queue.tenant_id}))
        kind = kinds.require(session, queue.tenant_id, queue.task_kind)
        summary = bulk.import_records(
            session,
            Actor.system("test"),
            queue,
            bulk.records(io.BytesIO(_csv(4 * BATCH + 7)), bulk.FileFormat.CSV, kind),
            bulk.FileFormat.CSV,
            detect_language=False,
            on_batch=on_batch,
            spare=spare,
        )
    assert summary.accepted == 4 * BATCH + 7
    assert [counted for counted, _backend in seen] == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH, 4 * BATCH + 7]
    assert len({writer for _counted, writer in seen}) == 2
    assert _count(committed, queue.tenant_id, Task) == 4 * BATCH + 7


@pytest.mark.postgres
def test_a_batch_after_one_that_fails_is_not_committed(
    committed: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third batch's report cannot be stored: the second writer, already writing the
    fourth, must not commit it, or a resumed job would skip or repeat rows."""
    monkeypatch.setattr(bulk, "BATCH_ROWS", BATCH)
    queue = make_queue(committed, make_org(committed))
    job = make_import(committed, settings, queue, _csv(6 * BATCH), run=False)
    store = blob_store(settings)
    in_the_way = store.root.joinpath(*imports.part_key(queue.tenant_id, job.id, 2).split("/"))
    in_the_way.mkdir(parents=True)
    (in_the_way / "occupied").write_text("a directory where the third part goes")
    imports.run_job(committed, store, job.id)
    stopped = _job(committed, job.id)
    assert (stopped.status.value, stopped.error) == ("failed", imports.STOPPED)
    assert (stopped.rows_done, stopped.accepted, stopped.result_parts) == (2 * BATCH, 2 * BATCH, 2)
    assert _count(committed, queue.tenant_id, Task) == 2 * BATCH
    assert _count(committed, queue.tenant_id, OutboxEvent) == 2 * BATCH


def test_the_database_of_a_tests_transaction_has_one_writer(db: Database) -> None:
    assert not db.concurrent_writers  # its sessions share one connection


def test_an_import_paces_the_process_and_the_last_one_restores_it() -> None:
    interval, collecting = sys.getswitchinterval(), gc.isenabled()
    with bulk.import_pace(pause_collector=True):
        with bulk.import_pace(pause_collector=True), bulk.import_pace():
            assert sys.getswitchinterval() == pytest.approx(bulk.HANDOFF_SECONDS)
            assert not gc.isenabled()
        assert not gc.isenabled()  # another worker's import still runs
        assert sys.getswitchinterval() == pytest.approx(bulk.HANDOFF_SECONDS)
    assert (sys.getswitchinterval(), gc.isenabled()) == (interval, collecting)
    with bulk.import_pace():  # in the API process: the collector keeps running
        assert gc.isenabled() == collecting
