"""SLA clocks follow each task's changes, in the transaction of the change.

Which change does what (docs/sla.md, "Clocks"):
- created: first_response and resolution clocks start at the task's creation;
- the provider's first answer (start, ask_client, resolve, or a comment the client
  sees) stops first_response, and any next_update clock;
- waiting_on_client / waiting_on_third_party pause every running clock if the
  policy pauses on that cause; leaving the state resumes them;
- client_replied, or a client's comment, starts a next_update clock;
- resolve stops every clock; cancel stops them as cancelled; reopen resumes resolution;
- a priority or queue change gives each unsettled clock the target of its frozen
  policy for the new priority or queue, keeping the business time already used.

Time paused for the provider's own reasons (escalation, a hold) never pauses a clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.ids import new_id
from services.notify import outbox
from services.sla import escalations, policies
from services.sla.calendars import BusinessCalendar
from services.sla.models import (
    ClockState,
    Metric,
    Outcome,
    PauseCause,
    SegmentKind,
    SlaClock,
    SlaClockSegment,
    Trigger,
)
from services.sla.policies import CalendarTime, Terms
from services.work import history, ranking
from services.work.history import Actor
from services.work.lifecycle import Action, Side
from services.work.models import Priority, Task, TaskEvent, TaskStatus
from tenants.scoping import acting_for_tenant, insert_rows

PAUSING_STATES = {
    TaskStatus.WAITING_ON_CLIENT: PauseCause.WAITING_ON_CLIENT,
    TaskStatus.WAITING_ON_THIRD_PARTY: PauseCause.WAITING_ON_THIRD_PARTY,
}
RESPONSES = {Action.START, Action.ASK_CLIENT, Action.RESOLVE}
# The transitions that may move a clock, besides entering or leaving a pausing state;
# routing's own (enqueue, offer, accept, decline, assign, release) never do.
CLOCK_ACTIONS = RESPONSES | {Action.CANCEL, Action.REOPEN, Action.CLIENT_REPLIED}
_NEW_CLOCKS = "sla.new_clocks"  # session.info: bulk intake's clocks, from creating to created
MET_EVENT = "sla.met"  # a clock stopped within its target (breaches: the sweep's sla.breached)
log = structlog.get_logger()
Arithmetic = BusinessCalendar | CalendarTime


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def to_second(moment: datetime) -> datetime:
    """Clocks count whole seconds: each change is timed to the second it happened in."""
    return moment.replace(microsecond=0)


class Clockwork:
    """Changes one clock and appends each change to its log."""

    def __init__(self, session: Session, clock: SlaClock) -> None:
        self.session = session
        self.clock = clock
        self.calendar: Arithmetic = policies.business_calendar(session, clock.calendar_version_id)

    def _log(self, kind: SegmentKind, at: datetime, cause: str | None = None) -> None:
        self.session.add(SlaClockSegment(**segment_row(self.clock, kind, at, cause)))

    def _schedule(self) -> None:
        """Due and warning times of a running clock, from what is left of its target."""
        clock = self.clock
        assert clock.running_since is not None
        left = clock.target_seconds - clock.elapsed_seconds
        to_warning = max(clock.warn_seconds - clock.elapsed_seconds, 0)
        try:
            # Past its target already: due now (or when it breached: that stays its due time).
            clock.due_at = (
                self.calendar.add(clock.running_since, timedelta(seconds=left))
                if left > 0
                else clock.breached_at or clock.running_since
            )
            clock.warn_at = (
                self.calendar.add(clock.running_since, timedelta(seconds=to_warning))
                if clock.warned_at is None
                else None
            )
        except ValueError as exc:  # the calendar has no open time left: no due time to watch
            log.warning("sla.clock_unscheduled", clock_id=str(clock.id), reason=str(exc))
            clock.due_at = clock.warn_at = None

    def _fire_overdue(self, at: datetime) -> None:
        """A change that comes after a passed warning or due time the sweep has not reached
        yet fires them itself, dated when they passed, with their events and rules."""
        clock = self.clock
        if clock.state is not ClockState.RUNNING:
            return
        if clock.breached_at is None and clock.due_at is not None and clock.due_at < at:
            clock.breached_at = clock.settled_at = clock.due_at
            clock.outcome = Outcome.BREACHED
            self._fired(Trigger.BREACH, clock.due_at)
        if clock.warned_at is None and clock.warn_at is not None and clock.warn_at < at:
            clock.warned_at = clock.warn_at
            self._fired(Trigger.WARNING, clock.warn_at)

    def _fired(self, trigger: Trigger, at: datetime) -> None:
        clock = self.clock
        event_type, data = escalations.EVENT_TYPES[trigger], escalations.event_data(clock, at)
        outbox.emit(self.session, clock.tenant_id, event_type, clock.task_id, data)
        escalations.record(self.session, trigger, [self.clock])

    def _use_time_to(self, at: datetime) -> None:
        self._fire_overdue(at)
        clock = self.clock
        if clock.state is ClockState.RUNNING and clock.running_since is not None:
            clock.elapsed_seconds += _seconds(self.calendar.between(clock.running_since, at))
            clock.running_since = at
        elif clock.state is ClockState.PAUSED and clock.paused_since is not None:
            held = _seconds(self.calendar.between(clock.paused_since, at))
            if clock.pause_cause is PauseCause.WAITING_ON_CLIENT:
                clock.paused_client_seconds += held
            else:
                clock.paused_third_party_seconds += held
            clock.paused_since = at

    def start(self) -> None:
        self._schedule()
        self._log(SegmentKind.START, self.clock.started_at)

    def pause(self, at: datetime, cause: PauseCause) -> None:
        clock = self.clock
        self._use_time_to(at)
        clock.state, clock.pause_cause, clock.paused_since = ClockState.PAUSED, cause, at
        clock.running_since = clock.due_at = clock.warn_at = None
        self._log(SegmentKind.PAUSE, at, cause.value)

    def resume(self, at: datetime, cause: str | None = None) -> None:
        clock = self.clock
        self._use_time_to(at)
        clock.state, clock.running_since = ClockState.RUNNING, at
        clock.pause_cause = clock.paused_since = clock.stopped_at = None
        # A breach stays a breach; a reopened clock that had been met is unsettled again.
        clock.outcome = Outcome.BREACHED if clock.breached_at else None
        clock.settled_at = clock.breached_at
        self._schedule()
        self._log(SegmentKind.RESUME, at, cause)

    def stop(self, at: datetime, cause: str, cancelled: bool = False) -> None:
        clock = self.clock
        self._use_time_to(at)
        clock.state, clock.stopped_at = ClockState.STOPPED, at
        clock.running_since = clock.paused_since = clock.pause_cause = clock.warn_at = None
        if clock.breached_at is not None:
            clock.outcome, clock.settled_at = Outcome.BREACHED, clock.breached_at
        elif cancelled:
            clock.outcome, clock.settled_at = Outcome.CANCELLED, at
        else:
            clock.outcome, clock.settled_at = Outcome.MET, at
            outbox.emit(
                self.session, clock.tenant_id, MET_EVENT, clock.task_id, escalations.event_data(clock, at)
            )
        self._log(SegmentKind.STOP, at, cause)

    def retarget(self, at: datetime, target_seconds: int, warn_seconds: int, cause: str) -> None:
        clock = self.clock
        self._use_time_to(at)
        clock.target_seconds, clock.warn_seconds = target_seconds, warn_seconds
        if clock.state is ClockState.RUNNING:
            self._schedule()
        self._log(SegmentKind.RECOMPUTE, at, cause)


def _new_clock(
    session: Session,
    terms: Terms,
    task: dict[str, Any],
    metric: Metric,
    at: datetime,
    cycle: int = 0,
    calendar_versions: dict[uuid.UUID, uuid.UUID | None] | None = None,
) -> SlaClock | None:
    """A running clock for ``task`` (its column values), if the policy has a target for
    it. ``calendar_versions`` remembers the version found for each calendar (bulk intake)."""
    target = terms.target_for(metric, Priority(task["priority"]), task["queue_id"], task["kind_name"])
    if target is None:
        return None
    calendar_version_id = None
    if target.calendar_id is not None:
        known = calendar_versions if calendar_versions is not None else {}
        if target.calendar_id not in known:
            version = policies.calendar_version_in_force(session, target.calendar_id, at)
            known[target.calendar_id] = version.id if version else None
        calendar_version_id = known[target.calendar_id]
    return SlaClock(
        id=new_id(),
        tenant_id=task["tenant_id"],
        task_id=task["id"],
        queue_id=task["queue_id"],
        metric=metric,
        cycle=cycle,
        priority=task["priority"],
        policy_version_id=terms.version_id,
        calendar_version_id=calendar_version_id,
        target_seconds=target.seconds,
        warn_seconds=terms.warn_seconds(target.seconds),
        state=ClockState.RUNNING,
        started_at=at,
        running_since=at,
        elapsed_seconds=0,
        paused_client_seconds=0,
        paused_third_party_seconds=0,
    )


def _values_of(task: Task) -> dict[str, Any]:
    return {name: getattr(task, name) for name in ("id", "tenant_id", "queue_id", "priority", "kind_name")}


def clocks_of(session: Session, task: Task, *, lock: bool = False) -> list[SlaClock]:
    """A task's clocks; locked for a change, so the sweep skips them until the commit."""
    query = select(SlaClock).where(SlaClock.task_id == task.id).order_by(SlaClock.metric, SlaClock.cycle)
    if lock:
        query = query.with_for_update()
    return list(session.scalars(query))


