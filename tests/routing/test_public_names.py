"""The name a provider shows its clients: none by default (the client reads that the
provider acted), else the agent's chosen name on what they write and do, recorded as it
was then; never the agent's own name or id."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.core.database import Database
from services.identity.models import User
from services.notify.models import OutboxEvent
from tenants.principal import Role
from tenants.scoping import AccessScope, bind
from tests.factories import make_user
from tests.routing.world import Person, World, build


@pytest.fixture
def world(app: FastAPI, client: TestClient, db: Database) -> World:
    return build(app, client, db)


def _ask(who: World | Person, task_id: str, question: str) -> None:
    person = who.person if isinstance(who, World) else who
    answer = person.post(f"/v1/tasks/{task_id}/comments", json={"body": question})
    assert answer.status_code == 201, answer.text


def _authors(client: TestClient, world: World, task_id: str) -> dict[str, tuple[str, object]]:
    comments = client.get(f"/v1/tasks/{task_id}/comments", headers=world.as_client).json()["items"]
    return {c["body"]: (c["author_name"], c["author_id"]) for c in comments}


def test_clients_read_the_name_the_provider_chose_from_then_on_and_never_the_agents_own(
    db: Database, client: TestClient, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    own_name = world.person.get("/v1/agents/me").json()["display_name"]
    _ask(world, task["id"], "Quel est votre numéro de client ?")
    named = client.patch(
        f"/v1/agents/{world.agent.id}", headers=world.as_provider, json={"public_name": " Mihai "}
    )
    assert named.status_code == 200 and named.json()["public_name"] == "Mihai", named.text
    _ask(world, task["id"], "Et la date du prélèvement ?")
    assert (
        world.person.post(f"/v1/tasks/{task['id']}/transitions", json={"action": "start"}).status_code == 200
    )

    assert _authors(client, world, task["id"]) == {
        "Quel est votre numéro de client ?": ("", None),  # written before the provider chose a name
        "Et la date du prélèvement ?": ("Mihai", None),
    }
    events = client.get(f"/v1/tasks/{task['id']}/events", headers=world.as_client)
    started = [e for e in events.json()["items"] if e["action"] == "start"]
    assert [(e["actor_name"], e["actor_id"]) for e in started] == [("Mihai", None)]
    assert own_name not in events.text
    # The provider and the operator read who it was.
    theirs = client.get(f"/v1/tasks/{task['id']}/comments", headers=world.as_operator).json()["items"]
    assert {c["author_name"] for c in theirs} == {own_name}
    # The client's webhook carries the name the client reads.
    with db.session() as session:
        bind(session, AccessScope.everything())
        sent = session.scalars(
            select(OutboxEvent.data).where(
                OutboxEvent.type == "task.comment_added", OutboxEvent.subject_id == uuid.UUID(task["id"])
            )
        ).all()
    assert sorted(data["comment"]["author_name"] for data in sent) == ["", "Mihai"]

    cleared = client.patch(
        f"/v1/agents/{world.agent.id}", headers=world.as_provider, json={"public_name": None}
    )
    assert cleared.status_code == 200 and cleared.json()["public_name"] is None
    _ask(world, task["id"], "Merci, je vérifie.")
    assert _authors(client, world, task["id"])["Merci, je vérifie."] == ("", None)


def test_the_client_portal_shows_the_chosen_name_and_a_lead_sets_it_on_the_agents_page(
    app: FastAPI, db: Database, client: TestClient, world: World
) -> None:
    lead = Person(app, make_user(db, world.provider.organization, [Role.TEAM_LEAD]))
    url = f"/teams/agents/{world.agent.id}/edit"
    saved = lead.http.post(
        url,
        data={"csrf_token": lead.headers["X-CSRF-Token"], "public_name": "Mihai P."},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert 'value="Mihai P."' in lead.http.get(url).text
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    _ask(world, task["id"], "Pouvez-vous joindre la facture ?")
    reader = Person(app, make_user(db, world.client.organization, [Role.CLIENT_ADMIN], locale="fr"))
    page = reader.http.get(f"/portal/tasks/{task['id']}")
    assert page.status_code == 200 and "Mihai P. ·" in page.text, page.text


@pytest.mark.parametrize(
    ("name", "said"), [("x" * 81, "at most 80 characters"), ("   ", "at least 1 character")]
)
def test_a_public_name_too_long_or_blank_is_refused_with_its_pointer(
    client: TestClient, world: World, name: str, said: str
) -> None:
    refused = client.patch(
        f"/v1/agents/{world.agent.id}", headers=world.as_provider, json={"public_name": name}
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [e["pointer"] for e in problem["errors"]] == ["/public_name"] and said in refused.text
    assert client.get(f"/v1/agents/{world.agent.id}", headers=world.as_provider).json()["public_name"] is None


def test_a_lead_who_also_works_tasks_writes_under_their_public_name(
    app: FastAPI, db: Database, client: TestClient, world: World
) -> None:
    email = make_user(db, world.provider.organization, [Role.TEAM_LEAD, Role.AGENT])
    with db.session() as session:
        bind(session, AccessScope.everything())
        user_id = session.scalars(select(User.id).where(User.email == email)).one()
    made = client.post(
        "/v1/agents",
        headers=world.as_provider,
        json={"user_id": str(user_id), "team_id": str(world.team.id), "public_name": "Ioana"},
    )
    assert made.status_code == 201, made.text
    task = world.submit(client)
    lead = Person(app, email)
    _ask(lead, task["id"], "Je reprends votre dossier.")
    assert _authors(client, world, task["id"]) == {"Je reprends votre dossier.": ("Ioana", None)}
    seen = client.get(f"/v1/tasks/{task['id']}/comments", headers=world.as_operator).json()["items"]
    assert [(c["author_name"], c["author_public_name"]) for c in seen] == [(lead_name(db, user_id), "Ioana")]


def lead_name(db: Database, user_id: uuid.UUID) -> str:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return session.scalars(select(User.display_name).where(User.id == user_id)).one()
