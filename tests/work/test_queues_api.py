from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Caller

PROBLEM = "application/problem+json"


def test_a_queue_is_created_read_listed_and_changed(client: TestClient, acme: Caller) -> None:
    created = client.post(
        "/v1/queues",
        headers=acme.headers,
        json={
            "name": "Claims DE",
            "task_kind": "claim",
            "languages": ["de", "fr-be"],
            "skills": [{"name": "motor_claims", "min_level": 3}],
            "residency": {"allow": ["eu"], "deny": ["HU"]},
            "default_priority": "high",
            "mode": "push",
        },
    )
    assert created.status_code == 201, created.text
    queue = created.json()
    assert created.headers["location"] == f"/v1/queues/{queue['id']}"
    assert queue["languages"] == ["de", "fr-BE"]
    assert queue["residency"] == {"allow": ["EU"], "deny": ["HU"]}
    assert queue["skills"] == [{"name": "motor_claims", "min_level": 3}]
    assert (queue["default_priority"], queue["mode"], queue["out_of_hours"]) == ("high", "push", False)

    assert client.get(f"/v1/queues/{queue['id']}", headers=acme.headers).json() == queue
    listed = client.get("/v1/queues", headers=acme.headers).json()
    assert [q["id"] for q in listed["items"]] == [queue["id"]] and listed["next_cursor"] is None

    changed = client.patch(f"/v1/queues/{queue['id']}", headers=acme.headers, json={"out_of_hours": True})
    assert changed.status_code == 200 and changed.json()["out_of_hours"] is True
    assert changed.json()["name"] == "Claims DE"


def test_a_bad_queue_is_refused_with_the_pointer_of_each_mistake(client: TestClient, acme: Caller) -> None:
    answer = client.post(
        "/v1/queues",
        headers=acme.headers,
        json={
            "name": "Bad",
            "task_kind": "support_ticket",
            "languages": ["fr", "not a tag"],
            "residency": {"allow": ["EU", "XX"]},
        },
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith(PROBLEM)
    pointers = {e["pointer"] for e in answer.json()["errors"]}
    assert pointers == {"/languages/1", "/residency/allow/1"}


def test_a_queue_needs_a_known_task_kind(client: TestClient, acme: Caller) -> None:
    answer = client.post("/v1/queues", headers=acme.headers, json={"name": "Q", "task_kind": "no_such_kind"})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"pointer": "/task_kind", "message": "no task kind no_such_kind"}]


def test_the_same_queue_name_twice_is_a_conflict(client: TestClient, acme: Caller, queue_id: str) -> None:
    again = client.post("/v1/queues", headers=acme.headers, json={"name": "Support FR", "task_kind": "claim"})
    assert again.status_code == 409
