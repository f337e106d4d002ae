"""Readers of the outbox, each with its own cursor: every event read once per consumer,
in the order the events became visible, and no consumer held back by another."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from services.core.database import Database
from services.core.settings import Settings
from services.metering import recorder
from services.metering.models import UsageEvent
from services.notify import consumers, outbox, relay
from services.notify.models import DeliveryStatus, WebhookDelivery
from tenants.models import Organization
from tenants.scoping import AccessScope, bind
from tests.factories import advance, make_org, make_queue, make_task, make_webhook_endpoint
from tests.notify.receiver import Receiver


def _read(db: Database, consumer: str, batch: int = 1000) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """One read of ``consumer``, handled (its cursor moved and committed): the events' ids and data."""
    with db.session() as session:
        bind(session, AccessScope.everything())
        taken = consumers.read(session, consumer, batch)
        assert taken is not None, "no other reader of this consumer runs"
        taken.done()
        return [(event.id, event.data) for event in taken.events]


def _read_all(db: Database, consumer: str, batch: int = 1000) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    read: list[tuple[uuid.UUID, dict[str, Any]]] = []
    while True:
        found = _read(db, consumer, batch)
        read += found
        if len(found) < batch:
            return read


def _numbers(read: list[tuple[uuid.UUID, dict[str, Any]]], subject: uuid.UUID) -> list[int]:
    return [data["n"] for _, data in read if data.get("subject") == str(subject)]


def _deliveries(db: Database, endpoint_id: uuid.UUID) -> list[WebhookDelivery]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return list(
            session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
        )


def _numbered(db: Database, organization: Organization, subject: uuid.UUID, *numbers: int) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        for n in numbers:
            outbox.emit(session, organization.id, "test.numbered", subject, {"n": n, "subject": str(subject)})


def test_reading_for_metering_leaves_the_webhook_relay_its_events(db: Database) -> None:
    organization = make_org(db)
    endpoint = make_webhook_endpoint(db, organization)
    make_task(db, make_queue(db, organization))
    assert _read_all(db, consumers.METERING)
    with db.session() as session:
        bind(session, AccessScope.everything())
        while relay.fan_out(session):
            pass
    assert [d.event_type for d in _deliveries(db, endpoint.id)] == ["task.created"]


def test_fanning_out_webhooks_leaves_metering_its_events(db: Database) -> None:
    organization = make_org(db)
    make_webhook_endpoint(db, organization)
    task = make_task(db, make_queue(db, organization))
    advance(db, task, "assign", "start", "resolve")
    with db.session() as session:
        bind(session, AccessScope.everything())
        while relay.fan_out(session):
            pass
    assert _completions_metered(db, task.id) == 1


def _completions_metered(db: Database, task_id: uuid.UUID) -> int:
    """Runs the metering recorder to the end of the outbox: the task's completions metered."""
    with db.session() as session:
        bind(session, AccessScope.everything())
        while recorder.record_batch(session):
            pass
        mine = UsageEvent.task_id == task_id
        counted = select(func.count()).where(mine, UsageEvent.metric == "task_completed")
        return int(session.scalar(counted) or 0)


def test_each_consumer_reads_every_event_once(db: Database) -> None:
    organization, subject = make_org(db), uuid.uuid4()
    _numbered(db, organization, subject, 1, 2, 3)
    for consumer in consumers.CONSUMERS:
        assert _numbers(_read_all(db, consumer), subject) == [1, 2, 3]
        assert _numbers(_read_all(db, consumer), subject) == []


def test_a_failing_webhook_endpoint_does_not_hold_back_metering(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    organization = make_org(db)
    endpoint = make_webhook_endpoint(db, organization, url=receiver.url)
    receiver.fail_first = 1000  # the receiver is down
    task = make_task(db, make_queue(db, organization))
    advance(db, task, "assign", "start", "resolve")
    relay.run(db, settings.model_copy(update={"webhook_backoff_seconds": 60}), deadline_seconds=5)
    deliveries = _deliveries(db, endpoint.id)
    assert deliveries and all(d.status is DeliveryStatus.PENDING for d in deliveries)
    assert all(d.last_status_code == 503 for d in deliveries if d.attempts)
    assert _completions_metered(db, task.id) == 1


def test_the_events_of_one_transaction_are_read_in_the_order_they_were_written(db: Database) -> None:
    organization, subject = make_org(db), uuid.uuid4()
    _numbered(db, organization, subject, *range(50))
    assert _numbers(_read_all(db, consumers.METERING), subject) == list(range(50))


def test_small_batches_read_every_event_once_in_order_across_transactions(db: Database) -> None:
    organization, subject = make_org(db), uuid.uuid4()
    _numbered(db, organization, subject, 1, 2, 3, 4)
    _numbered(db, organization, subject, 5)
    _numbered(db, organization, subject, 6, 7)
    assert _numbers(_read_all(db, consumers.METERING, batch=3), subject) == [1, 2, 3, 4, 5, 6, 7]


def test_events_written_after_a_read_are_read_next(db: Database) -> None:
    organization, subject = make_org(db), uuid.uuid4()
    _numbered(db, organization, subject, 1)
    assert _numbers(_read_all(db, consumers.WEBHOOKS), subject) == [1]
    _numbered(db, organization, subject, 2)
    assert _numbers(_read_all(db, consumers.WEBHOOKS), subject) == [2]


def test_an_unknown_consumer_is_refused(db: Database) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        with pytest.raises(ValueError, match="unknown outbox consumer"):
            consumers.read(session, "analytics", 10)


# ------------------------------------------------------------------ concurrency (PostgreSQL)


def _read_until(
    db: Database, subject: uuid.UUID, count: int, seconds: float = 15.0
) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """Read until ``count`` events of ``subject`` are seen: a writing transaction still
    running anywhere in the cluster holds the reader back (it waits, never skips)."""
    seen: list[tuple[uuid.UUID, dict[str, Any]]] = []
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        seen += [(i, d) for i, d in _read_all(db, consumers.METERING) if d.get("subject") == str(subject)]
        if len(seen) >= count:
            return seen
        time.sleep(0.1)
    return seen


@pytest.mark.postgres
def test_an_event_whose_transaction_commits_late_is_not_passed_over(committed: Database) -> None:
    organization, subject = make_org(committed), uuid.uuid4()
    _read_all(committed, consumers.METERING)  # the cursor at the end of what is there
    with committed.session() as first:
        bind(first, AccessScope.everything())
        outbox.emit(first, organization.id, "test.numbered", subject, {"n": 1, "subject": str(subject)})
        first.flush()  # the first transaction writes first...
        _numbered(committed, organization, subject, 2)  # ...a later one writes and commits
        passed = _read_all(committed, consumers.METERING)
        assert _numbers(passed, subject) == []  # the later event waits for the earlier one
    seen = _read_until(committed, subject, 2)
    assert _numbers(seen, subject) == [1, 2]
    assert _numbers(_read_all(committed, consumers.METERING), subject) == []  # each once


@pytest.mark.postgres
def test_a_second_reader_of_a_consumer_finds_it_busy_and_others_free(committed: Database) -> None:
    with committed.session() as first:
        bind(first, AccessScope.everything())
        assert consumers.read(first, consumers.METERING, 10) is not None
        with committed.session() as second:
            bind(second, AccessScope.everything())
            assert consumers.read(second, consumers.METERING, 10) is None  # the first holds the cursor
            assert consumers.read(second, consumers.WEBHOOKS, 10) is not None
