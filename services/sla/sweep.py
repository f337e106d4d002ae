"""The sweep: warnings and breaches whose time has come, each fired exactly once.

Clocks are found through the partial indexes on ``warn_at`` and ``due_at`` (only
running, unfired clocks are in them), claimed with ``FOR UPDATE SKIP LOCKED`` and
marked by the same statement, so two sweeps running at once take disjoint rows and
a marked clock leaves the index. The events and escalations of a batch commit with
its marks: a clock is fired once, or not at all if the batch rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, literal_column, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.core.time import utcnow
from services.notify.models import OutboxEvent
from services.sla import escalations
from services.sla.models import Outcome, SlaClock, Trigger
from tenants.scoping import insert_rows

BATCH = 5000  # per transaction: the claim holds these clocks locked for ~0.2 s
# A literal, not a bound value, so that every plan can use the partial indexes.
_RUNNING = SlaClock.state == literal_column("'running'")

_FIRED_COLUMNS = (
    SlaClock.id,
    SlaClock.tenant_id,
    SlaClock.task_id,
    SlaClock.queue_id,
    SlaClock.metric,
    SlaClock.cycle,
    SlaClock.priority,
    SlaClock.policy_version_id,
    SlaClock.target_seconds,
    SlaClock.due_at,
    SlaClock.warn_at,
)


@dataclass
class Fired:
    warnings: int = 0
    breaches: int = 0
    escalations: int = 0


@dataclass(frozen=True)
class Firing:
    """What a sweep does for one kind: which time it watches, which mark it sets."""

    trigger: Trigger
    moment: InstrumentedAttribute[Any]
    mark: InstrumentedAttribute[Any]
    settles: bool  # a breach settles the clock's outcome


WARNING = Firing(Trigger.WARNING, SlaClock.warn_at, SlaClock.warned_at, settles=False)
BREACH = Firing(Trigger.BREACH, SlaClock.due_at, SlaClock.breached_at, settles=True)


def sweep(session: Session, now: datetime | None = None, batch: int = BATCH) -> Fired:
    """One batch of breaches and one of warnings, with their events and escalation rules
    (the caller commits, then calls again while a batch came back full, then applies the
    escalations: ``escalations.apply_pending``). Runs in a session that sees every tenant."""
    now = now or utcnow()
    fire = _fire_in_one_statement if session.get_bind().dialect.name == "postgresql" else _fire
    fired = Fired()
    # Breaches first: a warning's escalation must not move a due time that has passed.
    for firing in (BREACH, WARNING):
        count, to_escalate = fire(session, firing, now, batch)
        if firing is WARNING:
            fired.warnings = count
        else:
            fired.breaches = count
        fired.escalations += escalations.record(session, firing.trigger, to_escalate)
    return fired


def _fire(session: Session, firing: Firing, now: datetime, batch: int) -> tuple[int, list[Any]]:
    """Claim, mark, and write the events through the ORM (SQLite)."""
    due = (
        select(SlaClock.id)
        .where(_RUNNING, firing.mark.is_(None), firing.moment < now)
        .order_by(firing.moment)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    values: dict[Any, Any] = {firing.mark: firing.moment}
    if firing.settles:
        values.update({SlaClock.outcome: Outcome.BREACHED, SlaClock.settled_at: firing.moment})
    statement = (
        update(SlaClock)
        .where(SlaClock.id.in_(due.scalar_subquery()))
        .values(values)
        .returning(*_FIRED_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    rows: list[Row[Any]] = list(session.execute(statement))
    moment = firing.moment.key
    insert_rows(
        session, OutboxEvent, [escalations.event_row(r, firing.trigger, getattr(r, moment)) for r in rows]
    )
    return len(rows), rows


# On PostgreSQL one statement claims the clocks, marks them, writes their events (ids
# from bpo_uuid7(), migration 0003; data as escalations.event_data) and returns only the
# clocks whose policy has escalation rules: no row travels to Python for nothing
# (bench/sla_sweep.py).
_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
_IN_ONE_STATEMENT = """
WITH due AS (
    SELECT id FROM sla_clocks
    WHERE state = 'running' AND {mark} IS NULL AND {moment} < :now
    ORDER BY {moment} LIMIT :batch FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE sla_clocks c SET {mark} = c.{moment}{settle}
    FROM due WHERE c.id = due.id
    RETURNING c.id, c.tenant_id, c.task_id, c.queue_id, c.metric, c.cycle, c.priority,
              c.policy_version_id, c.target_seconds, c.due_at, c.{moment} AS moment
), events AS (
    INSERT INTO outbox_events (id, tenant_id, type, subject_id, data, created_at)
    SELECT bpo_uuid7(), m.tenant_id, :event_type, m.task_id, json_build_object(
        'clock_id', m.id, 'task_id', m.task_id, 'queue_id', m.queue_id, 'metric', m.metric,
        'cycle', m.cycle, 'priority', m.priority, 'target_seconds', m.target_seconds,
        'due_at', {due_iso}, 'at', {moment_iso}), :created_at
    FROM marked m
)
SELECT (SELECT count(*) FROM marked) AS fired, e.*
FROM (SELECT 1) AS one LEFT JOIN (
    SELECT m.id, m.tenant_id, m.task_id, m.metric, m.due_at, m.policy_version_id
    FROM marked m JOIN sla_policy_versions v ON v.id = m.policy_version_id
    WHERE json_array_length(v.escalations) > 0
) AS e ON true
"""


def _fire_in_one_statement(
    session: Session, firing: Firing, now: datetime, batch: int
) -> tuple[int, list[Any]]:
    statement = _IN_ONE_STATEMENT.format(
        mark=firing.mark.key,
        moment=firing.moment.key,
        settle=", outcome = 'breached', settled_at = c.due_at" if firing.settles else "",
        due_iso=_ISO.format("m.due_at"),
        moment_iso=_ISO.format("m.moment"),
    )
    rows = session.execute(
        text(statement),
        {
            "now": now,
            "batch": batch,
            "event_type": escalations.EVENT_TYPES[firing.trigger],
            "created_at": utcnow(),
        },
    ).all()
    return rows[0].fired, [row for row in rows if row.id is not None]
