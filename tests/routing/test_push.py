"""Push mode: offers made by the sweep, accepted, rejected, expired and rescinded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.database import Database
from services.core.time import utcnow
from services.routing import offers
from tenants.scoping import AccessScope, bind
from tests.factories import make_agent, make_engagement, make_queue
from tests.routing.world import Person, World, build


@pytest.fixture
def world(app: FastAPI, client: TestClient, db: Database) -> World:
    return build(app, client, db, mode="push", routing={"offer_timeout_seconds": 30})


def _sweep(db: Database, later: timedelta = timedelta(0)) -> dict[str, int]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return offers.sweep(session, utcnow() + later)


def _second_agent(app: FastAPI, db: Database, world: World) -> Person:
    second = Person(app, make_agent(db, world.provider.organization, world.team).email)
    second.put("/v1/agents/me/presence", json={"presence": "online"})
    return second


def test_a_task_is_offered_and_the_agent_accepts_it(client: TestClient, db: Database, world: World) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 204  # offered, never pulled
    assert _sweep(db)["offered"] == 1
    mine = world.person.get("/v1/offers").json()["items"]
    assert [o["task"]["id"] for o in mine] == [task["id"]]
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "offered"
    taken = world.person.post(f"/v1/offers/{mine[0]['id']}/accept")
    assert taken.status_code == 200 and taken.json()["status"] == "assigned"
    again = world.person.post(f"/v1/offers/{mine[0]['id']}/accept")
    assert again.status_code == 409 and again.json()["offer_status"] == "accepted"


def test_an_offer_that_times_out_goes_to_the_next_candidate(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    _sweep(db)
    first = world.person.get("/v1/offers").json()["items"][0]
    second = _second_agent(app, db, world)
    assert _sweep(db, timedelta(seconds=31)) == {"expired": 1, "rescinded": 0, "offered": 1}
    late = world.person.post(f"/v1/offers/{first['id']}/accept")
    assert late.status_code == 409 and late.json()["offer_status"] == "expired"
    offered = second.get("/v1/offers").json()["items"]
    assert [o["task"]["id"] for o in offered] == [task["id"]]
    assert world.person.get("/v1/offers").json()["items"] == []  # not asked again
    trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert [d["kind"] for d in trace["decisions"]][:2] == ["offer", "offer"]


def test_a_rejected_offer_goes_to_the_next_candidate(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    second = _second_agent(app, db, world)
    _sweep(db)
    holder, other = (
        (world.person, second) if world.person.get("/v1/offers").json()["items"] else (second, world.person)
    )
    offer = holder.get("/v1/offers").json()["items"][0]
    assert other.post(f"/v1/offers/{offer['id']}/accept").status_code == 404  # someone else's offer
    assert holder.get(f"/v1/tasks/{task['id']}").status_code == 200  # what is offered to them
    assert other.get(f"/v1/tasks/{task['id']}").status_code == 404  # not while it is another's
    rejected = holder.post(f"/v1/offers/{offer['id']}/reject", json={"reason": "not my field"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert holder.post(f"/v1/offers/{offer['id']}/accept").status_code == 409
    _sweep(db)
    assert [o["task"]["id"] for o in other.get("/v1/offers").json()["items"]] == [task["id"]]
    assert other.get(f"/v1/tasks/{task['id']}").status_code == 200
    assert holder.get(f"/v1/tasks/{task['id']}").status_code == 404


def test_cancelling_the_task_rescinds_its_offer(client: TestClient, db: Database, world: World) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    _sweep(db)
    offer = world.person.get("/v1/offers").json()["items"][0]
    cancelled = client.post(
        f"/v1/tasks/{task['id']}/transitions", headers=world.as_client, json={"action": "cancel"}
    )
    assert cancelled.status_code == 200, cancelled.text
    answer = world.person.post(f"/v1/offers/{offer['id']}/accept")
    assert answer.status_code == 409 and answer.json()["offer_status"] == "rescinded"


def test_the_client_escalating_the_task_rescinds_its_offer(
    client: TestClient, db: Database, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    _sweep(db)
    [offer] = world.person.get("/v1/offers").json()["items"]
    url = f"/v1/tasks/{task['id']}/transitions"
    escalated = client.post(url, headers=world.as_client, json={"action": "escalate"})
    assert escalated.status_code == 200, escalated.text
    answer = world.person.post(f"/v1/offers/{offer['id']}/accept")
    assert answer.status_code == 409 and answer.json()["offer_status"] == "rescinded"
    assert world.person.get("/v1/offers").json()["items"] == []


def test_an_agent_going_offline_loses_the_offer(client: TestClient, db: Database, world: World) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    _sweep(db)
    world.person.put("/v1/agents/me/presence", json={"presence": "offline"})
    assert _sweep(db)["rescinded"] == 1
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "queued"


def test_an_offer_whose_engagement_was_revoked_is_no_longer_the_agents(
    client: TestClient, db: Database, world: World
) -> None:
    world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    _sweep(db)
    [offer] = world.person.get("/v1/offers").json()["items"]
    engagement = client.get(
        "/v1/engagements", headers=world.as_operator, params={"queue_id": str(world.queue.id)}
    ).json()["items"][0]
    assert client.delete(f"/v1/engagements/{engagement['id']}", headers=world.as_operator).status_code == 200
    assert world.person.get("/v1/offers").json()["items"] == []
    assert world.person.post(f"/v1/offers/{offer['id']}/accept").status_code == 404
    assert world.person.post(f"/v1/offers/{offer['id']}/reject").status_code == 404


def test_a_task_of_a_case_goes_to_the_agent_who_worked_the_case(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    """Stickiness (weight 2) outweighs the idle time (weight 1) that would otherwise give
    the next task to the agent who has had none; a task of another case goes by idle time."""
    second = _second_agent(app, db, world)
    first_of_case = world.submit(client, case_ref="SIN-2026-0042")
    _sweep(db)
    [offer] = second.get("/v1/offers").json()["items"]
    assert second.post(f"/v1/offers/{offer['id']}/accept").status_code == 200
    for action in ("start", "resolve"):
        url = f"/v1/tasks/{first_of_case['id']}/transitions"
        assert second.post(url, json={"action": action}).status_code == 200
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})  # idle, never assigned
    same_case = world.submit(client, case_ref="SIN-2026-0042", title="Pièces complémentaires")
    other_case = world.submit(client, case_ref="SIN-2026-0077", title="Nouveau sinistre")
    listed = client.get("/v1/tasks", headers=world.as_client, params={"case_ref": "SIN-2026-0042"}).json()
    assert [t["id"] for t in listed["items"]] == [first_of_case["id"], same_case["id"]]
    _sweep(db)
    assert [o["task"]["id"] for o in second.get("/v1/offers").json()["items"]] == [same_case["id"]]
    assert [o["task"]["id"] for o in world.person.get("/v1/offers").json()["items"]] == [other_case["id"]]
    trace = client.get(f"/v1/tasks/{same_case['id']}/routing", headers=world.as_operator).json()
    low, high = sorted(line["score"] for line in trace["decisions"][0]["candidates"])
    assert high - low > 0.9  # sticky 2, less the idle time the other agent has over them (at most 1)


def test_an_agent_is_offered_no_more_tasks_at_once_than_their_capacity(
    client: TestClient, db: Database, world: World
) -> None:
    """A pending offer takes a place under the capacity (1 here): the second task waits
    for the first to be worked, instead of both going to the one agent at once."""
    first, second = world.submit(client), world.submit(client, title="Deuxième prélèvement")
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert _sweep(db)["offered"] == 1
    [offer] = world.person.get("/v1/offers").json()["items"]
    assert offer["task"]["id"] == first["id"]
    assert world.person.post(f"/v1/offers/{offer['id']}/accept").status_code == 200
    assert _sweep(db)["offered"] == 0  # holding one task, at capacity
    for action in ("start", "resolve"):
        url = f"/v1/tasks/{first['id']}/transitions"
        assert world.person.post(url, json={"action": action}).status_code == 200
    assert _sweep(db)["offered"] == 1
    assert [o["task"]["id"] for o in world.person.get("/v1/offers").json()["items"]] == [second["id"]]


def test_an_offer_waiting_for_an_answer_takes_the_place_a_pulled_task_would(
    client: TestClient, db: Database, world: World
) -> None:
    """Capacity 1: an agent offered a task of a push queue takes nothing from a pull queue
    of the same kind until they answer, so accepting never makes them hold two."""
    pulled = make_queue(db, world.client.organization, languages=["fr"], residency={"allow": ["EU"]})
    make_engagement(db, pulled, world.team)
    world.submit(client)
    waiting = world.submit(client, queue=pulled, title="Relevé")
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert _sweep(db)["offered"] == 1
    refused = world.person.post("/v1/agents/me/next-task")
    assert refused.status_code == 409 and refused.json()["reason"] == "capacity"
    [offer] = world.person.get("/v1/offers").json()["items"]
    assert world.person.post(f"/v1/offers/{offer['id']}/reject").status_code == 200
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == waiting["id"]
