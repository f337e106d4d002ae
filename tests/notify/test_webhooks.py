from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.core.database import Database
from services.core.settings import Settings
from services.notify import relay, signing
from tests.conftest import Caller
from tests.notify.receiver import Receiver

TASK = {
    "title": "Facture en double",
    "payload": {"description": "La facture 2026-118 a été débitée deux fois."},
}


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Retries after milliseconds, so a test can walk through them."""
    return settings.model_copy(update={"webhook_backoff_seconds": 0.001, "webhook_max_attempts": 4})


def _endpoint(client: TestClient, caller: Caller, url: str, **fields: Any) -> dict[str, Any]:
    answer = client.post("/v1/webhook-endpoints", headers=caller.headers, json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _drain(db: Database, settings: Settings, rounds: int = 20) -> None:
    """Run the relay until nothing is left to send."""
    for _ in range(rounds):
        if relay.run(db, settings, deadline_seconds=5) == 0:
            return


def test_every_state_change_reaches_the_receiver_signed_once_per_event(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    secret = _endpoint(client, acme, receiver.url)["secret"]
    receiver.fail_first = 2  # every event fails twice before it is taken
    task = client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK}).json()
    client.patch(f"/v1/tasks/{task['id']}", headers=acme.headers, json={"priority": "high"})
    client.post(f"/v1/tasks/{task['id']}/comments", headers=acme.headers, json={"body": "Merci"})
    client.post(f"/v1/tasks/{task['id']}/transitions", headers=acme.headers, json={"action": "cancel"})
    _drain(db, fast)

    accepted = receiver.accepted()
    types = [r.event["type"] for r in accepted]
    assert types == ["task.created", "task.updated", "task.comment_added", "task.status_changed"]
    ids = receiver.accepted_ids()
    assert len(set(ids)) == len(ids) == 4  # each event id accepted exactly once
    assert all(receiver.tries[i] == 3 for i in ids)
    for received in accepted:
        signing.verify(secret, received.headers, received.body)
        assert received.event["id"] == received.headers["webhook-id"]
    assert accepted[-1].event["data"]["to"] == "cancelled"


def test_a_tampered_body_does_not_verify(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    secret = _endpoint(client, acme, receiver.url)["secret"]
    client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK})
    _drain(db, fast)
    received = receiver.accepted()[0]
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, received.headers, received.body.replace(b"Facture", b"Avoir"))


def test_a_failing_event_holds_back_the_later_events_of_its_task(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    _endpoint(client, acme, receiver.url)
    first = client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK}).json()
    other = client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK}).json()
    client.post(f"/v1/tasks/{first['id']}/transitions", headers=acme.headers, json={"action": "cancel"})
    created_event_of_first = _first_event_id(db, first["id"])
    receiver.fail_ids = {created_event_of_first}
    receiver.fail_first = 3
    _drain(db, fast)
    by_task = [
        (r.event["data"].get("task", {}).get("id"), r.event["type"])
        for r in receiver.log
        if r.event["data"].get("task", {}).get("id") == first["id"]
    ]
    # the cancel is only tried after the creation went through, never before
    assert by_task == [(first["id"], "task.created")] * 4 + [(first["id"], "task.status_changed")]
    assert other["id"] in {r.event["data"]["task"]["id"] for r in receiver.accepted()}


def _first_event_id(db: Database, task_id: str) -> str:
    import uuid

    from sqlalchemy import select

    from services.notify.models import OutboxEvent
    from tenants.scoping import AccessScope, bind

    with db.session() as session:
        bind(session, AccessScope.everything())
        return str(
            session.scalars(
                select(OutboxEvent.id)
                .where(OutboxEvent.subject_id == uuid.UUID(task_id))
                .order_by(OutboxEvent.id)
            ).first()
        )


def test_after_the_last_try_a_delivery_is_dead_and_can_be_redelivered(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    endpoint = _endpoint(client, acme, receiver.url)
    receiver.fail_first = 4  # as many as the tries allowed
    client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK})
    _drain(db, fast)
    deliveries = client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=acme.headers).json()
    (delivery,) = deliveries["items"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("dead", 4, 503)
    detail = client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=acme.headers).json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [503] * 4

    again = client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=acme.headers)
    assert again.status_code == 200 and again.json()["status"] == "pending"
    _drain(db, fast)
    detail = client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=acme.headers).json()
    assert detail["status"] == "succeeded" and len(detail["attempt_log"]) == 5
    assert len(receiver.accepted()) == 1


def test_during_a_rotation_both_secrets_sign(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    endpoint = _endpoint(client, acme, receiver.url)
    rotated = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=acme.headers
    ).json()
    assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_expires_at"]
    client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK})
    _drain(db, fast)
    received = receiver.accepted()[0]
    assert len(received.headers["webhook-signature"].split()) == 2
    signing.verify(endpoint["secret"], received.headers, received.body)
    signing.verify(rotated["secret"], received.headers, received.body)


def test_an_endpoint_only_gets_the_types_it_asked_for(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    _endpoint(client, acme, receiver.url, event_types=["task.status_changed"])
    task = client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK}).json()
    client.post(f"/v1/tasks/{task['id']}/transitions", headers=acme.headers, json={"action": "cancel"})
    _drain(db, fast)
    assert [r.event["type"] for r in receiver.accepted()] == ["task.status_changed"]


def test_private_addresses_are_refused_unless_allowed(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    endpoint = _endpoint(client, acme, receiver.url)
    client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK})
    relay.run(db, fast.model_copy(update={"webhook_allow_private_networks": False}), deadline_seconds=5)
    (delivery,) = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=acme.headers
    ).json()["items"]
    assert "non-public address" in delivery["last_error"]
    assert receiver.log == []


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"url": "http://hooks.example.com/x"}, "/url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "/url"),
        (
            {"url": "https://hooks.example.com/x", "event_types": ["task.created", "task.deleted"]},
            "/event_types/1",
        ),
    ],
)
def test_a_bad_endpoint_is_refused(
    client: TestClient, acme: Caller, body: dict[str, Any], pointer: str
) -> None:
    answer = client.post("/v1/webhook-endpoints", headers=acme.headers, json=body)
    assert answer.status_code == 422
    assert [e["pointer"] for e in answer.json()["errors"]] == [pointer]


def test_the_secret_is_shown_once_and_sealed_at_rest(client: TestClient, db: Database, acme: Caller) -> None:
    from sqlalchemy import select

    from services.notify.models import WebhookEndpoint
    from tenants.scoping import AccessScope, bind

    endpoint = _endpoint(client, acme, "https://hooks.example.com/in")
    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=acme.headers).json()
    assert "secret" not in shown and endpoint["secret"].startswith("whsec_")
    with db.session() as session:
        bind(session, AccessScope.everything())
        stored = session.scalars(select(WebhookEndpoint.sealed_secret)).one()
    assert endpoint["secret"] not in stored and endpoint["secret"][6:] not in stored


def test_a_leased_delivery_is_not_claimed_again_until_its_lease_ends(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver
) -> None:
    from sqlalchemy import update

    from services.notify.models import WebhookDelivery
    from tenants.scoping import AccessScope, bind

    _endpoint(client, acme, receiver.url)
    client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK})
    with db.session() as session:
        bind(session, AccessScope.everything())
        relay.fan_out(session)
        first = relay.claim(session)
    with db.session() as session:  # another relay, while the first one is sending
        bind(session, AccessScope.everything())
        assert first is not None and relay.claim(session) is None
        session.execute(update(WebhookDelivery).values(lease_until=relay.utcnow() - relay.LEASE))
        assert relay.claim(session) not in (
            None,
            first,
        )  # a relay that died: its lease ends, another takes over


def test_a_disabled_endpoint_gets_nothing_more_and_a_pending_delivery_is_not_resent_by_hand(
    client: TestClient, db: Database, acme: Caller, queue_id: str, receiver: Receiver, fast: Settings
) -> None:
    from tenants.scoping import AccessScope, bind

    endpoint = _endpoint(client, acme, receiver.url)
    client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK})
    with db.session() as session:
        bind(session, AccessScope.everything())
        relay.fan_out(session)
    client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", headers=acme.headers, json={"enabled": False})
    _drain(db, fast)
    assert receiver.log == []
    (delivery,) = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=acme.headers
    ).json()["items"]
    again = client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=acme.headers)
    assert again.status_code == 409
    client.patch(f"/v1/webhook-endpoints/{endpoint['id']}", headers=acme.headers, json={"enabled": True})
    _drain(db, fast)
    assert len(receiver.accepted()) == 1


def test_an_idempotency_key_does_not_reach_across_tasks(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    first, second = (
        client.post("/v1/tasks", headers=acme.headers, json={"queue_id": queue_id, **TASK}).json()
        for _ in range(2)
    )
    headers = {**acme.headers, "Idempotency-Key": "comment-1"}
    for task in (first, second):
        assert (
            client.post(
                f"/v1/tasks/{task['id']}/comments", headers=headers, json={"body": "merci"}
            ).status_code
            == 201
        )
    for task in (first, second):
        assert len(client.get(f"/v1/tasks/{task['id']}/comments", headers=acme.headers).json()["items"]) == 1


def test_a_write_that_lost_a_race_is_412_or_409_not_500(app: Any) -> None:
    from sqlalchemy.orm.exc import StaleDataError
    from starlette.requests import Request

    handler = app.exception_handlers[StaleDataError]

    def request(headers: list[tuple[bytes, bytes]]) -> Request:
        return Request(
            {"type": "http", "method": "PATCH", "path": "/v1/tasks/x", "headers": headers, "app": app}
        )

    assert handler(request([(b"if-match", b'"1"')]), StaleDataError("x")).status_code == 412
    assert handler(request([]), StaleDataError("x")).status_code == 409
