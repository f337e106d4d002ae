"""Intake never waits on the broker: the outbox holds the events until a relay runs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.api import create_app
from services.core.database import Database
from services.core.settings import Settings
from services.notify import relay
from tests.conftest import Caller
from tests.notify.receiver import Receiver


def test_intake_succeeds_with_the_broker_down_and_the_relay_catches_up(
    settings: Settings, db: Database, acme: Caller, queue_id: str, receiver: Receiver
) -> None:
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})  # nothing listens on port 9
    app = create_app(down, db)
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/readyz").status_code == 503  # the broker is indeed unreachable
        client.post("/v1/webhook-endpoints", headers=acme.headers, json={"url": receiver.url})
        created = client.post(
            "/v1/tasks",
            headers=acme.headers,
            json={"queue_id": queue_id, "title": "Lost parcel", "payload": {"description": "Never arrived."}},
        )
        assert created.status_code == 201
    assert receiver.log == []
    relay.run(db, settings, deadline_seconds=5)  # the broker is back: beat runs the relay
    assert [r.event["data"]["task"]["id"] for r in receiver.accepted()] == [created.json()["id"]]
