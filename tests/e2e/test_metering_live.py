"""Metering on the real worker and beat of ``bpo serve``: a task an agent resolves becomes
usage (its completion and its handle time) without anyone asking, and the client reads it.

Manila's agent works a queue of the Polish client made for the test, so that the demo's
Bucharest backlog (which the workspace's browser test takes from) is left as it is."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.test_push_live import _agent
from tests.live import LivePlatform, api_headers, until

pytestmark = pytest.mark.slow
CLIENT = "Mazowsze Logistyka sp. z o.o."


def _usage(client: httpx.Client, period: str, metric: str) -> Decimal:
    items = client.get("/v1/usage", params={"period": period, "metric": metric}).json()["items"]
    return sum((Decimal(str(item["quantity"])) for item in items), Decimal(0))


def test_a_resolved_task_is_metered_by_the_worker_and_read_by_the_client(platform: LivePlatform) -> None:
    client = httpx.Client(base_url=platform.url, headers=api_headers(platform, CLIENT), timeout=30)
    operator = httpx.Client(
        base_url=platform.url, headers=api_headers(platform, "Backstage Operations"), timeout=30
    )
    queue = client.post(
        "/v1/queues",
        json={
            "name": "Pilot EN (metering)",
            "task_kind": "support_ticket",
            "languages": ["en"],
            "out_of_hours": True,
        },
    ).json()
    teams = {t["name"]: t["id"] for t in operator.get("/v1/teams").json()["items"]}
    engaged = operator.post(
        "/v1/engagements", json={"queue_id": queue["id"], "team_id": teams["Manila EN night shift"]}
    )
    assert engaged.status_code == 201, engaged.text
    task = client.post(
        "/v1/tasks",
        json={
            "queue_id": queue["id"],
            "title": "Invoice copy",
            "payload": {"description": "Resend it."},
            "language": "en",
        },
    ).json()
    period = datetime.now(UTC).astimezone(ZoneInfo("Europe/Warsaw")).strftime("%Y-%m")
    before = _usage(client, period, "task_completed"), _usage(client, period, "handle_minutes")
    maria = _agent(platform, "maria.agent@manilahub.example")

    def work_next() -> Any:
        taken = maria.post("/v1/agents/me/next-task")
        assert taken.status_code == 200, taken.text
        for action in ("start", "resolve"):
            done = maria.post(f"/v1/tasks/{taken.json()['id']}/transitions", json={"action": action})
            assert done.status_code == 200, done.text
        return taken.json()["id"] == task["id"]

    assert until(work_next, 30)  # whatever else her queues hold comes first, worked the same way
    assert until(lambda: _usage(client, period, "task_completed") == before[0] + 1, 60)
    assert _usage(client, period, "handle_minutes") > before[1]  # the time in progress, too