class ClockObserver:
    """Subscribed to the history of tasks (``history.observe``)."""

    def recorded(self, session: Session, task: Task, actor: Actor, event: TaskEvent) -> None:
        if event.kind == "transitioned" and not _moves_clocks(event):
            return  # nothing to read: the next task's assignment costs no clock work
        # The clocks are the client's contract: an agent's action moves them, but the
        # agent's scope never reads them (``acting_for_tenant``).
        with acting_for_tenant(session, task.tenant_id):
            self._recorded(session, task, actor, event)

    def applied(self, session: Session, task: Task, actor: Actor, action: Action) -> None:
        return None

    def _recorded(self, session: Session, task: Task, actor: Actor, event: TaskEvent) -> None:
        """Tasks are created in bulk (``created_many``), whichever way they come in."""
        if event.kind not in ("transitioned", "updated", "commented"):
            return
        clocks = clocks_of(session, task, lock=True)
        started: list[SlaClock] = []
        if event.kind == "transitioned":
            started = self._transitioned(session, task, actor, event, clocks)
        elif event.kind == "updated":
            self._updated(session, task, event, clocks)
        elif not event.internal:
            started = self._commented(session, task, actor, event, clocks)
        _rank(task, clocks + started)  # its place follows its clocks (``work.ranking``)

    def creating_many(self, session: Session, tasks: list[dict[str, Any]]) -> bool:
        """Before bulk intake inserts ``tasks``: their clocks, kept for ``created_many`` on
        the session, and each task's place moved up by its earliest due time (in the
        values inserted: no row is written twice)."""
        clocks = _new_clocks(session, tasks)
        session.info[_NEW_CLOCKS] = ({values["id"] for values in tasks}, clocks)
        due = _earliest_due(clocks)
        moved = False
        for values in tasks:
            if (task_due := due.get(values["id"])) is not None:
                rank = ranking.rank_at(values["created_at"], values["priority"], None, task_due)
                if rank < values["rank_at"]:
                    values["rank_at"], moved = rank, True
        return moved

    def created_many(self, session: Session, tasks: list[dict[str, Any]]) -> None:
        inserted = {values["id"] for values in tasks}  # those whose reference was taken are not
        prepared_for, prepared = session.info.pop(_NEW_CLOCKS, (set(), []))
        if not inserted <= prepared_for:  # not this batch's (one before it failed): made again
            prepared = _new_clocks(session, tasks)
        clocks = [clock for clock in prepared if clock.task_id in inserted]
        insert_rows(session, SlaClock, [_clock_row(clock) for clock in clocks])
        insert_rows(
            session, SlaClockSegment, [segment_row(c, SegmentKind.START, c.started_at) for c in clocks]
        )

    # ------------------------------------------------------------ the rules

    def _start(
        self, session: Session, task: Task, at: datetime, metrics: Iterable[Metric], cycle: int = 0
    ) -> list[SlaClock]:
        """Clocks start under the policy version in force when they start."""
        terms = policies.terms_in_force(session, task.tenant_id, at)
        if terms is None:
            return []
        waiting = PAUSING_STATES.get(task.status)  # a client's comment while the task waits
        started = []
        for metric in metrics:
            clock = _new_clock(session, terms, _values_of(task), metric, at, cycle)
            if clock is not None:
                session.add(clock)
                work = Clockwork(session, clock)
                work.start()
                if waiting is not None and waiting in terms.pause_on:
                    work.pause(at, waiting)
                started.append(clock)
        return started

    def _transitioned(
        self, session: Session, task: Task, actor: Actor, event: TaskEvent, clocks: list[SlaClock]
    ) -> list[SlaClock]:
        """The clocks the transition started (a client's reply starts next_update)."""
        assert event.action and event.from_status and event.to_status
        at, action = to_second(event.at), Action(event.action)
        source, target = TaskStatus(event.from_status), TaskStatus(event.to_status)
        started: list[SlaClock] = []
        if action is Action.CANCEL:
            for clock in _unsettled(clocks):
                Clockwork(session, clock).stop(at, "cancelled", cancelled=True)
            return started
        if source in PAUSING_STATES:
            for clock in clocks:
                if clock.state is ClockState.PAUSED:
                    Clockwork(session, clock).resume(at, action.value)
        if action in RESPONSES and actor.side is not Side.CLIENT:
            self._responded(session, clocks, at, action.value)
        if action is Action.RESOLVE:
            for clock in _unsettled(clocks):
                Clockwork(session, clock).stop(at, "resolved")
        elif action is Action.REOPEN:
            for clock in clocks:
                if clock.metric is Metric.RESOLUTION and clock.state is ClockState.STOPPED:
                    Clockwork(session, clock).resume(at, "reopened")
        elif action is Action.CLIENT_REPLIED:
            started = self._await_update(session, task, at, clocks)
        cause = PAUSING_STATES.get(target)
        if cause is not None:
            for clock in clocks:
                pauses = cause in policies.terms_by_id(session, clock.policy_version_id).pause_on
                if clock.state is ClockState.RUNNING and pauses:
                    Clockwork(session, clock).pause(at, cause)
        return started

    def _responded(self, session: Session, clocks: list[SlaClock], at: datetime, cause: str) -> None:
        for clock in clocks:
            if clock.metric is not Metric.RESOLUTION and clock.state is not ClockState.STOPPED:
                Clockwork(session, clock).stop(at, cause)

    def _await_update(
        self, session: Session, task: Task, at: datetime, clocks: list[SlaClock]
    ) -> list[SlaClock]:
        """A client's reply: the provider owes the next update (if the policy says so)."""
        updates = [c for c in clocks if c.metric is Metric.NEXT_UPDATE]
        if any(c.state is not ClockState.STOPPED for c in updates):
            return []
        return self._start(session, task, at, (Metric.NEXT_UPDATE,), cycle=len(updates) + 1)

    def _commented(
        self, session: Session, task: Task, actor: Actor, event: TaskEvent, clocks: list[SlaClock]
    ) -> list[SlaClock]:
        if actor.side is Side.CLIENT:
            if task.status not in (TaskStatus.RESOLVED, TaskStatus.CLOSED, TaskStatus.CANCELLED):
                return self._await_update(session, task, to_second(event.at), clocks)
        elif actor.side is not Side.SYSTEM:
            self._responded(session, clocks, to_second(event.at), "commented")
        return []

    def _updated(self, session: Session, task: Task, event: TaskEvent, clocks: list[SlaClock]) -> None:
        changed = [name for name in ("priority", "queue_id") if name in event.changes]
        if not changed:
            return
        for clock in _unsettled(clocks):
            terms = policies.terms_by_id(session, clock.policy_version_id)
            target = terms.target_for(clock.metric, task.priority, task.queue_id, task.kind_name)
            clock.priority, clock.queue_id = task.priority, task.queue_id
            if target is None:
                continue  # no target for the new priority or queue: the clock keeps its own
            Clockwork(session, clock).retarget(
                to_second(event.at), target.seconds, terms.warn_seconds(target.seconds), ",".join(changed)
            )


