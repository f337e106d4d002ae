"""The sweep fires each warning and breach once, emits its event and runs escalations."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from services.core.database import Database
from services.core.time import utcnow
from services.notify.models import OutboxEvent
from services.sla import escalations, sweep
from services.sla.clocks import clocks_of
from services.sla.models import Outcome, SlaClock, SlaEscalation
from services.work.models import Priority, Task
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import advance, make_org, make_policy, make_queue, make_task

HOUR = timedelta(hours=1)


def _sweep(db: Database, after: timedelta) -> sweep.Fired:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return sweep.sweep(session, now=utcnow() + after)


def _events(db: Database, task: Task) -> list[tuple[str, dict[str, Any]]]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.subject_id == task.id, OutboxEvent.type.like("sla.%"))
            .order_by(OutboxEvent.id)
        )
        return [(e.type, e.data) for e in found]


def _apply_escalations(db: Database) -> None:
    """What the sweep job does after its batches: the task changes, in their own transaction."""
    with db.session() as session:
        bind(session, AccessScope.everything())
        escalations.apply_pending(session)


def _policy_task(db: Database, **terms: Any) -> Task:
    client = make_org(db, OrgKind.CLIENT)
    make_policy(db, client, **terms)
    return make_task(db, make_queue(db, client))


def test_a_warning_then_a_breach_are_fired_once_each_with_their_events(db: Database) -> None:
    task = _policy_task(db)
    assert _sweep(db, timedelta(minutes=50)).warnings >= 1  # first response warns at 45 minutes
    again = _sweep(db, timedelta(minutes=50))
    assert (again.warnings, again.breaches) == (0, 0)
    assert [t for t, _ in _events(db, task)] == ["sla.warning"]
    _sweep(db, 2 * HOUR)
    types = [(t, d["metric"]) for t, d in _events(db, task)]
    assert types == [("sla.warning", "first_response"), ("sla.breached", "first_response")]
    assert _sweep(db, 2 * HOUR).breaches == 0
    with db.session() as session:
        bind(session, AccessScope.everything())
        first = next(c for c in clocks_of(session, task) if c.metric.value == "first_response")
    # The breach is dated when the due time passed, not when the sweep came by.
    assert first.breached_at == first.due_at == first.started_at + HOUR
    assert first.outcome is Outcome.BREACHED and first.settled_at == first.due_at


def test_a_breached_clock_stays_breached_when_the_task_is_resolved_later(db: Database) -> None:
    task = _policy_task(db)
    _sweep(db, 2 * HOUR)
    advance(db, task, "assign", "start")
    with db.session() as session:
        bind(session, AccessScope.everything())
        first = next(c for c in clocks_of(session, task) if c.metric.value == "first_response")
    assert first.state.value == "stopped" and first.outcome is Outcome.BREACHED


def test_a_paused_clock_is_never_breached(db: Database) -> None:
    advance(db, _policy_task(db), "assign", "start", "ask_client")
    assert _sweep(db, 100 * HOUR).breaches == 0  # first response stopped, resolution paused


def test_escalation_rules_run_on_breach(db: Database) -> None:
    escalations = [
        {"on": "breach", "metric": "first_response", "action": "raise_priority"},
        {"on": "breach", "metric": "first_response", "action": "overflow"},
        {"on": "warning", "action": "notify_account_manager"},
    ]
    task = _policy_task(db, escalations=escalations)
    _sweep(db, 2 * HOUR)
    _apply_escalations(db)
    with db.session() as session:
        bind(session, AccessScope.everything())
        raised = session.get(Task, task.id)
        assert raised is not None
        assert raised.priority is Priority.HIGH and raised.overflow_since is not None
        done = session.scalars(select(SlaEscalation).where(SlaEscalation.task_id == task.id)).all()
        assert sorted((e.trigger.value, e.action.value) for e in done) == [
            ("breach", "overflow"),
            ("breach", "raise_priority"),
            ("warning", "notify_account_manager"),
        ]
        # The raised priority gave the resolution clock the target for high priority (the same here).
        resolution = next(c for c in clocks_of(session, raised) if c.metric.value == "resolution")
        assert resolution.priority is Priority.HIGH


@pytest.mark.postgres
def test_the_sweep_finds_due_clocks_through_its_partial_index(db: Database, is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("PostgreSQL plans")
    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table would be scanned anyway
        plan = session.execute(
            text(
                "EXPLAIN SELECT id FROM sla_clocks WHERE state = 'running' AND breached_at IS NULL "
                "AND due_at < now() ORDER BY due_at LIMIT 1000 FOR UPDATE SKIP LOCKED"
            )
        ).scalars()
        assert "ix_sla_clocks_due" in "\n".join(plan)


@pytest.mark.postgres
def test_two_sweeps_at_once_fire_each_breach_once(committed: Database) -> None:
    client = make_org(committed, OrgKind.CLIENT)
    make_policy(committed, client)
    queue = make_queue(committed, client)
    tasks = [make_task(committed, queue, title=f"Claim {n}") for n in range(60)]
    later = utcnow() + 10 * HOUR
    fired: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        total = 0
        while True:
            with committed.session() as session:
                bind(session, AccessScope.everything())
                batch = sweep.sweep(session, now=later, batch=7)
            total += batch.breaches
            if batch.breaches == 0 and batch.warnings == 0:
                break
        fired.append(total)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(fired) == 120  # first response and resolution of each task
    with committed.session() as session:
        bind(session, AccessScope.everything())
        ids = [t.id for t in tasks]
        breaches = session.scalars(
            select(OutboxEvent.data).where(
                OutboxEvent.subject_id.in_(ids), OutboxEvent.type == "sla.breached"
            )
        ).all()
        assert len(breaches) == 120 and len({b["clock_id"] for b in breaches}) == 120
        assert (
            session.scalars(
                select(SlaClock.id).where(SlaClock.task_id.in_(ids), SlaClock.breached_at.is_(None))
            ).all()
            == []
        )


def test_two_clocks_warning_together_raise_the_priority_once(db: Database) -> None:
    task = _policy_task(db, escalations=[{"on": "warning", "action": "raise_priority"}])
    fired = _sweep(db, 7 * HOUR)  # both clocks past their warning (45 min and 6 h)
    assert fired.warnings == 2 and fired.escalations == 1
    _apply_escalations(db)
    with db.session() as session:
        bind(session, AccessScope.everything())
        raised = session.get(Task, task.id)
        assert raised is not None and raised.priority is Priority.HIGH


def test_an_escalation_changes_no_settled_task(db: Database) -> None:
    task = _policy_task(db, escalations=[{"on": "breach", "action": "raise_priority"}])
    _sweep(db, 2 * HOUR)
    advance(db, task, "assign", "start", "resolve")
    _apply_escalations(db)
    with db.session() as session:
        bind(session, AccessScope.everything())
        kept = session.get(Task, task.id)
        assert kept is not None and kept.priority is Priority.NORMAL
        done = session.scalars(select(SlaEscalation).where(SlaEscalation.task_id == task.id)).one()
        assert done.applied_at is not None and done.detail["changed"] is False
