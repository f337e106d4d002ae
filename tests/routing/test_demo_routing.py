"""Routing on the demo seed, tried as a newcomer would: the Bucharest team's backlog,
shared by Lumière (share 2) and Iberia (share 1), drains by their shares."""

from __future__ import annotations

from collections import Counter

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services import demo
from services.core.database import Database
from tenants.scoping import AccessScope, bind
from tests.routing.world import Person


def test_the_demo_bucharest_backlog_drains_by_the_clients_shares(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        demo.seed(session)
    mihai = Person(app, "mihai.agent@carpati.example", demo.DEMO_PASSWORD)
    assert mihai.put("/v1/agents/me/presence", json={"presence": "online"}).status_code == 200
    taken: Counter[str] = Counter()
    for _ in range(18):
        task = mihai.post("/v1/agents/me/next-task")
        assert task.status_code == 200, task.text
        taken[task.json()["external_ref"].split("-")[0]] += 1
        for action in ("start", "resolve"):
            url = f"/v1/tasks/{task.json()['id']}/transitions"
            assert mihai.post(url, json={"action": action}).status_code == 200
    # Lumière's tickets (LUM) and Iberia's claims (SIN), 2:1; a claim file's second task
    # follows its first (stickiness), which the shares make up for on the next turns.
    assert abs(taken["LUM"] - 12) <= 2 and abs(taken["SIN"] - 6) <= 2, taken
