"""The real worker and beat of ``bpo serve`` relay the outbox to a client's receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.notify import signing
from tests.live import LivePlatform, api_headers
from tests.notify.receiver import Received, Receiver, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(fail_first=1)  # the first try of each event fails: the retry must come
    server = serve(found)
    yield found
    server.shutdown()


def test_state_changes_reach_the_receiver_through_worker_and_beat(
    platform: LivePlatform, receiver: Receiver
) -> None:
    headers = api_headers(platform, "Assurances Lumière")
    api = httpx.Client(base_url=platform.url, headers=headers, timeout=30)
    secret = api.post("/v1/webhook-endpoints", json={"url": receiver.url}).json()["secret"]
    queue = api.post("/v1/queues", json={"name": "Sinistres auto", "task_kind": "claim"}).json()
    task = api.post(
        "/v1/tasks",
        json={
            "queue_id": queue["id"],
            "title": "Bris de glace",
            "language": "fr",  # given: the worker's language detection adds no event of its own
            "payload": {"claim_type": "insurance", "description": "Pare-brise fissuré sur autoroute."},
        },
    ).json()
    api.post(f"/v1/tasks/{task['id']}/transitions", json={"action": "cancel"})

    def of_this_task() -> list[Received]:
        # The live platform is shared: other tests' tasks of the same client may be reported too.
        return [r for r in receiver.accepted() if r.event["data"].get("task", {}).get("id") == task["id"]]

    deadline = time.monotonic() + 60
    while len(of_this_task()) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [r.event["type"] for r in of_this_task()] == ["task.created", "task.status_changed"]
    for received in of_this_task():
        signing.verify(secret, received.headers, received.body)
        assert receiver.tries[received.headers["webhook-id"]] == 2  # the first try failed
