"""A team lead hands a task being worked to another agent, and removes an agent from the
team: what they were given goes back to its queue, their offers are withdrawn, what they
are working must be handed over first; nothing stays stuck with someone who left."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.core.database import Database
from services.core.time import utcnow
from services.routing import offers
from services.routing.models import Offer, TaskAssignment
from tenants.principal import OrgKind, Role
from tenants.scoping import AccessScope, bind
from tests.factories import bearer, make_agent, make_tenant, make_user, token
from tests.routing.world import Person, World, build


@pytest.fixture
def world(app: FastAPI, client: TestClient, db: Database) -> World:
    return build(app, client, db)


@pytest.fixture
def colleague(app: FastAPI, db: Database, world: World) -> tuple[Any, Person]:
    """A second agent of the Bucharest team, online."""
    agent = make_agent(db, world.provider.organization, world.team)
    person = Person(app, agent.email)
    person.put("/v1/agents/me/presence", json={"presence": "online"})
    return agent, person


def _taken(client: TestClient, world: World, started: bool) -> dict[str, Any]:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == task["id"]
    if started:
        url = f"/v1/tasks/{task['id']}/transitions"
        assert world.person.post(url, json={"action": "start"}).status_code == 200
    return task


def _open_assignments(db: Database, task_id: str) -> list[Any]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        query = select(TaskAssignment.agent_id).where(
            TaskAssignment.task_id == uuid.UUID(task_id), TaskAssignment.ended_at.is_(None)
        )
        return list(session.scalars(query))


def test_a_task_in_progress_is_handed_over_as_it_is_and_the_other_agent_goes_on(
    client: TestClient, db: Database, world: World, colleague: tuple[Any, Person]
) -> None:
    task = _taken(client, world, started=True)
    url = f"/v1/tasks/{task['id']}"
    asked = world.person.post(f"{url}/transitions", json={"action": "ask_client", "comment": "Quel mois ?"})
    assert asked.status_code == 200
    other, person = colleague
    handed = client.post(f"{url}/assignment", headers=world.as_provider, json={"agent_id": str(other.id)})
    assert handed.status_code == 200, handed.text
    assert handed.json()["status"] == "waiting_on_client"  # as it was: the SLA stays paused
    assert _open_assignments(db, task["id"]) == [other.id]
    assert world.person.get("/v1/agents/me/tasks").json()["items"] == []
    assert [t["id"] for t in person.get("/v1/agents/me/tasks").json()["items"]] == [task["id"]]
    client.post(f"{url}/transitions", headers=world.as_client, json={"action": "client_replied"})
    refused = world.person.post(f"{url}/transitions", json={"action": "resolve"})
    assert refused.status_code == 404, refused.text  # no longer theirs: out of their sight
    assert person.post(f"{url}/transitions", json={"action": "resolve"}).status_code == 200
    trace = client.get(f"{url}/routing", headers=world.as_operator).json()
    assert trace["decisions"][-1]["step"] == "manual: handed over"
    events = client.get(f"{url}/events", headers=world.as_client).json()["items"]
    assert "handed_over" not in {e["kind"] for e in events}  # who works it is the provider's
    mine = client.get(f"{url}/events", headers=world.as_provider).json()["items"]
    assert [e["changes"]["assignee_id"][1] for e in mine if e["kind"] == "handed_over"] == [str(other.id)]


def test_removing_an_agent_gives_back_what_they_were_given_and_withdraws_their_offers(
    client: TestClient, db: Database, world: World
) -> None:
    roomy = client.patch(
        f"/v1/agents/{world.agent.id}", headers=world.as_provider, json={"capacity": {"*": 2}}
    )
    assert roomy.status_code == 200
    task = _taken(client, world, started=False)
    push_task = world.submit(client, title="Offert")
    with db.session() as session:  # the queue turns to push: the sweep offers the next task
        bind(session, AccessScope.everything())
        world.queue.mode = "push"
        session.merge(world.queue)
        session.flush()
        assert offers.sweep(session, utcnow())["offered"] == 1
    removed = client.delete(f"/v1/agents/{world.agent.id}", headers=world.as_provider)
    assert removed.status_code == 200, removed.text
    assert removed.json()["tasks_returned"] == 1
    for each in (task, push_task):
        seen = client.get(f"/v1/tasks/{each['id']}", headers=world.as_client).json()
        assert seen["status"] == "queued", seen
        assert _open_assignments(db, each["id"]) == []
    with db.session() as session:
        bind(session, AccessScope.everything())
        statuses = session.scalars(
            select(Offer.status).where(Offer.task_id == uuid.UUID(push_task["id"]))
        ).all()
        assert [s.value for s in statuses] == ["rescinded"]
    assert client.get(f"/v1/agents/{world.agent.id}", headers=world.as_provider).status_code == 404
    assert world.person.post("/v1/agents/me/next-task").status_code == 404  # no longer an agent
    events = client.get(f"/v1/tasks/{task['id']}/events", headers=world.as_operator).json()["items"]
    assert [(e["actor_kind"], e["actor_name"]) for e in events if e["action"] == "release"] == [
        ("system", "routing")
    ]


def test_an_agent_working_a_task_is_not_removed_until_it_is_handed_over(
    client: TestClient, db: Database, world: World, colleague: tuple[Any, Person]
) -> None:
    task = _taken(client, world, started=True)
    refused = client.delete(f"/v1/agents/{world.agent.id}", headers=world.as_provider)
    assert refused.status_code == 409, refused.text
    assert (
        refused.json()["tasks"] == [task["id"]] and "hand them to another agent" in refused.json()["detail"]
    )
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "in_progress"
    other, _person = colleague
    url = f"/v1/tasks/{task['id']}/assignment"
    assert client.post(url, headers=world.as_provider, json={"agent_id": str(other.id)}).status_code == 200
    name = world.person.get("/v1/agents/me").json()["display_name"]
    assert client.delete(f"/v1/agents/{world.agent.id}", headers=world.as_provider).status_code == 200
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "in_progress"
    events = client.get(f"/v1/tasks/{task['id']}/events", headers=world.as_operator).json()["items"]
    assert [e["actor_name"] for e in events if e["action"] == "start"] == [name]  # the history keeps it


def test_only_the_agents_own_provider_removes_them(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    rival = make_tenant(db, OrgKind.PROVIDER, country="PL")
    as_rival = bearer(token(client, rival.client_id, rival.client_secret))
    url = f"/v1/agents/{world.agent.id}"
    assert client.delete(url, headers=as_rival).status_code == 404
    assert client.delete(url, headers=world.as_client).status_code == 404
    fellow = Person(app, make_agent(db, world.provider.organization, world.team).email)
    assert fellow.http.delete(url, headers=fellow.headers).status_code == 403  # an agent is no lead
    assert client.get(url, headers=world.as_provider).status_code == 200


def test_a_lead_hands_over_and_removes_on_the_pages(
    app: FastAPI, client: TestClient, db: Database, world: World, colleague: tuple[Any, Person]
) -> None:
    task = _taken(client, world, started=True)
    lead = Person(app, make_user(db, world.provider.organization, [Role.TEAM_LEAD]))
    board = lead.http.get("/teams").text
    assert f'href="/teams/agents/{world.agent.id}/remove"' in board
    page = lead.http.get(f"/teams/agents/{world.agent.id}/remove")
    assert page.status_code == 200 and 'data-testid="problem"' in page.text and task["title"] in page.text
    form = {"csrf_token": lead.headers["X-CSRF-Token"]}
    refused = lead.http.post(f"/teams/agents/{world.agent.id}/remove", data=form, follow_redirects=False)
    assert refused.status_code == 409 and task["title"] in refused.text
    other, _person = colleague
    task_page = lead.http.get(f"/workspace/tasks/{task['id']}").text
    assert 'data-testid="hand-over"' in task_page and str(other.id) in task_page
    handed = lead.http.post(
        f"/workspace/tasks/{task['id']}/assignment",
        data={**form, "agent_id": str(other.id)},
        follow_redirects=False,
    )
    assert handed.status_code == 303 and "problem" not in handed.headers["location"], handed.headers
    assert _open_assignments(db, task["id"]) == [other.id]
    removed = lead.http.post(f"/teams/agents/{world.agent.id}/remove", data=form, follow_redirects=False)
    assert removed.status_code == 303
    assert f"/teams/agents/{world.agent.id}/remove" not in lead.http.get("/teams").text
    with db.session() as session:
        bind(session, AccessScope.everything())
        count = session.scalar(
            select(func.count()).select_from(TaskAssignment).where(TaskAssignment.agent_id == world.agent.id)
        )
    assert count == 1  # their past assignment stays in the record


def test_an_offline_agent_is_refused_by_hand_on_the_page_with_the_reason(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    task = world.submit(client)
    lead = Person(app, make_user(db, world.provider.organization, [Role.TEAM_LEAD]))
    form = {"csrf_token": lead.headers["X-CSRF-Token"], "agent_id": str(world.agent.id)}
    handed = lead.http.post(f"/workspace/tasks/{task['id']}/assignment", data=form, follow_redirects=False)
    assert handed.status_code == 303 and "presence" in handed.headers["location"]
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "queued"


def test_the_operator_removes_an_agent_too_and_their_task_goes_back(
    client: TestClient, db: Database, world: World
) -> None:
    task = _taken(client, world, started=False)
    removed = client.delete(f"/v1/agents/{world.agent.id}", headers=world.as_operator)
    assert removed.status_code == 200 and removed.json()["tasks_returned"] == 1, removed.text
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "queued"
