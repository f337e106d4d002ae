"""Task intake asks for the tenant's SLA policy with every task: a process keeps the
tenant's policy versions under its configuration epoch, which every transaction reads
as it begins, and reads them again only when the epoch has changed (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, select

from services.core.database import Database
from services.sla import definitions
from services.sla.clocks import clocks_of
from services.sla.schemas import PolicyVersionIn
from services.work.models import Task
from tenants.models import Organization
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import OPERATOR, make_org, make_policy, make_queue, make_task

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres_only(is_postgres: bool) -> None:
    if not is_postgres:  # CI runs the suite a second time on PostgreSQL, where these run
        pytest.skip("the configuration epoch is PostgreSQL's")


@pytest.fixture
def policy_reads(connection: Connection) -> Iterator[list[str]]:
    """The reads of a tenant's policy versions for intake, from now on."""
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("SELECT sla_policy_versions.effective_from, sla_policy_versions.version"):
            reads.append(statement)

    event.listen(connection, "before_cursor_execute", seen)
    yield reads
    event.remove(connection, "before_cursor_execute", seen)


def _first_response_hours(db: Database, task: Task) -> float:
    with db.session() as session:
        bind(session, AccessScope.everything())
        clock = next(c for c in clocks_of(session, task) if c.metric.value == "first_response")
        assert clock.due_at is not None
        return (clock.due_at - clock.started_at) / timedelta(hours=1)


def _new_version(db: Database, client: Organization, first_response_minutes: int) -> int:
    """A policy version effective now; the tenant's epoch as the transaction saw it after."""
    with db.session() as session:
        bind(session, AccessScope.everything())
        policy = next(p for p in definitions.list_policies(session, OPERATOR) if p.tenant_id == client.id)
        targets = [
            {"metric": "first_response", "minutes": first_response_minutes, "business_time": False},
            {"metric": "resolution", "minutes": 480, "business_time": False},
        ]
        definitions.add_policy_version(session, OPERATOR, policy.id, PolicyVersionIn(targets=targets))
        return _epoch(session, client)


def _epoch(session: Any, client: Organization) -> int:
    return int(session.scalar(select(Organization.config_epoch).where(Organization.id == client.id)))


def test_a_task_reads_no_policy_while_its_tenants_configuration_is_unchanged(
    db: Database, policy_reads: list[str]
) -> None:
    client = make_org(db, OrgKind.CLIENT)
    make_policy(db, client)
    queue = make_queue(db, client)
    make_task(db, queue)
    read_for_the_first = len(policy_reads)
    second = make_task(db, queue)
    assert read_for_the_first == 1 and len(policy_reads) == 1
    assert _first_response_hours(db, second) == 1


def test_a_new_policy_version_applies_to_the_next_task(db: Database, policy_reads: list[str]) -> None:
    client = make_org(db, OrgKind.CLIENT)
    make_policy(db, client)
    queue = make_queue(db, client)
    first = make_task(db, queue)
    _new_version(db, client, first_response_minutes=120)
    second = make_task(db, queue)
    assert (_first_response_hours(db, first), _first_response_hours(db, second)) == (1, 2)
    assert len(policy_reads) == 2  # read again once, after the change


def test_an_epoch_is_never_given_twice_even_by_a_transaction_that_rolls_back(db: Database) -> None:
    """So a process can never take a rolled-back configuration's epoch for the current one's."""
    client = make_org(db, OrgKind.CLIENT)
    make_policy(db, client)
    rolled_back: list[int] = []
    with pytest.raises(RuntimeError), db.session() as session:
        bind(session, AccessScope.everything())
        policy = next(p for p in definitions.list_policies(session, OPERATOR) if p.tenant_id == client.id)
        targets = [{"metric": "first_response", "minutes": 30, "business_time": False}]
        definitions.add_policy_version(session, OPERATOR, policy.id, PolicyVersionIn(targets=targets))
        rolled_back.append(_epoch(session, client))
        raise RuntimeError("the change is abandoned")
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert _epoch(session, client) < rolled_back[0]
    assert _new_version(db, client, first_response_minutes=45) > rolled_back[0]
