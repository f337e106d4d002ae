"""Metering on the real worker and beat of ``bpo serve``: a task an agent resolves becomes
usage (its completion and its handle time) without anyone asking, and the client reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.test_push_live import _agent
from tests.live import LivePlatform, api_headers, until

pytestmark = pytest.mark.slow


def _completed(client: httpx.Client, period: str) -> Any:
    items = client.get("/v1/usage", params={"period": period, "metric": "task_completed"}).json()["items"]
    return sum(float(item["quantity"]) for item in items if item["task_kind"] == "support_ticket")


def test_a_resolved_task_is_metered_by_the_worker_and_read_by_the_client(platform: LivePlatform) -> None:
    client = httpx.Client(
        base_url=platform.url, headers=api_headers(platform, "Assurances Lumière"), timeout=30
    )
    period = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m")
    before = _completed(client, period)
    mihai = _agent(platform, "mihai.agent@carpati.example")
    taken = mihai.post("/v1/agents/me/next-task")
    assert taken.status_code == 200, taken.text
    task_id = taken.json()["id"]
    for action in ("start", "resolve"):
        done = mihai.post(f"/v1/tasks/{task_id}/transitions", json={"action": action})
        assert done.status_code == 200, done.text

    assert until(lambda: _completed(client, period) == before + 1, 60)
    minutes = client.get("/v1/usage", params={"period": period, "metric": "handle_minutes"}).json()["items"]
    assert minutes, "the time in progress was metered too"
