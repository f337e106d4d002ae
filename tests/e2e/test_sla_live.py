"""The real beat and worker of ``bpo serve`` sweep SLA clocks: a breach reaches the client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from services.core.database import Database
from services.core.settings import Settings
from services.core.time import utcnow
from services.notify import signing
from services.sla.clocks import Clockwork, clocks_of
from services.work.models import Task
from tenants.scoping import AccessScope, bind
from tests.live import LivePlatform, api_headers
from tests.notify.receiver import Received, Receiver, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    server = serve(found)
    yield found
    server.shutdown()


def _shorten_first_response(platform: LivePlatform, task_id: str) -> None:
    """The smallest target is a minute: give this clock one second instead, as a priority
    change would, so that the test need not wait (the clock's own code does it)."""
    database = Database(Settings(data_dir=platform.data_dir).resolved_database_url())
    with database.session() as session:
        bind(session, AccessScope.everything())
        task = session.scalars(select(Task).where(Task.id == uuid.UUID(task_id))).one()
        first = next(c for c in clocks_of(session, task, lock=True) if c.metric.value == "first_response")
        Clockwork(session, first).retarget(utcnow().replace(microsecond=0), 1, 1, "test")


def test_a_breach_is_swept_by_beat_and_reaches_the_clients_webhook(
    platform: LivePlatform, receiver: Receiver
) -> None:
    # A client without the demo's contract SLA (office hours): this test sets a calendar-time one.
    client = httpx.Client(base_url=platform.url, headers=api_headers(platform, "Seguros Iberia SA"))
    operator = httpx.Client(base_url=platform.url, headers=api_headers(platform, "Backstage Operations"))
    client_id = client.get("/v1/me").json()["organization_id"]
    policies = operator.get("/v1/sla/policies").json()["items"]
    if not any(p["tenant_id"] == client_id for p in policies):
        answer = operator.post(
            "/v1/sla/policies",
            json={
                "tenant_id": client_id,
                "name": "Contrato Iberia",
                "targets": [{"metric": "first_response", "minutes": 60, "business_time": False}],
            },
        )
        assert answer.status_code == 201, answer.text
    secret = client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["sla.breached"]}
    ).json()["secret"]
    queue = client.post(
        "/v1/queues", json={"name": f"SLA {uuid.uuid4().hex[:6]}", "task_kind": "claim"}
    ).json()
    task = client.post(
        "/v1/tasks",
        json={
            "queue_id": queue["id"],
            "title": "Daños por agua",
            "language": "es",
            "payload": {"claim_type": "insurance", "description": "Fuga en el techo de la cocina."},
        },
    ).json()
    _shorten_first_response(platform, task["id"])

    def breaches() -> list[Received]:
        return [r for r in receiver.accepted() if r.event["data"].get("task_id") == task["id"]]

    deadline = time.monotonic() + 60
    while not breaches() and time.monotonic() < deadline:
        time.sleep(0.5)
    found = breaches()
    assert [r.event["type"] for r in found] == ["sla.breached"]
    assert found[0].event["data"]["metric"] == "first_response"
    signing.verify(secret, found[0].headers, found[0].body)
    time.sleep(6)  # another sweep or two: the breach is never sent again
    assert len(breaches()) == 1
    clocks = client.get(f"/v1/tasks/{task['id']}/sla").json()
    first = next(c for c in clocks if c["metric"] == "first_response")
    assert first["outcome"] == "breached" and first["breached_at"] == first["due_at"]
