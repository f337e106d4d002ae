"""Cross-tenant isolation of the pages, generated from the routers the app includes.

Every page route whose path names an id (``services.api.PAGE_ROUTERS``) is asked for
one of client A's objects (or of the provider engaged on A's queue) by people of an
unrelated client and of an unrelated provider: none gets it (404 or 403, never 200), and
no answer contains what identifies the object. The engaged provider gets none of A's
contract, invoices, imports or webhooks, and A none of the provider's team pages. Each
route's rightful reader gets 200: the control that the id was right. A new page route
with an id is covered the day it is added; the suite fails until the id has an object
below.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api import PAGE_ROUTERS
from services.core.database import Database
from services.core.settings import Settings
from tenants.principal import OrgKind, Role
from tests.factories import (
    make_agent,
    make_attachment,
    make_engagement,
    make_import,
    make_queue,
    make_task,
    make_team,
    make_tenant,
    make_user,
    make_webhook_endpoint,
)
from tests.routing.world import Person
from tests.tenants.test_isolation_api import FACTORIES

# The client's own pages, which no provider reads (the engaged provider reads the task's
# portal page as it reads the task: its public comments and attachments).
CLIENT_SIDE = ("/portal/imports/", "/portal/webhooks/", "/billing/")
PROVIDER_SIDE = ("/teams/",)  # the provider's: no client reads them


@dataclass
class Objects:
    ids: dict[str, uuid.UUID]
    secrets: list[str]  # what identifies them, which no stranger may read


def _page_routes() -> list[str]:
    return sorted(
        route.path
        for router in PAGE_ROUTERS
        for route in router.routes
        if "{" in route.path and "GET" in getattr(route, "methods", set())
    )


def _rightful(path: str) -> str:
    """Who reads the page of A's object (the control)."""
    if path.startswith("/workspace/"):
        return "agent"
    if path.startswith(PROVIDER_SIDE):
        return "provider_admin"
    if path.startswith(("/operator/", "/billing/contracts/")):
        return "operator"
    return "client_admin"


@pytest.fixture
def objects(db: Database, settings: Settings) -> tuple[Objects, dict[str, str]]:
    """A's objects, the people who read them, and the strangers."""
    client = make_tenant(db, OrgKind.CLIENT, country="FR")
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    team = make_team(db, provider.organization, name=f"Echipa-{uuid.uuid4().hex[:8]}", country="RO")
    queue = make_queue(db, client.organization, languages=["fr"])
    make_engagement(db, queue, team)
    agent = make_agent(db, provider.organization, team, email=f"agent-{uuid.uuid4().hex[:8]}@carpati.test")
    reference = f"A-{uuid.uuid4().hex[:12]}"
    task = make_task(db, queue, language="fr", external_ref=reference)
    attachment = make_attachment(db, settings, task, f"contrat-{uuid.uuid4().hex[:8]}.pdf")
    imported = f"IMP-{uuid.uuid4().hex[:10]}"
    job = make_import(
        db, settings, queue, f"title,description,external_ref\nImporté,Une ligne,{imported}\n".encode()
    )
    endpoint = make_webhook_endpoint(
        db, client.organization, url=f"https://a-{uuid.uuid4().hex[:8]}.example/in"
    )
    FACTORIES["policy_id"](db, settings, client)  # the invoice's SLA credit needs the contract's SLA
    invoice_id, invoice_strings = FACTORIES["invoice_id"](db, settings, client)[:2]
    stranger_provider = make_tenant(db, OrgKind.PROVIDER, country="PL")
    stranger_team = make_team(db, stranger_provider.organization, country="PL")
    people = {
        "client_admin": client.admin_email,
        "provider_admin": provider.admin_email,
        "agent": agent.email,
        "operator": make_tenant(db, OrgKind.OPERATOR, country="IE").admin_email,
        "other_client": make_tenant(db, OrgKind.CLIENT, country="DE").admin_email,
        "other_provider": stranger_provider.admin_email,
        "other_lead": make_user(db, stranger_provider.organization, [Role.TEAM_LEAD]),
        "other_agent": make_agent(db, stranger_provider.organization, stranger_team).email,
    }
    found = Objects(
        ids={
            "task_id": task.id,
            "attachment_id": attachment.id,
            "import_id": job.id,
            "endpoint_id": endpoint.id,
            "team_id": team.id,
            "agent_id": agent.id,
            "invoice_id": invoice_id,
            "tenant_id": client.organization.id,
        },
        secrets=[reference, attachment.filename, imported, endpoint.url, team.name, agent.email]
        + [s for s in invoice_strings if not s.startswith(str(invoice_id))],
    )
    return found, people


def test_the_suite_finds_the_pages_it_must_cover() -> None:
    assert {"/workspace/tasks/{task_id}/live", "/portal/tasks/{task_id}", "/teams/{team_id}/edit"} <= set(
        _page_routes()
    )


def test_no_page_answers_a_stranger_with_an_object_of_another_tenant(
    app: FastAPI, client: TestClient, objects: tuple[Objects, dict[str, str]]
) -> None:
    found, emails = objects
    people = {name: Person(app, email) for name, email in emails.items()}
    checked = 0
    for path in _page_routes():
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        missing = [name for name in names if name not in found.ids]
        assert not missing, f"{path}: give the page suite an object for {missing}"
        url = path.format(**found.ids)
        rightful = _rightful(path)
        own = people[rightful].get(url)
        assert own.status_code == 200, f"GET {path} as {rightful}: {own.status_code}"
        strangers = ["other_client", "other_provider", "other_lead", "other_agent"]
        if path.startswith(CLIENT_SIDE):
            strangers += ["provider_admin", "agent"]  # engaged on the queue, never on the contract
        if path.startswith(PROVIDER_SIDE):
            strangers.append("client_admin")
        for name in strangers:
            answer = people[name].get(url, follow_redirects=False)
            assert answer.status_code in (403, 404), f"GET {path} as {name}: {answer.status_code}"
            leaked = [secret for secret in found.secrets if secret in answer.text]
            assert not leaked, f"GET {path} as {name} shows {leaked}"
        checked += 1
    assert checked >= 12
