"""Pull routing through the API: the next task, what stops it, and working the task."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.database import Database
from tenants.principal import OrgKind, Role
from tests.factories import make_agent, make_engagement, make_queue, make_team, make_tenant, make_user
from tests.routing.world import Person, World, build

# Open one day, years ahead: closed now, yet a valid staffing calendar.
CLOSED_NOW = {
    "timezone": "UTC",
    "weekly": {},
    "openings": [{"from": "2030-01-07", "to": "2030-01-07", "hours": [["08:00", "17:00"]]}],
}


@pytest.fixture
def world(app: FastAPI, client: TestClient, db: Database) -> World:
    return build(app, client, db)


def test_an_offline_agent_asking_for_work_gets_409_naming_presence(world: World) -> None:
    answer = world.person.post("/v1/agents/me/next-task")
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "/problems/agent-unavailable"
    assert answer.json()["reason"] == "presence"


def test_the_agent_takes_the_french_ticket_and_then_is_at_capacity(client: TestClient, world: World) -> None:
    task = world.submit(client)
    assert (
        world.person.put("/v1/agents/me/presence", json={"presence": "online"}).json()["presence"] == "online"
    )
    taken = world.person.post("/v1/agents/me/next-task")
    assert taken.status_code == 200, taken.text
    assert taken.json()["id"] == task["id"] and taken.json()["status"] == "assigned"
    assert taken.headers["ETag"] == f'"{taken.json()["revision"]}"'
    mine = world.person.get("/v1/agents/me/tasks").json()["items"]
    assert [t["id"] for t in mine] == [task["id"]]
    world.submit(client, external_ref="second")
    again = world.person.post("/v1/agents/me/next-task")
    assert again.status_code == 409 and again.json()["reason"] == "capacity"


def test_nothing_queued_answers_204_with_a_reason(world: World) -> None:
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    answer = world.person.post("/v1/agents/me/next-task")
    assert answer.status_code == 204
    assert answer.headers["Routing-Reason"] == "nothing_queued"


def test_a_closed_team_calendar_answers_204_calendar(client: TestClient, world: World) -> None:
    world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    patched = client.patch(
        f"/v1/teams/{world.team.id}", headers=world.as_provider, json={"calendar": CLOSED_NOW}
    )
    assert patched.status_code == 200, patched.text
    answer = world.person.post("/v1/agents/me/next-task")
    assert answer.status_code == 204 and answer.headers["Routing-Reason"] == "calendar"
    task = client.get("/v1/tasks", headers=world.as_client).json()["items"][0]
    seen = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_client).json()
    [team] = seen["decisions"][-1]["candidates"]  # why not routed, as the client reads it
    assert (team["failed"], team["calendar_opens_at"]) == ("calendar", "2030-01-07T08:00:00.000000Z")
    assert team["timezone"] == "Europe/Bucharest" and "hourly_cost" not in team


def test_every_decision_says_the_team_the_residency_rule_excludes(
    client: TestClient, db: Database, world: World
) -> None:
    """Manila serves the client's open queue; the EU queue's rule excludes it: every
    decision on the EU queue's task names it, to the operator and to the client."""
    manila_provider = make_tenant(db, OrgKind.PROVIDER, country="PH")
    manila = make_team(db, manila_provider.organization, name="Manila", country="PH")
    make_engagement(db, make_queue(db, world.client.organization, residency={"allow": []}), manila)
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == task["id"]
    for side in (world.as_operator, world.as_client):
        trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=side).json()
        assert trace["decisions"] and all(
            {
                "team_id": str(manila.id),
                "country": "PH",
                "engaged": False,
                "eligible": False,
                "failed": "residency",
            }
            in decision["candidates"]
            for decision in trace["decisions"]
        ), trace
        assert trace["decisions"][0]["winner"]["team_id"] == str(world.team.id)


def test_a_task_in_a_language_the_agent_does_not_speak_is_not_taken(client: TestClient, world: World) -> None:
    world.submit(
        client, language="da", title="Dobbelt betaling", payload={"description": "Jeg er trukket to gange."}
    )
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    answer = world.person.post("/v1/agents/me/next-task")
    assert answer.status_code == 204, answer.text
    assert answer.headers["Routing-Reason"] == "nothing_eligible"  # a task waits, not one of theirs


