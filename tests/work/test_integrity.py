"""What the database itself holds, whatever the application does."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from services.core.database import Database
from services.work.models import Task, TaskEvent
from tenants.scoping import AccessScope, bind
from tests.factories import make_org, make_queue, make_task


def test_a_task_cannot_be_of_another_tenant_than_its_queue(db: Database) -> None:
    task = make_task(db, make_queue(db, make_org(db)))
    foreign_queue = make_queue(db, make_org(db))
    with pytest.raises(IntegrityError), db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(update(Task).where(Task.id == task.id).values(queue_id=foreign_queue.id))


def test_a_history_entry_cannot_be_of_another_tenant_than_its_task(db: Database) -> None:
    task = make_task(db, make_queue(db, make_org(db)))
    other = make_org(db)
    with pytest.raises(IntegrityError), db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(update(TaskEvent).where(TaskEvent.task_id == task.id).values(tenant_id=other.id))
