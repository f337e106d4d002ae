from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Caller

BUILTIN = {
    "support_ticket",
    "claim",
    "file_management",
    "data_analysis",
    "invoice_processing",
    "order_processing",
    "payroll_hr",
    "contract_documents",
    "vat_declaration",
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"meter_id": {"type": "string", "pattern": "^M[0-9]{6}$"}},
    "required": ["meter_id"],
}


def test_every_builtin_kind_is_listed_with_its_schema(client: TestClient, acme: Caller) -> None:
    kinds = client.get("/v1/task-kinds", headers=acme.headers).json()["items"]
    by_name = {k["name"]: k for k in kinds}
    assert set(by_name) == BUILTIN
    assert all(k["version"] == 1 and k["schema"]["type"] == "object" for k in kinds)


def test_a_client_kind_gets_versions_and_tasks_keep_theirs(client: TestClient, acme: Caller) -> None:
    first = client.post(
        "/v1/task-kinds", headers=acme.headers, json={"name": "meter_reading", "schema": SCHEMA}
    )
    assert first.status_code == 201, first.text
    assert (first.json()["name"], first.json()["version"]) == ("meter_reading", 1)
    queue = client.post(
        "/v1/queues", headers=acme.headers, json={"name": "Meters", "task_kind": "meter_reading"}
    ).json()
    old = client.post(
        "/v1/tasks",
        headers=acme.headers,
        json={
            "queue_id": queue["id"],
            "title": "Reading",
            "payload": {"meter_id": "M000001"},
            "language": "fr",
        },
    ).json()
    relaxed = {**SCHEMA, "required": []}
    second = client.post(
        "/v1/task-kinds", headers=acme.headers, json={"name": "meter_reading", "schema": relaxed}
    )
    assert second.json()["version"] == 2
    listed = {k["name"]: k for k in client.get("/v1/task-kinds", headers=acme.headers).json()["items"]}
    assert listed["meter_reading"]["version"] == 2
    new = client.post(
        "/v1/tasks", headers=acme.headers, json={"queue_id": queue["id"], "title": "No id", "language": "fr"}
    ).json()
    assert (old["task_kind_version"], new["task_kind_version"]) == (1, 2)
    # the old task is still checked against version 1
    patch = client.patch(
        f"/v1/tasks/{old['id']}", headers=acme.headers, json={"payload": {"meter_id": "bad"}}
    )
    assert patch.status_code == 422 and patch.json()["errors"][0]["pointer"] == "/payload/meter_id"


def test_an_invalid_schema_is_refused_with_its_pointer(client: TestClient, acme: Caller) -> None:
    broken = {**SCHEMA, "properties": {"meter_id": {"type": "strin"}}}
    answer = client.post(
        "/v1/task-kinds", headers=acme.headers, json={"name": "meter_reading", "schema": broken}
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"].startswith("/schema/properties/meter_id/type")


def test_a_remote_reference_is_refused(client: TestClient, acme: Caller) -> None:
    remote = {"type": "object", "properties": {"x": {"$ref": "https://evil.example/schema.json"}}}
    answer = client.post("/v1/task-kinds", headers=acme.headers, json={"name": "remote", "schema": remote})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"] == "/schema/properties/x/$ref"


def test_an_oversized_schema_is_refused(client: TestClient, acme: Caller) -> None:
    huge = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(4000)}}
    answer = client.post("/v1/task-kinds", headers=acme.headers, json={"name": "huge", "schema": huge})
    assert answer.status_code == 422 and answer.json()["errors"][0]["pointer"] == "/schema"


def test_a_builtin_name_cannot_be_taken(client: TestClient, acme: Caller) -> None:
    answer = client.post("/v1/task-kinds", headers=acme.headers, json={"name": "claim", "schema": SCHEMA})
    assert answer.status_code == 409