def _new_clocks(session: Session, tasks: list[dict[str, Any]]) -> list[SlaClock]:
    """The running clocks of new tasks (column values, all of one tenant), scheduled."""
    if not tasks:
        return []
    terms = policies.terms_in_force(session, tasks[0]["tenant_id"], tasks[0]["created_at"])
    if terms is None:
        return []
    calendar_versions: dict[uuid.UUID, uuid.UUID | None] = {}  # one lookup per batch
    clocks = [
        clock
        for values in tasks
        for metric in (Metric.FIRST_RESPONSE, Metric.RESOLUTION)
        if (
            clock := _new_clock(
                session, terms, values, metric, to_second(values["created_at"]), 0, calendar_versions
            )
        )
        is not None
    ]
    for clock in clocks:
        Clockwork(session, clock)._schedule()
    return clocks


def _earliest_due(clocks: Iterable[SlaClock]) -> dict[uuid.UUID, datetime]:
    """Each task's earliest due time among its running clocks."""
    due: dict[uuid.UUID, datetime] = {}
    for clock in clocks:
        if clock.state is ClockState.RUNNING and clock.due_at is not None:
            due[clock.task_id] = min(due.get(clock.task_id, clock.due_at), clock.due_at)
    return due


def _rank(task: Task, clocks: Iterable[SlaClock]) -> None:
    """The task's place in its queue, its SLA counted (``work.ranking``): its running
    clocks' earliest due time (none while they are paused or stopped)."""
    due = _earliest_due(clocks).get(task.id)
    task.rank_at = ranking.rank_at(task.created_at, task.priority, task.overflow_since, due)


def _moves_clocks(event: TaskEvent) -> bool:
    assert event.action and event.from_status and event.to_status
    return (
        Action(event.action) in CLOCK_ACTIONS
        or TaskStatus(event.from_status) in PAUSING_STATES
        or TaskStatus(event.to_status) in PAUSING_STATES
    )


def _unsettled(clocks: list[SlaClock]) -> list[SlaClock]:
    return [c for c in clocks if c.state is not ClockState.STOPPED]


_CLOCK_COLUMNS = [c.key for c in SlaClock.__table__.columns]


def _clock_row(clock: SlaClock) -> dict[str, Any]:
    return {name: getattr(clock, name) for name in _CLOCK_COLUMNS}


def segment_row(clock: SlaClock, kind: SegmentKind, at: datetime, cause: str | None = None) -> dict[str, Any]:
    """A log entry: the clock as it stands at ``at`` (bulk intake inserts them as rows)."""
    return {
        "id": new_id(),
        "tenant_id": clock.tenant_id,
        "clock_id": clock.id,
        "kind": kind,
        "at": at,
        "cause": cause,
        "elapsed_seconds": clock.elapsed_seconds,
        "target_seconds": clock.target_seconds,
        "due_at": clock.due_at,
    }


history.observe(ClockObserver())
