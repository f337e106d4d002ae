"""The agent's workspace pages: home, next task, a task's page and its actions."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.database import Database
from tests.routing.world import build


def test_an_agent_lands_on_the_workspace_and_takes_work_from_it(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    world = build(app, client, db)
    task = world.submit(client)
    http = world.person.http
    home = http.get("/home", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/workspace"
    page = http.get("/workspace")
    assert page.status_code == 200 and 'data-testid="next-task"' in page.text
    csrf = world.person.headers["X-CSRF-Token"]
    taken = http.post("/workspace/next", data={"csrf_token": csrf}, follow_redirects=False)
    assert taken.headers["location"] == f"/workspace/tasks/{task['id']}"  # offline: pressing it goes online
    shown = http.get(taken.headers["location"])
    assert "Double prélèvement sur ma facture" in shown.text
    revision = re.search(r'name="revision" value="(\d+)"', shown.text)
    assert revision
    started = http.post(
        f"/workspace/tasks/{task['id']}/transitions",
        data={"csrf_token": csrf, "action": "start", "revision": revision.group(1)},
        follow_redirects=False,
    )
    assert started.status_code == 303
    assert client.get(f"/v1/tasks/{task['id']}", headers=world.as_client).json()["status"] == "in_progress"


def test_nothing_to_take_says_why_in_the_agents_language(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    world = build(app, client, db)
    csrf = world.person.headers["X-CSRF-Token"]
    answer = world.person.http.post(
        "/workspace/next", data={"csrf_token": csrf}, headers={"Accept-Language": "fr"}, follow_redirects=True
    )
    assert 'data-testid="routing-reason"' in answer.text


def test_a_workspace_form_without_its_csrf_token_is_refused(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    world = build(app, client, db)
    answer = world.person.http.post("/workspace/next", data={}, follow_redirects=False)
    assert answer.status_code == 403
