from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.core.database import Database
from services.notify.models import OutboxEvent
from services.work import service
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller
from tests.factories import advance, make_queue, make_task, make_tenant

PROBLEM = "application/problem+json"


def _task(queue_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "queue_id": queue_id,
        "title": "Mot de passe refusé",
        "payload": {"description": "Je ne peux plus me connecter à mon espace client depuis hier."},
    }
    return {**body, **fields}


def test_a_submitted_task_is_queued_with_its_etag_and_history(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    answer = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, external_ref="T-1"))
    assert answer.status_code == 201, answer.text
    task = answer.json()
    assert task["status"] == "queued" and task["priority"] == "normal"
    assert (task["task_kind"], task["task_kind_version"]) == ("support_ticket", 1)
    assert answer.headers["etag"] == f'"{task["revision"]}"'
    assert answer.headers["location"] == f"/v1/tasks/{task['id']}"
    assert client.get(f"/v1/tasks/{task['id']}", headers=acme.headers).json() == task
    events = client.get(f"/v1/tasks/{task['id']}/events", headers=acme.headers).json()["items"]
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in events] == [("created", "new", "queued")]
    assert events[0]["actor_kind"] == "api_client"


def test_the_worker_detects_the_language_when_not_given(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    task = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id)).json()
    assert task["language"] is None  # not in the API process: the detector's model lives in the worker
    given = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, language="de-at")).json()
    assert (given["language"], given["language_confidence"]) == ("de-AT", None)
    short = client.post(
        "/v1/tasks", headers=acme.headers, json=_task(queue_id, title="PDF", payload={"description": "#4411"})
    ).json()
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert service.detect_pending_languages(session) == 2
        assert service.detect_pending_languages(session) == 0  # each task is looked at once
    detected = client.get(f"/v1/tasks/{task['id']}", headers=acme.headers).json()
    assert detected["language"] == "fr" and detected["language_confidence"] > 0.5
    assert detected["revision"] == task["revision"] + 1
    events = client.get(f"/v1/tasks/{task['id']}/events", headers=acme.headers).json()["items"]
    assert events[-1]["changes"] == {"language": [None, "fr"]} and events[-1]["actor_kind"] == "system"
    assert client.get(f"/v1/tasks/{short['id']}", headers=acme.headers).json()["language"] is None


def test_a_schema_violation_names_each_wrong_member(client: TestClient, acme: Caller, queue_id: str) -> None:
    payload = {"channel": "pigeon", "customer_email": "not-an-email"}
    answer = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, payload=payload))
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith(PROBLEM)
    pointers = sorted(e["pointer"] for e in answer.json()["errors"])
    assert pointers == ["/payload/channel", "/payload/customer_email", "/payload/description"]


def test_an_unknown_or_foreign_queue_is_not_found(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    unknown = client.post(
        "/v1/tasks", headers=acme.headers, json=_task("0190c4b4-0000-7000-8000-000000000000")
    )
    assert unknown.status_code == 404
    foreign_queue = make_queue(db, make_tenant(db).organization)
    foreign = client.post("/v1/tasks", headers=acme.headers, json=_task(str(foreign_queue.id)))
    assert foreign.status_code == 404
    assert foreign.json()["type"] == unknown.json()["type"] == "/problems/not-found"


def test_a_duplicate_external_ref_answers_409_with_the_existing_task(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    first = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, external_ref="CRM-77"))
    again = client.post(
        "/v1/tasks", headers=acme.headers, json=_task(queue_id, external_ref="CRM-77", title="x")
    )
    assert again.status_code == 409
    assert again.json()["existing_id"] == first.json()["id"]


def test_external_refs_are_unique_per_tenant_only(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    other_queue = make_queue(db, make_tenant(db).organization)
    make_task(db, other_queue, external_ref="SHARED-1")
    answer = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, external_ref="SHARED-1"))
    assert answer.status_code == 201


