"""Push mode on the real worker and beat of ``bpo serve``: an offer that times out goes to
the next candidate, and a cancelled task's offer is rescinded."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.live import LivePlatform, api_headers, until

pytestmark = pytest.mark.slow


def _agent(platform: LivePlatform, email: str) -> httpx.Client:
    """A signed-in agent calling the API with the session cookie and the CSRF token."""
    http = httpx.Client(base_url=platform.url, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/login").text)
    assert token
    http.post("/login", data={"email": email, "password": "bpo-demo-2026", "csrf_token": token.group(1)})
    http.headers["X-CSRF-Token"] = http.cookies["bpo_csrf"]
    assert http.put("/v1/agents/me/presence", json={"presence": "online"}).status_code == 200
    return http


def test_offers_time_out_to_the_next_candidate_and_are_rescinded_on_cancel(platform: LivePlatform) -> None:
    client = httpx.Client(
        base_url=platform.url, headers=api_headers(platform, "Assurances Lumière"), timeout=30
    )
    operator = httpx.Client(
        base_url=platform.url, headers=api_headers(platform, "Backstage Operations"), timeout=30
    )
    queue = client.post(
        "/v1/queues",
        json={
            "name": "Urgences EN (push)",
            "task_kind": "support_ticket",
            "languages": ["en"],
            "mode": "push",
            "out_of_hours": True,
            "routing": {"offer_timeout_seconds": 5},
        },
    ).json()
    teams = {t["name"]: t["id"] for t in operator.get("/v1/teams").json()["items"]}
    for name, rank in (("Bucharest FR/RO/EN", "primary"), ("Manila EN night shift", "secondary")):
        made = operator.post(
            "/v1/engagements", json={"queue_id": queue["id"], "team_id": teams[name], "rank": rank}
        )
        assert made.status_code == 201, made.text
    mihai, maria = (
        _agent(platform, "mihai.agent@carpati.example"),
        _agent(platform, "maria.agent@manilahub.example"),
    )
    task = client.post(
        "/v1/tasks",
        json={
            "queue_id": queue["id"],
            "title": "Card blocked abroad",
            "payload": {"description": "Card refused."},
            "language": "en",
        },
    ).json()

    def offered_to(agent: httpx.Client) -> Any:
        agent.put("/v1/agents/me/presence", json={"presence": "online"})  # the heartbeat
        return [o for o in agent.get("/v1/offers").json()["items"] if o["task"]["id"] == task["id"]]

    first = until(lambda: offered_to(mihai), 30)[0]  # the primary team's agent first
    second = until(lambda: offered_to(maria), 40)[0]  # the beat expired it and offered it on
    assert mihai.post(f"/v1/offers/{first['id']}/accept").json()["offer_status"] == "expired"

    cancelled = client.post(f"/v1/tasks/{task['id']}/transitions", json={"action": "cancel"})
    assert cancelled.status_code == 200, cancelled.text
    late = maria.post(f"/v1/offers/{second['id']}/accept")
    assert late.status_code == 409 and late.json()["offer_status"] == "rescinded"
