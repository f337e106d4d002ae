"""A client tenant with an API token holding every scope, for the work API tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from services.core.database import Database
from tests.factories import Tenant, bearer, make_tenant, token


@dataclass
class Caller:
    tenant: Tenant
    headers: dict[str, str]


@pytest.fixture
def acme(client: TestClient, db: Database) -> Caller:
    tenant = make_tenant(db)
    return Caller(tenant, bearer(token(client, tenant.client_id, tenant.client_secret)))


@pytest.fixture
def queue_id(client: TestClient, acme: Caller) -> str:
    answer = client.post(
        "/v1/queues", headers=acme.headers, json={"name": "Support FR", "task_kind": "support_ticket"}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])
