"""Usage from the outbox: what the task lifecycle and the SLA engine emitted, metered
once, whatever reads it again."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import func, select

from services.core.database import Database
from services.core.time import utcnow
from services.metering import recorder
from services.metering.models import UsageEvent
from services.notify import consumers
from services.notify.models import OutboxCursor, OutboxEvent
from services.sla import sweep
from services.sla.clocks import clocks_of
from services.work.models import Queue, Task
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import advance, make_org, make_policy, make_queue, make_task

MICRO = Decimal("0.000001")


def _record(db: Database) -> int:
    """The recorder run to the end of the outbox, as its job does; the events read."""
    read = 0
    while True:
        with db.session() as session:
            bind(session, AccessScope.everything())
            batch = recorder.record_batch(session)
        read += batch
        if batch == 0:
            return read


def _usage(db: Database, task: Task) -> list[UsageEvent]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        query = select(UsageEvent).where(UsageEvent.task_id == task.id).order_by(UsageEvent.occurred_at)
        return list(session.scalars(query))


def _quantity(usage: list[UsageEvent], metric: str) -> Decimal:
    return sum((event.quantity for event in usage if event.metric == metric), Decimal(0))


def _segments(db: Database, task: Task) -> list[dict[str, Any]]:
    """The work segments the task's status events carry."""
    with db.session() as session:
        bind(session, AccessScope.everything())
        query = (
            select(OutboxEvent.data)
            .where(OutboxEvent.subject_id == task.id, OutboxEvent.type == "task.status_changed")
            .order_by(OutboxEvent.id)
        )
        return [data["worked"] for data in session.scalars(query) if data.get("worked")]


def _ledger_size(db: Database) -> int:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return int(session.scalar(select(func.count()).select_from(UsageEvent)) or 0)


def _queue(db: Database, **fields: Any) -> Queue:
    return make_queue(db, make_org(db, OrgKind.CLIENT), task_kind="support_ticket", **fields)


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_a_resolved_task_is_one_completion_of_its_kind(db: Database) -> None:
    queue = _queue(db)
    task = make_task(db, queue, language="fr")
    advance(db, task, "assign", "start", "resolve")
    _record(db)
    [completed] = [event for event in _usage(db, task) if event.metric == "task_completed"]
    assert completed.quantity == Decimal(1)
    assert (completed.tenant_id, completed.queue_id, completed.task_kind, completed.language) == (
        queue.tenant_id,
        queue.id,
        "support_ticket",
        "fr",
    )
    assert completed.source.startswith("outbox:")


def test_handle_time_is_the_time_in_progress_without_the_wait_for_the_client(db: Database) -> None:
    task = make_task(db, _queue(db))
    advance(db, task, "assign", "start")
    time.sleep(0.2)
    advance(db, task, "ask_client")  # waiting_on_client: the client holds the task
    time.sleep(0.6)
    advance(db, task, "client_replied")  # in progress again
    time.sleep(0.2)
    advance(db, task, "resolve")
    _record(db)

    first, second = _segments(db, task)
    paused = (_at(second["from"]) - _at(first["to"])).total_seconds()
    assert paused >= 0.6
    worked = Decimal(str(first["seconds"])) + Decimal(str(second["seconds"]))
    usage = _usage(db, task)
    handle = _quantity(usage, "handle_minutes")
    assert abs(handle - (worked / 60).quantize(MICRO, rounding=ROUND_HALF_EVEN)) <= MICRO  # rounded each
    elapsed = (_at(second["to"]) - _at(first["from"])).total_seconds()
    assert Decimal("0.4") / 60 <= handle <= Decimal(str(elapsed - paused + 0.01)) / 60
    assert [e.metric for e in usage].count("handle_minutes") == 2
    assert _quantity(usage, "task_completed") == 1


def test_reopening_and_resolving_again_is_not_a_second_completion(db: Database) -> None:
    task = make_task(db, _queue(db))
    advance(db, task, "assign", "start", "resolve")
    _record(db)
    advance(db, task, "reopen", "assign", "start", "resolve")
    _record(db)
    usage = _usage(db, task)
    assert [e.metric for e in usage].count("task_completed") == 1
    assert [e.metric for e in usage].count("handle_minutes") == 2  # the work after the reopening counts


def test_a_breach_fired_by_the_sweep_is_metered_at_its_due_time(db: Database) -> None:
    organization = make_org(db, OrgKind.CLIENT)
    make_policy(db, organization)  # first response within 1 hour
    task = make_task(db, make_queue(db, organization))
    with db.session() as session:  # on PostgreSQL the sweep writes its events in raw SQL
        bind(session, AccessScope.everything())
        assert sweep.sweep(session, now=utcnow() + timedelta(hours=2)).breaches == 1
        [clock] = [c for c in clocks_of(session, task) if c.metric.value == "first_response"]
        due_at = clock.due_at
    _record(db)
    [breached] = [event for event in _usage(db, task) if event.metric == "sla_breached"]
    assert breached.quantity == Decimal(1) and breached.occurred_at == due_at
    assert breached.queue_id == task.queue_id


def test_targets_met_are_metered(db: Database) -> None:
    organization = make_org(db, OrgKind.CLIENT)
    make_policy(db, organization)
    task = make_task(db, make_queue(db, organization))
    advance(db, task, "assign", "start", "resolve")  # first response and resolution in time
    _record(db)
    usage = _usage(db, task)
    assert _quantity(usage, "sla_met") == 2 and _quantity(usage, "sla_breached") == 0


def test_events_that_bill_nothing_are_read_and_record_nothing(db: Database) -> None:
    task = make_task(db, _queue(db))
    advance(db, task, "assign")
    assert _record(db) >= 2  # created, assigned
    assert _usage(db, task) == []


def test_running_the_recorder_again_records_nothing_twice(db: Database) -> None:
    task = make_task(db, _queue(db))
    advance(db, task, "assign", "start", "resolve")
    assert _record(db) > 0
    size = _ledger_size(db)
    assert _record(db) == 0
    assert _ledger_size(db) == size


def test_reading_the_outbox_again_from_its_start_records_nothing_twice(db: Database) -> None:
    """A recorder that crashed after recording but before its cursor moved reads again."""
    organization = make_org(db, OrgKind.CLIENT)
    make_policy(db, organization)
    task = make_task(db, make_queue(db, organization))
    advance(db, task, "assign", "start", "resolve", "reopen", "assign", "start", "resolve")
    _record(db)
    before = [(e.metric, e.quantity, e.idempotency_key) for e in _usage(db, task)]
    with db.session() as session:
        bind(session, AccessScope.everything())
        cursor = session.get(OutboxCursor, consumers.METERING)
        assert cursor is not None
        cursor.after_order, cursor.after_id = 0, uuid.UUID(int=0)
    assert _record(db) > 0
    assert [(e.metric, e.quantity, e.idempotency_key) for e in _usage(db, task)] == before


def test_a_recorder_reads_in_batches_until_the_outbox_ends(db: Database) -> None:
    queue = _queue(db)
    tasks = [make_task(db, queue, external_ref=f"B-{n}") for n in range(5)]
    for task in tasks:
        advance(db, task, "assign", "start", "resolve")
    read = 0
    while True:
        with db.session() as session:
            bind(session, AccessScope.everything())
            batch = recorder.record_batch(session, batch=3)
        read += batch
        if batch < 3:
            break
    assert read >= 5 * 4
    assert all(_quantity(_usage(db, task), "task_completed") == 1 for task in tasks)
