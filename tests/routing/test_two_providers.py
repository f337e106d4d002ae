"""Two providers engaged on one client queue: each works the queue's tasks, neither reads
the other's assignments, offers, internal notes or people, nor takes over the other's work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text

from services.core.database import Database
from services.routing.models import TaskAssignment
from services.work.models import TaskComment, TaskEvent
from tenants.grants import acting
from tenants.principal import OrgKind, Role
from tenants.scoping import AccessScope, bind
from tests.factories import (
    Tenant,
    bearer,
    make_agent,
    make_engagement,
    make_team,
    make_tenant,
    make_user,
    principal_of,
    token,
)
from tests.routing.world import Person, World, build


@dataclass
class Rival:
    provider: Tenant
    headers: dict[str, str]  # its API client
    team: object
    lead: Person


@pytest.fixture
def world(app: FastAPI, client: TestClient, db: Database) -> World:
    return build(app, client, db)


@pytest.fixture
def rival(app: FastAPI, client: TestClient, db: Database, world: World) -> Rival:
    """A Polish provider whose Kraków team serves the same queue (secondary)."""
    provider = make_tenant(db, OrgKind.PROVIDER, country="PL")
    team = make_team(db, provider.organization, name="Kraków", country="PL")
    make_engagement(db, world.queue, team, rank="secondary")
    make_agent(db, provider.organization, team)
    lead = Person(app, make_user(db, provider.organization, [Role.TEAM_LEAD]))
    headers = bearer(token(client, provider.client_id, provider.client_secret))
    return Rival(provider, headers, team, lead)


def _taken_and_noted(client: TestClient, world: World) -> str:
    """The Bucharest agent takes the ticket, notes something internal and asks the client."""
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    url = f"/v1/tasks/{task['id']}"
    internal = {"body": "Client déjà remboursé ?", "visibility": "internal"}
    note = world.person.post(f"{url}/comments", json=internal)
    assert note.status_code == 201, note.text
    assert world.person.post(f"{url}/transitions", json={"action": "start"}).status_code == 200
    asked = world.person.post(f"{url}/transitions", json={"action": "ask_client", "comment": "Numéro ?"})
    assert asked.status_code == 200, asked.text
    return str(task["id"])


def test_the_other_provider_reads_the_conversation_but_no_internal_note_nor_who_wrote(
    client: TestClient, world: World, rival: Rival
) -> None:
    task_id = _taken_and_noted(client, world)
    name = world.person.get("/v1/agents/me").json()["display_name"]
    comments = client.get(f"/v1/tasks/{task_id}/comments", headers=rival.headers)
    assert comments.status_code == 200, comments.text
    bodies = [c["body"] for c in comments.json()["items"]]
    assert bodies == ["Numéro ?"]  # the question to the client, not the internal note
    events = client.get(f"/v1/tasks/{task_id}/events", headers=rival.headers)
    assert events.status_code == 200 and name not in events.text and name not in comments.text
    commented = [e for e in events.json()["items"] if e["kind"] == "commented"]
    assert len(commented) == 1  # the question's entry; the internal note's is not there
    mine = world.person.get(f"/v1/tasks/{task_id}/comments").json()["items"]
    assert {c["body"] for c in mine} == {"Client déjà remboursé ?", "Numéro ?"}
    assert name in world.person.get(f"/v1/tasks/{task_id}/events").text


def test_the_other_provider_reads_no_assignment_of_the_first(
    db: Database, client: TestClient, world: World, rival: Rival
) -> None:
    task_id = uuid.UUID(_taken_and_noted(client, world))
    for provider, expected in ((rival.provider, 0), (world.provider, 1)):
        with db.session() as session:
            acting(session, principal_of(provider.organization))
            seen = session.scalars(select(TaskAssignment).where(TaskAssignment.task_id == task_id)).all()
            internal = session.scalars(
                select(TaskEvent).where(TaskEvent.task_id == task_id, TaskEvent.internal.is_(True))
            ).all()
            notes = session.scalars(select(TaskComment).where(TaskComment.visibility == "internal")).all()
            assert (len(seen), len(internal), len(notes)) == (expected, expected, expected)


def test_the_other_provider_neither_works_nor_takes_over_a_held_task(
    client: TestClient, world: World, rival: Rival
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    world.person.post("/v1/agents/me/next-task")
    url = f"/v1/tasks/{task['id']}"
    rival_agent = client.get("/v1/agents", headers=rival.headers).json()["items"][0]
    taken = rival.lead.post(f"{url}/assignment", json={"agent_id": rival_agent["id"]})
    assert taken.status_code == 409 and "another provider" in taken.json()["detail"], taken.text
    assert world.person.post(f"{url}/transitions", json={"action": "start"}).status_code == 200
    worked = client.post(f"{url}/transitions", headers=rival.headers, json={"action": "resolve"})
    assert worked.status_code == 409 and "another provider" in worked.json()["detail"], worked.text
    assert client.get(url, headers=world.as_client).json()["status"] == "in_progress"


def _as_provider(
    connection: Connection, provider_id: uuid.UUID, client_id: uuid.UUID, queue_id: uuid.UUID
) -> None:
    """The row-security settings of a provider granted one queue of the client, set by hand:
    the policies alone decide, no ORM criteria."""
    connection.execute(
        text(
            "SELECT set_config('bpo.all_tenants', 'off', true),"
            " set_config('bpo.tenant_ids', :p, true), set_config('bpo.grant_tenant_ids', :c, true),"
            " set_config('bpo.grant_queue_ids', :q, true)"
        ),
        {"p": str(provider_id), "c": str(client_id), "q": str(queue_id)},
    )


def test_row_security_keeps_one_providers_rows_from_the_other(
    db: Database, client: TestClient, world: World, rival: Rival, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("row-level security needs PostgreSQL")
    task_id = _taken_and_noted(client, world)
    client_id = world.client.organization.id
    for provider, expected in ((rival.provider, 0), (world.provider, 1)):
        with db.session() as session:
            bind(session, AccessScope.everything())  # no ORM criteria: the policies alone
            connection = session.connection()
            _as_provider(connection, provider.organization.id, client_id, world.queue.id)
            counts = [
                connection.execute(text(sql), {"t": task_id}).scalar_one()
                for sql in (
                    "SELECT count(*) FROM task_assignments WHERE task_id = :t",
                    "SELECT count(*) FROM task_events WHERE task_id = :t AND internal",
                    "SELECT count(*) FROM task_comments WHERE task_id = :t AND visibility = 'internal'",
                )
            ]
            assert counts == [expected] * 3, provider.organization.name
            public = "SELECT count(*) FROM task_comments WHERE task_id = :t AND visibility = 'client'"
            assert connection.execute(text(public), {"t": task_id}).scalar_one() == 1
            session.rollback()


def test_row_security_lets_no_provider_write_a_row_in_the_others_name(
    db: Database, client: TestClient, world: World, rival: Rival, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("row-level security needs PostgreSQL")
    task_id = uuid.UUID(_taken_and_noted(client, world))
    insert = text(
        "INSERT INTO task_comments (id, tenant_id, task_id, body, visibility, author_kind, author_name,"
        " author_side, provider_id, created_at) VALUES (gen_random_uuid(), :c, :t, 'Tout est réglé',"
        " 'client', 'user', 'Ana', 'provider', :named, now())"
    )
    for named, allowed in ((world.provider.organization.id, False), (rival.provider.organization.id, True)):
        with db.session() as session:
            bind(session, AccessScope.everything())
            connection = session.connection()
            _as_provider(
                connection, rival.provider.organization.id, world.client.organization.id, world.queue.id
            )
            values = {"c": world.client.organization.id, "t": task_id, "named": named}
            if allowed:
                connection.execute(insert, values)
            else:
                with pytest.raises(Exception, match="row-level security"), connection.begin_nested():
                    connection.execute(insert, values)
            session.rollback()
