"""Readers of the outbox, each with its own cursor: webhooks, metering, later ones.

A consumer reads the events after its cursor in commit order, handles them and moves
the cursor in the same transaction, so each event is handled once per consumer and a
slow consumer never holds another back. Adding one is a name in ``CONSUMERS`` and a
cursor row (``position`` creates it at the start of the outbox).

The order must be the order in which events became visible, or a cursor would pass an
event whose transaction committed late (ids are taken before the commit):

- PostgreSQL: each event carries the id of the transaction that wrote it
  (``commit_order``, a column default, so the SLA sweep's raw SQL and the bulk
  statement set it too). A reader takes only events of transactions older than every
  transaction still running (``pg_snapshot_xmin``): all of them have ended, so no event
  can appear later behind the cursor. Its own transaction's events count when it is
  itself the oldest one running (a test's single transaction). A transaction left open
  holds the readers back (they wait; they never skip).
- SQLite: every transaction takes the write lock from its start (``BEGIN IMMEDIATE``),
  so the implicit ``rowid`` grows in commit order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, literal_column, or_, select, tuple_
from sqlalchemy.orm import Session

from services.core.time import utcnow
from services.notify.models import OutboxCursor, OutboxEvent

WEBHOOKS = "webhooks"
METERING = "metering"
CONSUMERS = (WEBHOOKS, METERING)
_NIL = uuid.UUID(int=0)


@dataclass(frozen=True)
class Read:
    """Events after a consumer's cursor, and where the cursor goes once they are handled."""

    cursor: OutboxCursor
    events: list[OutboxEvent]
    last: tuple[int, uuid.UUID] | None

    def done(self) -> None:
        """Move the cursor past these events (commits with the caller's transaction)."""
        if self.last is not None:
            self.cursor.after_order, self.cursor.after_id = self.last
            self.cursor.updated_at = utcnow()


def read(session: Session, consumer: str, batch: int) -> Read | None:
    """The next events for ``consumer``, or None when another instance of it holds the
    cursor (PostgreSQL: the cursor row is locked until that instance commits)."""
    if consumer not in CONSUMERS:
        raise ValueError(f"unknown outbox consumer {consumer}")
    cursor = _cursor(session, consumer)
    if cursor is None:
        return None
    postgres = session.get_bind().dialect.name == "postgresql"
    order: Any = OutboxEvent.commit_order if postgres else literal_column("outbox_events.rowid")
    query = select(OutboxEvent, order).order_by(order, OutboxEvent.id).limit(batch)
    if postgres:
        query = query.where(
            tuple_(OutboxEvent.commit_order, OutboxEvent.id) > tuple_(cursor.after_order, cursor.after_id),
            _committed_before_every_running_transaction(),
        )
    else:
        query = query.where(order > cursor.after_order)
    rows = session.execute(query).all()
    events = [event for event, _ in rows]
    last = (int(rows[-1][1]), rows[-1][0].id) if rows else None
    return Read(cursor, events, last)


def _committed_before_every_running_transaction() -> ColumnElement[bool]:
    xmin = literal_column("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint", BigInteger)
    own = literal_column("(pg_current_xact_id_if_assigned()::text)::bigint", BigInteger)
    return or_(OutboxEvent.commit_order < xmin, and_(OutboxEvent.commit_order == own, own == xmin))


def _cursor(session: Session, consumer: str) -> OutboxCursor | None:
    query = select(OutboxCursor).where(OutboxCursor.consumer == consumer).with_for_update(skip_locked=True)
    cursor = session.scalars(query).one_or_none()
    if cursor is not None:
        return cursor
    if session.get(OutboxCursor, consumer) is not None:  # locked by a running instance
        return None
    cursor = OutboxCursor(consumer=consumer, after_order=0, after_id=_NIL, updated_at=utcnow())
    session.add(cursor)
    session.flush()
    return cursor
