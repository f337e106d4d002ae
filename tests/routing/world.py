"""A small living platform for routing tests: a French client with a support queue, a
Romanian provider whose Bucharest team is engaged on it, an agent signed in to the API
with their session cookie, and an operator's API client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.database import Database
from tenants.principal import OrgKind
from tests.factories import (
    PASSWORD,
    Tenant,
    bearer,
    make_agent,
    make_engagement,
    make_queue,
    make_team,
    make_tenant,
    token,
)


class Person:
    """A signed-in person calling the API with their session cookie and CSRF token."""

    def __init__(self, app: FastAPI, email: str, password: str = PASSWORD) -> None:
        self.http = TestClient(app, base_url="http://localhost")
        page = self.http.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        login = self.http.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": csrf.group(1)},
            follow_redirects=False,
        )
        assert login.status_code == 303, login.text
        self.headers = {"X-CSRF-Token": self.http.cookies["bpo_csrf"]}

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.http.get(url, headers=self.headers, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.http.post(url, headers=self.headers, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.http.put(url, headers=self.headers, **kwargs)


@dataclass
class World:
    client: Tenant
    as_client: dict[str, str]
    as_operator: dict[str, str]
    provider: Tenant
    as_provider: dict[str, str]
    queue: Any
    team: Any
    agent: Any
    person: Person

    def submit(self, http: TestClient, queue: Any = None, **fields: Any) -> dict[str, Any]:
        """A task of the world's queue (or ``queue``), submitted by the client."""
        fields.setdefault("title", "Double prélèvement sur ma facture")
        fields.setdefault("payload", {"description": "J'ai été débité deux fois ce mois-ci."})
        fields.setdefault("language", "fr")
        answer = http.post(
            "/v1/tasks", headers=self.as_client, json={"queue_id": str((queue or self.queue).id), **fields}
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())


def build(app: FastAPI, http: TestClient, db: Database, **queue_fields: Any) -> World:
    client = make_tenant(db, OrgKind.CLIENT, country="FR")
    operator = make_tenant(db, OrgKind.OPERATOR, country="IE")
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    queue_fields.setdefault("languages", ["fr"])
    queue_fields.setdefault("residency", {"allow": ["EU"]})
    queue = make_queue(db, client.organization, **queue_fields)
    team = make_team(db, provider.organization, name="Bucharest", country="RO", timezone="Europe/Bucharest")
    make_engagement(db, queue, team)
    agent = make_agent(db, provider.organization, team)
    return World(
        client=client,
        as_client=bearer(token(http, client.client_id, client.client_secret)),
        as_operator=bearer(token(http, operator.client_id, operator.client_secret)),
        provider=provider,
        as_provider=bearer(token(http, provider.client_id, provider.client_secret)),
        queue=queue,
        team=team,
        agent=agent,
        person=Person(app, agent.email),
    )