def test_a_retry_with_the_same_idempotency_key_replays_and_creates_nothing(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    headers = {**acme.headers, "Idempotency-Key": "retry-42"}
    first = client.post("/v1/tasks", headers=headers, json=_task(queue_id))
    second = client.post("/v1/tasks", headers=headers, json=_task(queue_id))
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["etag"] == first.headers["etag"]
    assert second.headers["idempotent-replayed"] == "true"
    listed = client.get("/v1/tasks", headers=acme.headers).json()["items"]
    assert [t["id"] for t in listed] == [first.json()["id"]]


def test_an_idempotency_key_reused_with_another_body_is_a_conflict(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    headers = {**acme.headers, "Idempotency-Key": "retry-43"}
    client.post("/v1/tasks", headers=headers, json=_task(queue_id))
    other = client.post("/v1/tasks", headers=headers, json=_task(queue_id, title="Another"))
    assert other.status_code == 409
    assert other.json()["errors"][0]["pointer"] == "/headers/Idempotency-Key"


def test_idempotency_keys_of_two_tenants_do_not_meet(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    from tests.factories import bearer, token

    other = make_tenant(db)
    other_headers = bearer(token(client, other.client_id, other.client_secret))
    other_queue = client.post(
        "/v1/queues", headers=other_headers, json={"name": "Q", "task_kind": "support_ticket"}
    )
    mine = client.post("/v1/tasks", headers={**acme.headers, "Idempotency-Key": "k"}, json=_task(queue_id))
    theirs = client.post(
        "/v1/tasks", headers={**other_headers, "Idempotency-Key": "k"}, json=_task(other_queue.json()["id"])
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_an_illegal_transition_names_the_state_and_the_allowed_actions(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    task = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id)).json()
    answer = client.post(
        f"/v1/tasks/{task['id']}/transitions", headers=acme.headers, json={"action": "close"}
    )
    assert answer.status_code == 409
    problem = answer.json()
    assert problem["current_status"] == "queued"
    assert problem["allowed_actions"] == ["escalate", "cancel"]
    assert "queued" in problem["detail"]


def test_a_provider_action_by_the_client_is_forbidden(client: TestClient, db: Database, acme: Caller) -> None:
    task = advance(db, make_task(db, make_queue(db, acme.tenant.organization)), "assign")
    answer = client.post(f"/v1/tasks/{task.id}/transitions", headers=acme.headers, json={"action": "start"})
    assert answer.status_code == 403


def test_the_lifecycle_round_trip_is_recorded(client: TestClient, db: Database, acme: Caller) -> None:
    task = advance(
        db, make_task(db, make_queue(db, acme.tenant.organization)), "assign", "start", "ask_client"
    )
    url = f"/v1/tasks/{task.id}"
    replied = client.post(
        f"{url}/transitions",
        headers=acme.headers,
        json={"action": "client_replied", "comment": "Voici le RIB."},
    )
    assert replied.status_code == 200 and replied.json()["status"] == "in_progress"
    advance(db, task, "resolve")
    closed = client.post(f"{url}/transitions", headers=acme.headers, json={"action": "close"})
    assert closed.json()["status"] == "closed"
    events = client.get(f"{url}/events", headers=acme.headers).json()["items"]
    moves = [e["action"] for e in events if e["kind"] in ("created", "transitioned")]
    assert moves == ["enqueue", "assign", "start", "ask_client", "client_replied", "resolve", "close"]
    comments = client.get(f"{url}/comments", headers=acme.headers).json()["items"]
    assert [c["body"] for c in comments] == ["Voici le RIB."]


def test_a_stale_if_match_is_refused_with_412(client: TestClient, acme: Caller, queue_id: str) -> None:
    created = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id))
    url = f"/v1/tasks/{created.json()['id']}"
    etag = created.headers["etag"]
    first = client.patch(url, headers={**acme.headers, "If-Match": etag}, json={"priority": "urgent"})
    assert first.status_code == 200 and first.headers["etag"] != etag
    stale = client.patch(url, headers={**acme.headers, "If-Match": etag}, json={"title": "Lost update"})
    assert stale.status_code == 412
    assert stale.json()["current_revision"] == first.json()["revision"]
    assert client.get(url, headers=acme.headers).json()["title"] == "Mot de passe refusé"
    stale_move = client.post(
        f"{url}/transitions", headers={**acme.headers, "If-Match": etag}, json={"action": "cancel"}
    )
    assert stale_move.status_code == 412


def test_a_change_is_recorded_with_old_and_new_values(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    task = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id)).json()
    client.patch(
        f"/v1/tasks/{task['id']}", headers=acme.headers, json={"priority": "high", "title": task["title"]}
    )
    events = client.get(f"/v1/tasks/{task['id']}/events", headers=acme.headers).json()["items"]
    assert events[-1]["kind"] == "updated" and events[-1]["changes"] == {"priority": ["normal", "high"]}


def test_a_client_cannot_write_internal_comments(client: TestClient, acme: Caller, queue_id: str) -> None:
    task = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id)).json()
    url = f"/v1/tasks/{task['id']}/comments"
    assert (
        client.post(url, headers=acme.headers, json={"body": "psst", "visibility": "internal"}).status_code
        == 403
    )
    assert client.post(url, headers=acme.headers, json={"body": "Any news?"}).status_code == 201


def test_filters_and_cursor_pages_are_stable(client: TestClient, acme: Caller, queue_id: str) -> None:
    ids = [
        client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id, priority=p)).json()["id"]
        for p in ("low", "high", "high", "low", "high")
    ]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"priority": "high", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/tasks", headers=acme.headers, params=params).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[1], ids[2], ids[4]]
    by_ref = client.get("/v1/tasks", headers=acme.headers, params={"status": "cancelled"}).json()
    assert by_ref["items"] == []


def test_every_change_writes_an_outbox_event_in_its_transaction(
    client: TestClient, db: Database, acme: Caller, queue_id: str
) -> None:
    task = client.post("/v1/tasks", headers=acme.headers, json=_task(queue_id)).json()
    client.patch(f"/v1/tasks/{task['id']}", headers=acme.headers, json={"priority": "urgent"})
    client.post(f"/v1/tasks/{task['id']}/comments", headers=acme.headers, json={"body": "Up"})
    client.post(f"/v1/tasks/{task['id']}/transitions", headers=acme.headers, json={"action": "cancel"})
    failed = client.post(
        f"/v1/tasks/{task['id']}/transitions", headers=acme.headers, json={"action": "cancel"}
    )
    assert failed.status_code == 409
    with db.session() as session:
        bind(session, AccessScope.everything())
        types = session.scalars(
            select(OutboxEvent.type)
            .where(OutboxEvent.subject_id == uuid.UUID(task["id"]))
            .order_by(OutboxEvent.id)
        ).all()
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == len(types)
    assert types == ["task.created", "task.updated", "task.comment_added", "task.status_changed"]
