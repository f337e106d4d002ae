"""SLA clocks follow the task's life: start, pause by cause, resume, stop, retarget."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from services.core.database import Database
from services.sla.clocks import clocks_of
from services.sla.models import ClockState, Outcome, SlaClock, SlaClockSegment
from services.work import service as work
from services.work.models import CommentVisibility, Priority, Task
from services.work.schemas import TaskUpdate
from tenants.models import Organization
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import (
    OPERATOR,
    advance,
    make_org,
    make_policy,
    make_queue,
    make_task,
    principal_of,
)


def _clocks(db: Database, task: Task) -> dict[tuple[str, int], SlaClock]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return {(c.metric.value, c.cycle): c for c in clocks_of(session, task)}


def _log(db: Database, clock: SlaClock) -> list[tuple[str, str | None]]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        segments = session.scalars(
            select(SlaClockSegment).where(SlaClockSegment.clock_id == clock.id).order_by(SlaClockSegment.id)
        )
        return [(s.kind.value, s.cause) for s in segments]


def _client_with_policy(db: Database, **terms: Any) -> tuple[Organization, Any]:
    client = make_org(db, OrgKind.CLIENT)
    make_policy(db, client, **terms)
    return client, make_queue(db, client)


def test_a_task_under_a_policy_starts_first_response_and_resolution_clocks(db: Database) -> None:
    _client, queue = _client_with_policy(db)
    task = make_task(db, queue)
    clocks = _clocks(db, task)
    assert set(clocks) == {("first_response", 0), ("resolution", 0)}
    first, resolution = clocks[("first_response", 0)], clocks[("resolution", 0)]
    # Clocks count whole seconds: they start in the second the task arrived.
    assert first.state is ClockState.RUNNING and first.started_at == task.created_at.replace(microsecond=0)
    assert first.due_at == first.started_at + timedelta(hours=1)
    assert resolution.due_at == first.started_at + timedelta(hours=8)
    assert resolution.warn_at == first.started_at + timedelta(hours=6)  # 75% by default
    assert _log(db, first) == [("start", None)]


def test_a_task_without_a_policy_has_no_clock(db: Database) -> None:
    queue = make_queue(db, make_org(db, OrgKind.CLIENT))
    assert _clocks(db, make_task(db, queue)) == {}


def test_the_providers_first_answer_stops_first_response_as_met(db: Database) -> None:
    _client, queue = _client_with_policy(db)
    task = advance(db, make_task(db, queue), "assign", "start")
    clocks = _clocks(db, task)
    first = clocks[("first_response", 0)]
    assert first.state is ClockState.STOPPED and first.outcome is Outcome.MET
    assert first.settled_at == first.stopped_at
    assert _log(db, first) == [("start", None), ("stop", "start")]
    assert clocks[("resolution", 0)].state is ClockState.RUNNING


def test_waiting_on_the_client_pauses_resolution_and_the_reply_resumes_it(db: Database) -> None:
    _client, queue = _client_with_policy(db)
    task = advance(db, make_task(db, queue), "assign", "start", "ask_client")
    paused = _clocks(db, task)[("resolution", 0)]
    assert paused.state is ClockState.PAUSED and paused.pause_cause.value == "waiting_on_client"
    assert paused.due_at is None and paused.warn_at is None
    _client_acts(db, task, "client_replied")
    resumed = _clocks(db, task)[("resolution", 0)]
    assert resumed.state is ClockState.RUNNING
    held = resumed.running_since - paused.paused_since
    # The due time moves by exactly the time the client held the task (calendar time here).
    assert resumed.due_at == resumed.started_at + timedelta(hours=8) + held
    assert resumed.paused_client_seconds == int(held.total_seconds())
    assert _log(db, resumed) == [
        ("start", None),
        ("pause", "waiting_on_client"),
        ("resume", "client_replied"),
    ]


def test_a_policy_may_keep_the_clock_running_while_waiting_on_the_client(db: Database) -> None:
    _client, queue = _client_with_policy(db, pause_on=["waiting_on_third_party"])
    task = advance(db, make_task(db, queue), "assign", "start", "ask_client")
    assert _clocks(db, task)[("resolution", 0)].state is ClockState.RUNNING


def test_waiting_on_a_third_party_pauses_with_its_own_cause(db: Database) -> None:
    _client, queue = _client_with_policy(db)
    task = advance(db, make_task(db, queue), "assign", "start", "await_third_party")
    clock = _clocks(db, task)[("resolution", 0)]
    assert clock.state is ClockState.PAUSED and clock.pause_cause.value == "waiting_on_third_party"
    advance(db, task, "third_party_replied")
    resumed = _clocks(db, task)[("resolution", 0)]
    assert resumed.state is ClockState.RUNNING
    assert resumed.paused_client_seconds == 0


def test_the_providers_own_escalation_never_pauses_a_clock(db: Database) -> None:
    _client, queue = _client_with_policy(db)
    task = advance(db, make_task(db, queue), "assign", "start", "escalate")
    clock = _clocks(db, task)[("resolution", 0)]
    assert clock.state is ClockState.RUNNING and clock.due_at == clock.started_at + timedelta(hours=8)


def test_resolving_stops_resolution_and_reopening_resumes_it(db: Database) -> None:
    _client, queue = _client_with_policy(db)
    task = advance(db, make_task(db, queue), "assign", "start", "resolve")
    stopped = _clocks(db, task)[("resolution", 0)]
    assert stopped.state is ClockState.STOPPED and stopped.outcome is Outcome.MET
    _client_acts(db, task, "reopen")
    reopened = _clocks(db, task)[("resolution", 0)]
    assert reopened.state is ClockState.RUNNING and reopened.outcome is None and reopened.settled_at is None
    # The time used before the resolution still counts.
    assert reopened.elapsed_seconds == stopped.elapsed_seconds
    assert _log(db, reopened)[-1] == ("resume", "reopened")


def test_cancelling_settles_every_clock_as_cancelled(db: Database) -> None:
    _client, queue = _client_with_policy(db)
    task = make_task(db, queue)
    _client_acts(db, task, "cancel")
    assert {c.outcome for c in _clocks(db, task).values()} == {Outcome.CANCELLED}


def test_a_priority_change_gives_the_target_of_the_frozen_policy(db: Database) -> None:
    targets = [
        {"metric": "resolution", "minutes": 480, "business_time": False},
        {"metric": "resolution", "priority": "urgent", "minutes": 60, "business_time": False},
    ]
    client, queue = _client_with_policy(db, targets=targets)
    task = make_task(db, queue)
    # A later version of the policy does not apply to a clock that already started.
    _new_policy_version(db, client, [{"metric": "resolution", "minutes": 5, "business_time": False}])
    with db.session() as session:
        principal = principal_of(client)
        bind(session, principal.access)
        work.update_task(session, principal, task.id, TaskUpdate(priority=Priority.URGENT), None)
    clock = _clocks(db, task)[("resolution", 0)]
    assert clock.target_seconds == 3600 and clock.priority is Priority.URGENT
    assert clock.due_at == clock.running_since + timedelta(seconds=3600 - clock.elapsed_seconds)
    assert _log(db, clock)[-1] == ("recompute", "priority")


def test_a_queue_target_wins_over_the_general_one(db: Database) -> None:
    client = make_org(db, OrgKind.CLIENT)
    queue = make_queue(db, client)
    other = make_queue(db, client)
    make_policy(
        db,
        client,
        targets=[
            {"metric": "resolution", "minutes": 480, "business_time": False},
            {"metric": "resolution", "queue_id": str(queue.id), "minutes": 120, "business_time": False},
        ],
    )
    assert _clocks(db, make_task(db, queue))[("resolution", 0)].target_seconds == 7200
    assert _clocks(db, make_task(db, other))[("resolution", 0)].target_seconds == 28800


def test_a_client_reply_starts_a_next_update_clock_that_the_provider_answer_stops(db: Database) -> None:
    targets = [
        {"metric": "resolution", "minutes": 480, "business_time": False},
        {"metric": "next_update", "minutes": 30, "business_time": False},
    ]
    client, queue = _client_with_policy(db, targets=targets)
    task = advance(db, make_task(db, queue), "assign", "start", "ask_client")
    _client_acts(db, task, "client_replied")
    update = _clocks(db, task)[("next_update", 1)]
    assert update.state is ClockState.RUNNING and update.target_seconds == 1800
    with db.session() as session:
        bind(session, AccessScope.everything())
        work.add_comment(session, OPERATOR, task.id, "We are on it.", CommentVisibility.CLIENT)
    answered = _clocks(db, task)[("next_update", 1)]
    assert answered.outcome is Outcome.MET and _log(db, answered)[-1] == ("stop", "commented")
    # The next reply of the client owes the next update.
    with db.session() as session:
        principal = principal_of(client)
        bind(session, principal.access)
        work.add_comment(session, principal, task.id, "Any news?", CommentVisibility.CLIENT)
    assert _clocks(db, task)[("next_update", 2)].state is ClockState.RUNNING


def test_bulk_intake_starts_the_clocks_of_each_task(db: Database, settings: Any) -> None:
    from tests.factories import make_import

    _client, queue = _client_with_policy(db)
    content = b"title,description\nOne,first\nTwo,second\n"
    make_import(db, settings, queue, content)
    with db.session() as session:
        bind(session, AccessScope.everything())
        clocks = session.scalars(select(SlaClock).where(SlaClock.queue_id == queue.id)).all()
        assert sorted(c.metric.value for c in clocks) == ["first_response"] * 2 + ["resolution"] * 2
        assert all(c.due_at is not None for c in clocks)
        segments = session.scalars(
            select(SlaClockSegment).where(SlaClockSegment.clock_id.in_([c.id for c in clocks]))
        ).all()
        assert len(segments) == 4


def _client_acts(db: Database, task: Task, action: str) -> None:
    from services.work.lifecycle import Action
    from tenants import service as tenancy

    with db.session() as session:
        bind(session, AccessScope.everything())
        principal = principal_of(tenancy.get_organization(session, task.tenant_id))
        bind(session, principal.access)
        work.transition(session, principal, task.id, Action(action))


def _new_policy_version(db: Database, client: Organization, targets: list[dict[str, Any]]) -> None:
    from services.sla import definitions
    from services.sla.schemas import PolicyVersionIn

    with db.session() as session:
        bind(session, AccessScope.everything())
        policy = definitions.list_policies(session, OPERATOR)
        mine = next(p for p in policy if p.tenant_id == client.id)
        definitions.add_policy_version(session, OPERATOR, mine.id, PolicyVersionIn(targets=targets))


def test_a_change_after_the_due_time_fires_the_breach_dated_when_it_passed(db: Database) -> None:
    from services.notify.models import OutboxEvent
    from services.sla.clocks import Clockwork
    from services.sla.models import PauseCause

    _client, queue = _client_with_policy(db)
    task = make_task(db, queue)
    with db.session() as session:
        bind(session, AccessScope.everything())
        first = next(c for c in clocks_of(session, task, lock=True) if c.metric.value == "first_response")
        due = first.due_at
        assert due is not None
        # Two hours on, before any sweep came by: the change itself settles the breach.
        Clockwork(session, first).pause(first.started_at + timedelta(hours=2), PauseCause.WAITING_ON_CLIENT)
        assert first.breached_at == due and first.outcome is Outcome.BREACHED
        session.flush()
        events = session.scalars(
            select(OutboxEvent).where(OutboxEvent.subject_id == task.id, OutboxEvent.type.like("sla.%"))
        ).all()
        assert sorted(e.type for e in events) == ["sla.breached", "sla.warning"]
        assert next(e for e in events if e.type == "sla.breached").data["at"] == due.isoformat().replace(
            "+00:00", "Z"
        )


def test_a_next_update_clock_follows_the_policy_version_in_force_when_it_starts(db: Database) -> None:
    client, queue = _client_with_policy(db)  # version 1 has no next_update target
    task = advance(db, make_task(db, queue), "assign", "start", "ask_client")
    _new_policy_version(
        db,
        client,
        [
            {"metric": "resolution", "minutes": 480, "business_time": False},
            {"metric": "next_update", "minutes": 30, "business_time": False},
        ],
    )
    _client_acts(db, task, "client_replied")
    clocks = _clocks(db, task)
    assert clocks[("next_update", 1)].target_seconds == 1800
    assert clocks[("next_update", 1)].policy_version_id != clocks[("resolution", 0)].policy_version_id


def test_a_client_comment_while_the_task_waits_starts_a_paused_next_update(db: Database) -> None:
    targets = [
        {"metric": "resolution", "minutes": 480, "business_time": False},
        {"metric": "next_update", "minutes": 30, "business_time": False},
    ]
    client, queue = _client_with_policy(db, targets=targets)
    task = advance(db, make_task(db, queue), "assign", "start", "await_third_party")
    with db.session() as session:
        principal = principal_of(client)
        bind(session, principal.access)
        work.add_comment(session, principal, task.id, "Any news from the insurer?", CommentVisibility.CLIENT)
    update = _clocks(db, task)[("next_update", 1)]
    assert update.state is ClockState.PAUSED and update.pause_cause is not None
    assert update.pause_cause.value == "waiting_on_third_party"
