"""Teams, agents, presence and engagements through the API, and what each refuses."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.database import Database
from tenants.principal import OrgKind, Role
from tests.factories import OPEN_ALWAYS, Tenant, bearer, make_team, make_tenant, make_user, token
from tests.routing.world import World, build

TEAM = {
    "name": "Bucharest FR",
    "country": "RO",
    "timezone": "Europe/Bucharest",
    "calendar": {
        "timezone": "Europe/Bucharest",
        "weekly": {"mon": [["08:00", "17:00"]]},
        "holidays": {"country": "RO"},
    },
    "languages": [{"code": "fr", "level": "C1"}, {"code": "ro", "level": "native"}],
    "skills": [{"name": "billing", "level": 4}],
    "hourly_cost": {"amount": 1450, "currency": "EUR"},
}


@pytest.fixture
def provider(client: TestClient, db: Database) -> tuple[Tenant, dict[str, str]]:
    tenant = make_tenant(db, OrgKind.PROVIDER, country="RO")
    return tenant, bearer(token(client, tenant.client_id, tenant.client_secret))


def _post_team(client: TestClient, headers: dict[str, str], **changes: Any) -> Any:
    return client.post("/v1/teams", headers=headers, json={**TEAM, **changes})


def test_a_provider_creates_a_team_and_reads_it_back(
    client: TestClient, provider: tuple[Tenant, dict[str, str]]
) -> None:
    _tenant, headers = provider
    created = _post_team(client, headers)
    assert created.status_code == 201, created.text
    team = created.json()
    assert team["languages"] == TEAM["languages"] and team["hourly_cost"] == {
        "amount": 1450,
        "currency": "EUR",
    }
    assert client.get(f"/v1/teams/{team['id']}", headers=headers).json()["name"] == "Bucharest FR"
    assert [t["id"] for t in client.get("/v1/teams", headers=headers).json()["items"]] == [team["id"]]


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"languages": [{"code": "xx-123-notatag", "level": "C1"}]}, "/languages/0/code"),
        ({"languages": [{"code": "fr", "level": "C3"}]}, "/languages/0/level"),
        ({"skills": [{"name": "billing", "level": 6}]}, "/skills/0/level"),
        ({"skills": [{"name": "billing", "level": 0}]}, "/skills/0/level"),
        ({"calendar": {"timezone": "UTC", "weekly": {}}}, "/calendar"),
        ({"country": "EU"}, "/country"),
        ({"hourly_cost": {"amount": 100, "currency": "XYZ"}}, "/hourly_cost/currency"),
    ],
)
def test_bad_team_fields_are_422_with_their_pointer(
    client: TestClient, provider: tuple[Tenant, dict[str, str]], changes: dict[str, Any], pointer: str
) -> None:
    _tenant, headers = provider
    answer = _post_team(client, headers, **changes)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert any(error["pointer"].startswith(pointer) for error in answer.json()["errors"]), answer.json()
    assert client.get("/v1/teams", headers=headers).json()["items"] == []  # nothing half made


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"languages": [{"code": "xx-123-notatag", "level": "C1"}]}, "/languages/0/code"),
        ({"languages": [{"code": "de", "level": "D1"}]}, "/languages/0/level"),
        ({"skills": [{"name": "claims", "level": 9}]}, "/skills/0/level"),
        ({"calendar": {"timezone": "UTC", "weekly": {}}}, "/calendar"),
        ({"capacity": {"*": -1}}, "/capacity"),
    ],
)
def test_bad_agent_fields_are_422_with_their_pointer(
    app: FastAPI, client: TestClient, db: Database, changes: dict[str, Any], pointer: str
) -> None:
    world: World = build(app, client, db)
    url = f"/v1/agents/{world.agent.id}"
    before = client.get(url, headers=world.as_provider).json()
    answer = client.patch(url, headers=world.as_provider, json=changes)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert any(error["pointer"].startswith(pointer) for error in answer.json()["errors"]), answer.json()
    assert client.get(url, headers=world.as_provider).json() == before  # nothing half changed


def test_a_provider_cannot_create_a_team_for_another_provider(
    client: TestClient, db: Database, provider: tuple[Tenant, dict[str, str]]
) -> None:
    _tenant, headers = provider
    other = make_tenant(db, OrgKind.PROVIDER, country="PL")
    answer = _post_team(client, headers, provider_id=str(other.organization.id))
    assert answer.status_code == 404, answer.text


def test_a_provider_cannot_make_an_agent_of_another_organisations_user(
    client: TestClient, db: Database, provider: tuple[Tenant, dict[str, str]]
) -> None:
    from sqlalchemy import select

    from services.identity.models import User
    from tenants.scoping import AccessScope, bind

    tenant, headers = provider
    team = make_team(db, tenant.organization)
    other = make_tenant(db, OrgKind.PROVIDER, country="PL")
    email = make_user(db, other.organization, [Role.AGENT])
    with db.session() as session:
        bind(session, AccessScope.everything())
        user_id = session.scalars(select(User.id).where(User.email == email)).one()
    answer = client.post(
        "/v1/agents", headers=headers, json={"user_id": str(user_id), "team_id": str(team.id)}
    )
    assert answer.status_code == 404, answer.text


def test_a_client_reads_no_team_agent_or_cost(app: FastAPI, client: TestClient, db: Database) -> None:
    world: World = build(app, client, db)
    assert client.get(f"/v1/teams/{world.team.id}", headers=world.as_client).status_code == 404
    assert client.get(f"/v1/agents/{world.agent.id}", headers=world.as_client).status_code == 404
    assert client.get("/v1/teams", headers=world.as_client).json()["items"] == []
    assert client.get("/v1/agents", headers=world.as_client).json()["items"] == []
    engagements = client.get("/v1/engagements", headers=world.as_client)
    assert engagements.status_code == 200 and "hourly_cost" not in engagements.text


def test_presence_expires_without_heartbeats(app: FastAPI, client: TestClient, db: Database) -> None:
    from datetime import timedelta

    from services.core.time import utcnow
    from services.workforce.models import Agent
    from tenants.scoping import AccessScope, bind

    world = build(app, client, db)
    assert (
        world.person.put("/v1/agents/me/presence", json={"presence": "online"}).json()["presence"] == "online"
    )
    with db.session() as session:  # the browser closed: no heartbeat since
        bind(session, AccessScope.everything())
        agent = session.get(Agent, world.agent.id)
        assert agent is not None
        agent.presence_expires_at = utcnow() - timedelta(seconds=1)
    assert world.person.get("/v1/agents/me").json()["presence"] == "offline"
    assert world.person.post("/v1/agents/me/next-task").json()["reason"] == "presence"


def test_team_calendars_take_the_sla_calendar_spec(
    client: TestClient, provider: tuple[Tenant, dict[str, str]]
) -> None:
    _tenant, headers = provider
    answer = _post_team(client, headers, calendar=OPEN_ALWAYS, name="Manila night shift", country="PH")
    assert answer.status_code == 201, answer.text


def test_the_account_manager_of_the_client_engages_a_team_and_no_one_else_may(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    """An operator creates engagements: the client's account manager (signed in, by their
    portfolio) may, another client's manager finds no queue, and neither the client nor the
    provider may engage anyone."""
    from sqlalchemy import select

    from services.identity.models import User
    from tenants import service as tenancy
    from tenants.scoping import AccessScope, bind
    from tests.factories import make_org, make_queue
    from tests.routing.world import Person

    world = build(app, client, db)
    queue = make_queue(db, world.client.organization, languages=["fr"])
    body = {"queue_id": str(queue.id), "team_id": str(world.team.id), "rank": "secondary", "share": 2}
    operator = make_org(db, OrgKind.OPERATOR, country="IE")
    managers = [make_user(db, operator, [Role.ACCOUNT_MANAGER], locale="en") for _ in range(2)]
    portfolios = (world.client.organization, make_org(db, OrgKind.CLIENT))
    with db.session() as session:
        bind(session, AccessScope.everything())
        for email, portfolio in zip(managers, portfolios, strict=True):
            manager_id = session.scalars(select(User.id).where(User.email == email)).one()
            tenancy.assign_account_manager(session, portfolio, manager_id)
    other = Person(app, managers[1]).post("/v1/engagements", json=body)
    assert other.status_code == 404 and other.json()["errors"][0]["pointer"] == "/queue_id", other.text
    for headers in (world.as_client, world.as_provider):
        assert client.post("/v1/engagements", headers=headers, json=body).status_code == 403
    made = Person(app, managers[0]).post("/v1/engagements", json=body)
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in body} == body
    listed = client.get("/v1/engagements", headers=world.as_provider, params={"queue_id": str(queue.id)})
    assert [e["id"] for e in listed.json()["items"]] == [made.json()["id"]]  # the provider sees it
