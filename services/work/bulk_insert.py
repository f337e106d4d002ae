"""New tasks inserted with their first history entry and their ``task.created`` event:
the three rows of every task taken in, one at a time (``service.submit``) or in bulk.

On PostgreSQL one statement inserts the tasks, skipping references already taken, and
derives the history entry and the outbox event of each task it inserted: no Python
work for the two derived rows, and one round trip. Bulk intake ``COPY``-s its batch into
a staging table the statement reads (one stream of rows instead of three, bench/intake.py);
one task is sent as the statement's parameters. Row-level security checks all three
inserts. Elsewhere (SQLite) the three sets of rows are inserted in turn.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from services.core.bulk_rows import CopyRows, copy_rows
from services.core.database import driver_cursor
from services.notify import outbox
from services.notify.models import OutboxEvent
from services.work import history
from services.work.documents import document_of, document_sql, plain
from services.work.history import Actor
from services.work.lifecycle import Action
from services.work.models import Task, TaskEvent, TaskStatus
from tenants.scoping import insert_rows, refuse_rows_outside_scope, stage_rows

CREATED_EVENT = "task.created"
UNIQUE_REFERENCE = ("tenant_id", "external_ref")

# The id of a row derived from a task: the task id's time and sequence, fresh random bits.
# It sorts with the task's creation time, as a Python ``new_id`` taken then would, so
# the task's later events (ids taken later) sort after it.
_SIBLING_ID = "encode(overlay(uuid_send(created.id) PLACING substring(uuid_send(gen_random_uuid()) FROM 9) FROM 9), 'hex')::uuid"  # noqa: E501

_INSERT_DERIVING = """
WITH created AS (
    INSERT INTO tasks ({columns}) {source}
    ON CONFLICT (tenant_id, external_ref) DO NOTHING
    RETURNING *
), entries AS (
    INSERT INTO task_events (id, tenant_id, task_id, at, kind, actor_kind, actor_id, actor_name, action,
                             from_status, to_status, changes, internal)
    SELECT {sibling_id}, created.tenant_id, created.id, created.created_at, %(kind)s, %(actor_kind)s,
           %(actor_id)s, %(actor_name)s, %(action)s, %(from_status)s, created.status,
           CAST(%(changes)s AS json), %(internal)s
    FROM created
), events AS (
    INSERT INTO outbox_events (id, tenant_id, type, subject_id, data, created_at)
    SELECT {sibling_id}, created.tenant_id, %(event_type)s, created.id, json_build_object('task', document),
           created.created_at
    FROM created CROSS JOIN LATERAL (SELECT {document}) AS document
)
{offered} EXCEPT ALL SELECT id FROM created
"""


def formatted(tasks: list[dict[str, Any]]) -> CopyRows | None:
    """``tasks`` in ``COPY`` format for ``insert_created``, which can be done beforehand."""
    return copy_rows(Task.__table__, tasks) if tasks else None  # type: ignore[arg-type]


def insert_created(
    session: Session, actor: Actor, tasks: list[dict[str, Any]], copy: CopyRows | None = None
) -> set[uuid.UUID]:
    """Insert ``tasks`` (column values, ids included), each with its history entry and
    event, unless their reference is taken: the ids of those refused, usually none.
    ``copy``: the same tasks, already ``formatted``. One task (the API's) is sent as
    parameters of the statement: one round trip for its three rows."""
    if not tasks:
        return set()
    if history.creating_many(session, tasks):
        copy = None  # formatted ahead with the values they had before
    if session.get_bind().dialect.name != "postgresql":
        return _insert_in_turn(session, actor, tasks)
    entry = _first_entry(actor, tasks[0])
    parameters: dict[str, Any] = {
        **{
            name: plain(entry[name])
            for name in ("kind", "actor_kind", "actor_id", "actor_name", "action", "from_status")
        },
        "changes": json.dumps(entry["changes"]),
        "internal": entry["internal"],
        "event_type": CREATED_EVENT,
    }
    stage = None
    if copy is None and len(tasks) == 1:
        refuse_rows_outside_scope(session, Task, tasks)
        names = list(tasks[0])
        columns = ", ".join(names)
        source = f"VALUES ({', '.join(f'%(task_{name})s' for name in names)})"
        offered = "SELECT %(task_id)s::uuid"
        parameters.update({f"task_{name}": _parameter(value) for name, value in tasks[0].items()})
    else:
        stage, staged = stage_rows(session, Task, tasks, copy)
        columns = staged.inserted_columns
        source = f"SELECT {staged.selected(stage)} FROM {stage}"  # noqa: S608
        offered = f"SELECT id FROM {stage}"  # noqa: S608
        parameters.update(staged.parameters)
    statement = _INSERT_DERIVING.format(
        columns=columns,
        source=source,
        sibling_id=_SIBLING_ID,
        document=document_sql("created"),
        offered=offered,
    )
    with driver_cursor(session.connection()) as cursor:
        cursor.execute(statement, parameters)
        refused = {row[0] for row in cursor.fetchall()}  # usually none: cheaper than every id inserted
        if stage is not None:
            cursor.execute(f"TRUNCATE {stage}")  # the next batch of the same transaction starts empty
    return refused


def _parameter(value: Any) -> Any:
    """A column value as psycopg sends it (JSON columns as text; the server casts)."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return plain(value)


def _first_entry(actor: Actor, task: dict[str, Any]) -> dict[str, Any]:
    """The history entry of a task's creation."""
    return history.entry(
        task["tenant_id"],
        task["id"],
        actor,
        "created",
        action=Action.ENQUEUE,
        from_status=TaskStatus.NEW,
        to_status=task["status"],
    )


def _insert_in_turn(session: Session, actor: Actor, tasks: list[dict[str, Any]]) -> set[uuid.UUID]:
    inserted = insert_rows(session, Task, tasks, unless_taken=UNIQUE_REFERENCE)
    refused = {values["id"] for values in tasks} - inserted
    created = [values for values in tasks if values["id"] in inserted]
    insert_rows(session, TaskEvent, [_first_entry(actor, values) for values in created])
    insert_rows(
        session,
        OutboxEvent,
        [
            outbox.row(values["tenant_id"], CREATED_EVENT, values["id"], {"task": document_of(values)})
            for values in created
        ],
    )
    return refused
