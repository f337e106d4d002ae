"""A process remembers a queue's tenant and kind, which never change: a task that names
its priority is taken in without reading its queue, and every request still decides
whether its caller sees that queue."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, func, select

from services.core.database import Database
from services.work import service
from services.work.known_queues import KNOWN_QUEUES, KnownQueue, KnownQueues
from services.work.models import Task
from services.work.schemas import TaskCreate
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller
from tests.factories import bearer, make_queue, make_tenant, principal_of, token


def _task(queue_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "queue_id": queue_id,
        "title": "Facture en double",
        "payload": {"description": "Le client a reçu deux fois la même facture."},
        **fields,
    }


class _Statements:
    def __init__(self, connection: Connection) -> None:
        self.seen: list[str] = []
        self._connection = connection

    def __enter__(self) -> _Statements:
        event.listen(self._connection, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self._connection, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement)

    def reading_queues(self) -> list[str]:
        return [s for s in self.seen if "FROM queues" in s]


def test_a_task_naming_its_priority_is_taken_in_without_reading_its_queue(
    client: TestClient, acme: Caller, queue_id: str, connection: Connection
) -> None:
    with _Statements(connection) as first:
        answer = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, priority="high"))
    assert answer.status_code == 201, answer.text
    with _Statements(connection) as again:
        answer = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, priority="low"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["priority"] == "low"
    assert len(first.reading_queues()) == 1 and again.reading_queues() == []


def test_a_task_without_priority_takes_its_queues_default_as_it_is_now(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    assert (
        client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, priority="low")).status_code
        == 201
    )
    changed = client.patch(
        f"/v1/queues/{queue_id}", headers=acme.headers, json={"default_priority": "urgent"}
    )
    assert changed.status_code == 200, changed.text
    answer = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id))
    assert answer.status_code == 201, answer.text
    assert answer.json()["priority"] == "urgent"


def test_a_remembered_queue_is_still_foreign_to_another_tenant(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    assert (
        client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, priority="high")).status_code
        == 201
    )
    assert KNOWN_QUEUES.get(uuid.UUID(queue_id)) is not None
    other = make_tenant(db)
    intruder = bearer(token(client, other.client_id, other.client_secret))
    answer = client.post(
        "/v1/tasks", headers=intruder, json=_task(queue_id, priority="high", external_ref="X-1")
    )
    assert answer.status_code == 404, answer.text
    assert answer.json()["errors"] == [{"pointer": "/queue_id", "message": "no such queue"}]
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert session.scalar(select(func.count()).select_from(Task).where(Task.external_ref == "X-1")) == 0


def test_a_queue_is_remembered_only_once_its_reader_commits(db: Database) -> None:
    tenant = make_tenant(db)
    principal = principal_of(tenant.organization)
    data = TaskCreate.model_validate(_task(str(make_queue(db, tenant.organization).id), priority="high"))
    for commit in (False, True):
        with db.session() as session:
            bind(session, principal.access)
            service.create_task(session, principal, data.model_copy(update={"external_ref": f"R-{commit}"}))
            if not commit:
                session.rollback()
        assert (KNOWN_QUEUES.get(data.queue_id) is not None) is commit


def test_a_process_remembers_a_bounded_number_of_queues() -> None:
    queues = KnownQueues(max_entries=2)
    known = [KnownQueue(uuid.uuid4(), uuid.uuid4(), "claim") for _ in range(3)]
    queues.remember(known)
    assert [queues.get(q.id) for q in known] == [None, known[1], known[2]]