def test_the_agent_works_the_task_to_resolution_and_the_client_answers_in_between(
    client: TestClient, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    url = f"/v1/tasks/{task['id']}/transitions"
    assert world.person.post(url, json={"action": "start"}).status_code == 200
    asked = world.person.post(
        url, json={"action": "ask_client", "comment": "Quel est le numéro de facture ?"}
    )
    assert asked.status_code == 200, asked.text
    comments = client.get(f"/v1/tasks/{task['id']}/comments", headers=world.as_client).json()["items"]
    assert comments[-1]["body"] == "Quel est le numéro de facture ?"
    replied = client.post(
        url, headers=world.as_client, json={"action": "client_replied", "comment": "F-2026-118"}
    )
    assert replied.status_code == 200, replied.text
    resolved = world.person.post(url, json={"action": "resolve"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert world.person.get("/v1/agents/me/tasks").json()["items"] == []  # capacity is free again


def test_a_provider_reads_the_tasks_of_its_queue_and_loses_them_when_the_engagement_goes(
    client: TestClient, world: World
) -> None:
    task = world.submit(client)
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_provider).status_code == 200
    engagement = client.get(
        "/v1/engagements", headers=world.as_operator, params={"queue_id": str(world.queue.id)}
    )
    engagement_id = engagement.json()["items"][0]["id"]
    assert client.delete(f"/v1/engagements/{engagement_id}", headers=world.as_operator).status_code == 200
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_provider).status_code == 404


def test_a_revoked_engagement_leaves_the_team_the_task_it_holds_and_takes_the_rest(
    client: TestClient, world: World
) -> None:
    """The agent finishes what they hold (its conversation and history still theirs); the
    queue's other tasks, and new work, are gone for the provider at once."""
    held = world.submit(client)
    waiting = world.submit(client, title="Deuxième prélèvement")
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == held["id"]
    url = f"/v1/tasks/{held['id']}"
    assert world.person.post(f"{url}/transitions", json={"action": "start"}).status_code == 200
    engagement = client.get(
        "/v1/engagements", headers=world.as_operator, params={"queue_id": str(world.queue.id)}
    )
    revoked = client.delete(
        f"/v1/engagements/{engagement.json()['items'][0]['id']}", headers=world.as_operator
    )
    assert revoked.status_code == 200
    for read in (world.person.get, lambda path: client.get(path, headers=world.as_provider)):
        assert read(f"/v1/tasks/{waiting['id']}").status_code == 404
        assert [t["id"] for t in read("/v1/tasks").json()["items"]] == [held["id"]]
    assert world.person.get(url).status_code == 200
    assert world.person.get("/v1/agents/me/tasks").json()["items"][0]["id"] == held["id"]
    note = world.person.post(f"{url}/comments", json={"body": "Remboursement lancé.", "visibility": "client"})
    assert note.status_code == 201, note.text
    assert (
        world.person.get(f"{url}/events").status_code == 200
        and world.person.get(f"{url}/comments").json()["items"]
    )
    resolved = world.person.post(f"{url}/transitions", json={"action": "resolve"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved", resolved.text
    assert world.person.post("/v1/agents/me/next-task").status_code == 204  # nothing of that queue any more
    assert client.get(url, headers=world.as_client).json()["status"] == "resolved"


def test_a_task_held_after_revocation_is_worked_to_its_end_not_released(
    client: TestClient, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == task["id"]
    engagement = client.get(
        "/v1/engagements", headers=world.as_operator, params={"queue_id": str(world.queue.id)}
    )
    client.delete(f"/v1/engagements/{engagement.json()['items'][0]['id']}", headers=world.as_operator)
    refused = world.person.post(f"/v1/tasks/{task['id']}/release")
    assert refused.status_code == 409 and "no longer serves" in refused.json()["detail"], refused.text
    assert world.person.get(f"/v1/tasks/{task['id']}").json()["status"] == "assigned"  # still theirs


def test_a_revoked_provider_gets_no_replay_of_its_earlier_answer(client: TestClient, world: World) -> None:
    task = world.submit(client)
    url, key = f"/v1/tasks/{task['id']}/comments", {"Idempotency-Key": "note-1"}
    body = {"body": "Pris en charge", "visibility": "internal"}
    first = client.post(url, headers={**world.as_provider, **key}, json=body)
    assert first.status_code == 201, first.text
    again = client.post(url, headers={**world.as_provider, **key}, json=body)
    assert again.headers.get("Idempotent-Replayed") == "true"
    engagement = client.get(
        "/v1/engagements", headers=world.as_operator, params={"queue_id": str(world.queue.id)}
    ).json()["items"][0]
    client.delete(f"/v1/engagements/{engagement['id']}", headers=world.as_operator)
    replay = client.post(url, headers={**world.as_provider, **key}, json=body)
    assert replay.status_code == 404, replay.text
    assert "Pris en charge" not in replay.text


def test_a_provider_neither_submits_nor_edits_the_clients_work(client: TestClient, world: World) -> None:
    task = world.submit(client)
    submitted = client.post(
        "/v1/tasks",
        headers=world.as_provider,
        json={"queue_id": str(world.queue.id), "title": "x", "payload": {"description": "x"}},
    )
    assert submitted.status_code == 404
    edited = client.patch(f"/v1/tasks/{task['id']}", headers=world.as_provider, json={"title": "changed"})
    assert edited.status_code == 403


def test_the_routing_trace_shows_the_winner_to_the_operator_and_no_agent_to_the_client(
    client: TestClient, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    world.person.post("/v1/agents/me/next-task")
    operator = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert operator["status"] == "assigned" and operator["step"] == "default"
    assert operator["decisions"][0]["kind"] == "pull"
    assert operator["decisions"][0]["winner_agent_id"] == str(world.agent.id)
    seen = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_client)
    assert seen.status_code == 200
    assert str(world.agent.id) not in seen.text and "hourly_cost" not in seen.text
    assert seen.json()["decisions"][0]["winner"] == {"team_id": str(world.team.id)}
    assert client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_provider).status_code == 404


def test_why_not_routed_names_residency_and_language(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    """A Danish ticket; the only team speaking Danish works in Manila, which the queue's EU
    residency excludes; the Bucharest team speaks no Danish."""
    manila_provider = make_tenant(db, OrgKind.PROVIDER, country="PH")
    manila = make_team(db, manila_provider.organization, name="Manila", country="PH",
                       languages=[{"code": "da", "level": "C1"}])  # fmt: skip
    open_queue = make_queue(db, world.client.organization, languages=["da"])
    make_engagement(db, open_queue, manila)
    make_engagement(db, open_queue, world.team)
    client.patch(
        f"/v1/queues/{open_queue.id}", headers=world.as_client, json={"residency": {"allow": ["EU"]}}
    )
    answer = client.post(
        "/v1/tasks",
        headers=world.as_client,
        json={
            "queue_id": str(open_queue.id),
            "title": "Dobbelt betaling",
            "payload": {"description": "x"},
            "language": "da",
        },
    )
    trace = client.get(f"/v1/tasks/{answer.json()['id']}/routing", headers=world.as_operator).json()
    failed = {
        c["team_id"]: c.get("failed") for c in trace["decisions"][-1]["candidates"] if "agent_id" not in c
    }
    assert failed == {str(manila.id): "residency", str(world.team.id): "language"}


def test_engaging_a_team_the_residency_rule_excludes_is_422_naming_team_id(
    client: TestClient, db: Database, world: World
) -> None:
    manila_provider = make_tenant(db, OrgKind.PROVIDER, country="PH")
    manila = make_team(db, manila_provider.organization, name="Manila", country="PH")
    answer = client.post(
        "/v1/engagements",
        headers=world.as_operator,
        json={"queue_id": str(world.queue.id), "team_id": str(manila.id)},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["pointer"] == "/team_id"


def test_a_team_lead_assigns_by_hand_and_the_trace_says_who(
    client: TestClient, db: Database, world: World
) -> None:
    """The hard constraints hold for a hand assignment too: an offline agent, or one at
    capacity, is refused with the constraint named; the trace names who assigned."""
    task, second = world.submit(client), world.submit(client, title="Deuxième prélèvement")

    def assign(task: dict[str, Any]) -> Any:
        url = f"/v1/tasks/{task['id']}/assignment"
        return client.post(url, headers=world.as_provider, json={"agent_id": str(world.agent.id)})

    offline = assign(task)
    assert offline.status_code == 409 and offline.json()["failed"] == "presence", offline.text
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    answer = assign(task)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "assigned"
    assert assign(task).status_code == 200  # given again to its holder: no further place taken
    full = assign(second)
    assert full.status_code == 409 and full.json()["failed"] == "capacity", full.text
    assert full.json()["errors"][0]["pointer"] == "/agent_id"
    trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert trace["decisions"][-1]["kind"] == "manual"
    assert trace["decisions"][-1]["by"]  # the lead's integration, by name
    seen_by_client = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_client).json()
    assert "by" not in seen_by_client["decisions"][-1]


def test_a_reopened_task_goes_to_the_queue_when_its_agent_is_offline(
    client: TestClient, world: World
) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    world.person.post("/v1/agents/me/next-task")
    url = f"/v1/tasks/{task['id']}/transitions"
    world.person.post(url, json={"action": "start"})
    world.person.post(url, json={"action": "resolve"})
    world.person.put("/v1/agents/me/presence", json={"presence": "offline"})
    reopened = client.post(url, headers=world.as_client, json={"action": "reopen"})
    assert reopened.status_code == 200, reopened.text
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "queued"


def test_a_reopened_task_goes_back_to_its_agent_while_online(client: TestClient, world: World) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    world.person.post("/v1/agents/me/next-task")
    url = f"/v1/tasks/{task['id']}/transitions"
    world.person.post(url, json={"action": "start"})
    world.person.post(url, json={"action": "resolve"})
    client.post(url, headers=world.as_client, json={"action": "reopen"})
    assert [t["id"] for t in world.person.get("/v1/agents/me/tasks").json()["items"]] == [task["id"]]


def _work_through(person: Person, task: dict[str, object]) -> None:
    for action in ("start", "resolve"):
        answer = person.post(f"/v1/tasks/{task['id']}/transitions", json={"action": action})
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("sticky", [2.0, 0.0])
def test_the_agent_who_worked_a_case_pulls_its_next_task_first(
    app: FastAPI, client: TestClient, db: Database, sticky: float
) -> None:
    """With the queue's sticky weight, the next task of a claim file goes to the agent who
    worked the file, ahead of a task that ranks earlier; their colleague takes that one.
    Weighed 0, stickiness gives way to the queue's order."""
    world = build(app, client, db, routing={"weights": {"sticky": sticky}})
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    first_of_case = world.submit(client, case_ref="SIN-2026-0042")
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == first_of_case["id"]
    _work_through(world.person, first_of_case)
    urgent = world.submit(client, title="Prélèvement en double", priority="urgent")
    same_case = world.submit(client, case_ref="SIN-2026-0042", title="Pièces complémentaires")
    colleague = Person(app, make_agent(db, world.provider.organization, world.team).email)
    colleague.put("/v1/agents/me/presence", json={"presence": "online"})
    mine = world.person.post("/v1/agents/me/next-task").json()
    theirs = colleague.post("/v1/agents/me/next-task").json()
    if sticky:
        assert (mine["id"], theirs["id"]) == (same_case["id"], urgent["id"])
        trace = client.get(f"/v1/tasks/{same_case['id']}/routing", headers=world.as_operator).json()
        assert trace["decisions"][0]["step"].endswith("sticky: case worked before")
    else:
        assert (mine["id"], theirs["id"]) == (urgent["id"], same_case["id"])


def test_releasing_a_task_puts_it_back_in_its_place_and_frees_the_agent(
    client: TestClient, world: World
) -> None:
    """Capacity 1: holding the first task, the agent may take nothing more; released, the
    task waits in its queue again (ahead of the later one), and the next claim takes it."""
    first, later = world.submit(client), world.submit(client, title="Deuxième prélèvement")
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == first["id"]
    assert world.person.post("/v1/agents/me/next-task").json()["reason"] == "capacity"
    released = world.person.post(f"/v1/tasks/{first['id']}/release")
    assert released.status_code == 200 and released.json()["status"] == "queued", released.text
    assert world.person.get("/v1/agents/me/tasks").json()["items"] == []
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == first["id"]
    assert client.get(f"/v1/tasks/{later['id']}", headers=world.as_client).json()["status"] == "queued"


def test_the_database_refuses_a_second_open_assignment_of_a_task(
    client: TestClient, db: Database, world: World
) -> None:
    """Whatever the code does, the unique index holds: one open assignment a task."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from services.routing.models import TaskAssignment
    from tenants.scoping import AccessScope, bind

    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    with db.session() as session:
        bind(session, AccessScope.everything())
        held = session.scalars(
            select(TaskAssignment).where(TaskAssignment.task_id == uuid.UUID(task["id"]))
        ).one()
        fields = ("tenant_id", "task_id", "agent_id", "team_id", "provider_id", "assigned_by", "assigned_at")
        session.add(TaskAssignment(**{name: getattr(held, name) for name in fields}))
        with pytest.raises(IntegrityError, match="task_assignments"):
            session.flush()
        session.rollback()


def test_capacity_is_per_task_kind(app: FastAPI, client: TestClient, db: Database, world: World) -> None:
    """An agent at capacity for support tickets (1) still takes claims (2 at once)."""
    claims = make_queue(db, world.client.organization, task_kind="claim", languages=["fr"],
                        residency={"allow": ["EU"]})  # fmt: skip
    make_engagement(db, claims, world.team)
    patched = client.patch(
        f"/v1/agents/{world.agent.id}", headers=world.as_provider, json={"capacity": {"*": 1, "claim": 2}}
    )
    assert patched.status_code == 200, patched.text
    ticket = world.submit(client)
    claim_payload = {"claim_type": "insurance", "category": "damage", "description": "Dégât des eaux"}
    first_claim = world.submit(client, queue=claims, title="Dégât des eaux", payload=claim_payload)
    second_claim = world.submit(client, queue=claims, title="Vol de vélo", payload=claim_payload)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    taken = [world.person.post("/v1/agents/me/next-task") for _ in range(4)]
    assert [t.status_code for t in taken] == [200, 200, 200, 409], [t.text for t in taken]
    assert {t.json()["id"] for t in taken[:3]} == {ticket["id"], first_claim["id"], second_claim["id"]}
    assert taken[3].json()["reason"] == "capacity"


def test_an_agents_own_languages_route_them_not_the_teams(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    """The team speaks French; an agent who declares German only is not given a French
    ticket: the answer says nothing they may take waits (not that nothing waits), and the
    trace says why: language."""
    patched = client.patch(
        f"/v1/agents/{world.agent.id}",
        headers=world.as_provider,
        json={"languages": [{"code": "de", "level": "C1"}]},
    )
    assert patched.status_code == 200, patched.text
    world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    answer = world.person.post("/v1/agents/me/next-task")
    assert answer.status_code == 204 and answer.headers["Routing-Reason"] == "nothing_eligible"
    task = client.get("/v1/tasks", headers=world.as_client).json()["items"][0]
    trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    [line] = [c for c in trace["decisions"][-1]["candidates"] if c.get("agent_id") == str(world.agent.id)]
    assert line["failed"] == "language"


def test_a_second_agent_of_an_unengaged_team_never_sees_the_task(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    task = world.submit(client)
    other_team = make_team(db, world.provider.organization, name="Cluj")
    outsider = make_agent(db, world.provider.organization, other_team)
    person = Person(app, outsider.email)
    assert person.get(f"/v1/tasks/{task['id']}").status_code == 404
    person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert person.post("/v1/agents/me/next-task").status_code == 204


def test_queue_and_team_stats_count_what_waits_and_who_is_there(client: TestClient, world: World) -> None:
    world.submit(client)
    world.submit(
        client,
        external_ref="2",
        priority="urgent",
        language="en",
        title="Login",
        payload={"description": "x"},
    )
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    stats = client.get(f"/v1/queues/{world.queue.id}/stats", headers=world.as_client)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["by_status"] == {"queued": 2}
    assert body["waiting_by_language"] == {"fr": 1, "en": 1}
    assert body["waiting_by_priority"] == {"normal": 1, "urgent": 1}
    assert body["agents"] == {"online": 1, "available": 1}
    assert body["oldest_waiting_seconds"] >= 0
    team = client.get(f"/v1/teams/{world.team.id}/stats", headers=world.as_provider).json()
    assert team["agents"][0]["presence"] == "online" and team["by_status"] == {"queued": 2}
    assert client.get(f"/v1/teams/{world.team.id}/stats", headers=world.as_client).status_code == 404


def test_team_stats_count_what_waits_per_queue_served_and_per_skill(
    client: TestClient, db: Database, world: World
) -> None:
    claims = make_queue(
        db,
        world.client.organization,
        name="Sinistres",
        languages=["fr"],
        skills=[{"name": "claims", "min_level": 3}],
    )
    make_engagement(db, claims, world.team)
    world.submit(client)
    for ref in ("S-1", "S-2"):
        world.submit(client, claims, external_ref=ref)
    team = client.get(f"/v1/teams/{world.team.id}/stats", headers=world.as_provider).json()
    rows = {row["name"]: row for row in team["waiting_by_queue"]}
    assert rows["Sinistres"]["waiting"] == 2 and rows[world.queue.name]["waiting"] == 1
    assert rows["Sinistres"]["skills"] == [{"name": "claims", "min_level": 3}]
    assert rows["Sinistres"]["oldest_waiting_seconds"] >= 0
    assert team["waiting_by_skill"] == {"claims": 2}


def test_an_agent_sees_the_waiting_tasks_and_their_own_never_a_colleagues(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    taken = world.submit(client)
    waiting = world.submit(client, title="Changement d'adresse")
    colleague = Person(app, make_agent(db, world.provider.organization, world.team).email)
    assert colleague.get(f"/v1/tasks/{taken['id']}").status_code == 200  # queued: anyone's to take
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == taken["id"]
    comment = {"body": "Je regarde.", "visibility": "client"}
    assert world.person.post(f"/v1/tasks/{taken['id']}/comments", json=comment).status_code == 201

    for url in ("", "/events", "/comments", "/routing"):
        assert colleague.get(f"/v1/tasks/{taken['id']}{url}").status_code == 404, url
    comment = colleague.post(f"/v1/tasks/{taken['id']}/comments", json={"body": "Moi aussi ?"})
    assert comment.status_code == 404, comment.text
    answer = colleague.post(f"/v1/tasks/{taken['id']}/transitions", json={"action": "start"})
    assert answer.status_code == 404, answer.text
    listed = {item["id"] for item in colleague.get("/v1/tasks").json()["items"]}
    assert listed == {waiting["id"]}

    # The holder works it to its end and still reads it; the provider's integration and a
    # team lead read every task of the provider's queues.
    url = f"/v1/tasks/{taken['id']}/transitions"
    assert world.person.post(url, json={"action": "start"}).status_code == 200
    assert world.person.post(url, json={"action": "resolve"}).status_code == 200
    assert world.person.get(f"/v1/tasks/{taken['id']}").json()["status"] == "resolved"
    assert colleague.get(f"/v1/tasks/{taken['id']}").status_code == 404
    assert client.get(f"/v1/tasks/{taken['id']}", headers=world.as_provider).status_code == 200
    lead = Person(app, make_user(db, world.provider.organization, [Role.TEAM_LEAD]))
    assert lead.get(f"/v1/tasks/{taken['id']}").status_code == 200
    assert {item["id"] for item in lead.get("/v1/tasks").json()["items"]} == {taken["id"], waiting["id"]}


def test_the_client_sees_that_the_provider_acted_never_who(client: TestClient, world: World) -> None:
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    world.person.post("/v1/agents/me/next-task")
    url = f"/v1/tasks/{task['id']}/transitions"
    world.person.post(url, json={"action": "start"})
    world.person.post(url, json={"action": "ask_client", "comment": "Numéro de facture ?"})
    name = world.person.get("/v1/agents/me").json()["display_name"]
    assert name
    events = client.get(f"/v1/tasks/{task['id']}/events", headers=world.as_client)
    comments = client.get(f"/v1/tasks/{task['id']}/comments", headers=world.as_client)
    assert name not in events.text and name not in comments.text
    assert comments.json()["items"][0]["author_side"] == "provider"
    assert any(e["actor_side"] == "provider" for e in events.json()["items"])
    assert (
        name in world.person.get(f"/v1/tasks/{task['id']}/comments").text
    )  # the provider sees its own people


def test_an_engaged_provider_attaches_within_the_clients_own_limit(
    client: TestClient, db: Database, world: World
) -> None:
    from sqlalchemy import update

    from tenants.models import Organization
    from tenants.scoping import AccessScope, bind
    from tests.factories import PDF

    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(
            update(Organization)
            .where(Organization.id == world.client.organization.id)
            .values(attachment_max_bytes=1000)
        )
    task = world.submit(client)
    url = f"/v1/tasks/{task['id']}/attachments"
    big = client.post(url, headers=world.as_provider, files={"file": ("big.pdf", PDF + b"%" * 2000)})
    assert big.status_code == 413 and big.json()["limit"] == 1000, big.text
    assert client.post(url, headers=world.as_provider, files={"file": ("s.pdf", PDF)}).status_code == 201


def test_the_client_reads_one_line_a_team_never_the_providers_headcount(
    client: TestClient, db: Database, world: World
) -> None:
    for _ in range(3):
        make_agent(db, world.provider.organization, world.team)
    task = world.submit(client)  # everyone offline: waiting, explained now
    operator = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert len([c for c in operator["decisions"][-1]["candidates"] if "agent_id" in c]) == 4
    seen = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_client).json()
    lines = seen["decisions"][-1]["candidates"]
    assert lines == [
        {"team_id": str(world.team.id), "rank": "primary", "country": "RO", "eligible": False,
         "failed": "presence"}
    ]  # fmt: skip
