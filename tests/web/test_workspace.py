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


def test_a_team_lead_sees_the_board_and_sets_an_agents_capacity(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    from tenants.principal import Role
    from tests.factories import make_user
    from tests.routing.world import Person

    world = build(app, client, db)
    world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    lead = Person(app, make_user(db, world.provider.organization, [Role.TEAM_LEAD]))
    per_kind = {"capacity": {"*": 1, "claim": 4}}
    assert (
        client.patch(f"/v1/agents/{world.agent.id}", headers=world.as_provider, json=per_kind).status_code
        == 200
    )
    board = lead.http.get("/teams")
    assert board.status_code == 200, board.text
    assert board.text.count('data-testid="agent-row"') == 1 and "Bucharest" in board.text
    assert board.text.count('data-testid="queue-row"') == 1 and world.queue.name in board.text
    saved = lead.http.post(
        f"/teams/agents/{world.agent.id}/capacity",
        data={"csrf_token": lead.headers["X-CSRF-Token"], "capacity": "3"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert client.get(f"/v1/agents/{world.agent.id}", headers=world.as_provider).json()["capacity"] == {
        "*": 3,
        "claim": 4,  # the board sets the default; the per-kind capacities stay
    }
    assert world.person.http.get("/teams").status_code == 403  # an agent is no lead


def test_the_operator_engages_a_team_from_the_page_and_residency_is_said(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    from tenants.principal import OrgKind, Role
    from tests.factories import make_team, make_tenant, make_user
    from tests.routing.world import Person

    world = build(app, client, db)
    operator = make_tenant(db, OrgKind.OPERATOR, country="IE")
    admin = Person(app, make_user(db, operator.organization, [Role.PLATFORM_ADMIN]))
    page = admin.http.get("/operator/engagements")
    assert page.status_code == 200 and "Bucharest" in page.text
    manila = make_team(
        db, make_tenant(db, OrgKind.PROVIDER, country="PH").organization, name="Manila", country="PH"
    )
    refused = admin.http.post(
        "/operator/engagements",
        data={
            "csrf_token": admin.headers["X-CSRF-Token"],
            "queue_id": str(world.queue.id),
            "team_id": str(manila.id),
        },
    )
    assert refused.status_code == 422 and 'data-testid="problem"' in refused.text
    task = world.submit(client)
    trace = admin.http.get(f"/operator/tasks/{task['id']}/routing")
    assert trace.status_code == 200 and 'data-testid="decision"' in trace.text
    assert "Bucharest" in trace.text and str(world.team.id) not in trace.text  # teams by name
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    taken = admin.http.get(f"/operator/tasks/{task['id']}/routing")
    assert "Taken by the agent" in taken.text and 'data-testid="winner"' in taken.text
    assert str(world.agent.id) not in taken.text  # the agent by name


def test_the_workspace_shows_an_offer_with_its_countdown_and_accepts_it(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    from services.core.time import utcnow
    from services.routing import offers
    from tenants.scoping import AccessScope, bind

    world = build(app, client, db, mode="push")
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    with db.session() as session:
        bind(session, AccessScope.everything())
        offers.sweep(session, utcnow())
    page = world.person.http.get("/workspace")
    assert 'data-testid="countdown"' in page.text and "Double prélèvement" in page.text
    action = re.search(r'action="(/workspace/offers/[^"]+/accept)"', page.text)
    assert action
    taken = world.person.http.post(
        action.group(1), data={"csrf_token": world.person.headers["X-CSRF-Token"]}, follow_redirects=False
    )
    assert taken.headers["location"] == f"/workspace/tasks/{task['id']}"


def test_the_task_page_shows_the_clients_answer_without_a_reload(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    """The page polls its live part: status, actions and the question form (with the
    revision they need; what is typed in the question stays), and the conversation,
    swapped out of band."""
    world = build(app, client, db)
    task = world.submit(client)
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    url = f"/v1/tasks/{task['id']}/transitions"
    assert world.person.post(url, json={"action": "start"}).status_code == 200
    asked = world.person.post(url, json={"action": "ask_client", "comment": "Quel numéro de facture ?"})
    assert asked.status_code == 200
    http = world.person.http
    shown = http.get(f"/workspace/tasks/{task['id']}")
    assert f'hx-get="/workspace/tasks/{task["id"]}/live"' in shown.text
    assert 'data-testid="action-ask_client"' not in shown.text  # waiting on the client
    answered = client.post(
        url, headers=world.as_client, json={"action": "client_replied", "comment": "F-2026-118"}
    )
    assert answered.status_code == 200
    live = http.get(f"/workspace/tasks/{task['id']}/live")
    assert live.status_code == 200 and "<html" not in live.text  # a fragment, not a page
    assert "F-2026-118" in live.text and 'id="comments" hx-swap-oob="true"' in live.text
    revision = answered.json()["revision"]
    assert f'name="revision" value="{revision}"' in live.text and 'data-testid="action-resolve"' in live.text
    form = r'<form[^>]*>(?:(?!</form>).)*data-testid="question"(?:(?!</form>).)*</form>'
    question = re.search(form, live.text, re.S)
    assert question, "the question form comes back with the task in progress"
    assert f'name="revision" value="{revision}"' in question.group(0) and "hx-preserve" in question.group(0)
    stranger = build(app, client, db)  # another provider's agent reads nothing of it
    assert stranger.person.http.get(f"/workspace/tasks/{task['id']}/live").status_code == 404
