"""Cross-tenant isolation of the API, generated from the OpenAPI document.

Every ``/v1`` operation is found in the document, not in a hand-kept list: a new
route is covered the day it is added. A route whose path names an id needs a
factory below that makes such an object for tenant A; the suite fails until it
has one. Tenant B, holding every scope, must get 404 on each of A's objects, and
no response B gets may contain anything that identifies A.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.core.database import Database
from services.core.settings import Settings
from tests.factories import (
    PDF,
    Tenant,
    bearer,
    make_agent,
    make_api_client,
    make_attachment,
    make_calendar,
    make_delivery,
    make_engagement,
    make_import,
    make_org,
    make_policy,
    make_queue,
    make_task,
    make_team,
    make_tenant,
    make_webhook_endpoint,
    token,
)

# path parameter -> factory making one of tenant A's objects, returning its id, the
# strings that identify it (which tenant B must never see) and, for a nested object,
# the ids of its parents in the path ({"task_id": ...} for an attachment)
Made = tuple[uuid.UUID, list[str]] | tuple[uuid.UUID, list[str], dict[str, uuid.UUID]]
Factory = Callable[[Database, Settings, Tenant], Made]
# tenant A, tenant B, and the bearer headers of each
TwoTenants = tuple[Tenant, Tenant, dict[str, str], dict[str, str]]


def _organization(db: Database, settings: Settings, tenant: Tenant) -> Made:
    return tenant.organization.id, [str(tenant.organization.id), tenant.organization.name]


def _api_client(db: Database, settings: Settings, tenant: Tenant) -> Made:
    from sqlalchemy import select

    from services.identity.models import ApiClient
    from tenants.scoping import AccessScope, bind

    client_id, _secret = make_api_client(db, tenant.organization)
    with db.session() as session:
        bind(session, AccessScope.everything())
        row_id = session.scalars(select(ApiClient.id).where(ApiClient.client_id == client_id)).one()
    return row_id, [str(row_id), client_id]


def _queue(db: Database, settings: Settings, tenant: Tenant) -> Made:
    queue = make_queue(db, tenant.organization)
    return queue.id, [str(queue.id), queue.name]


def _task(db: Database, settings: Settings, tenant: Tenant) -> Made:
    task = make_task(db, make_queue(db, tenant.organization), external_ref=f"A-{uuid.uuid4().hex[:12]}")
    assert task.external_ref is not None
    return task.id, [str(task.id), task.external_ref]


def _endpoint(db: Database, settings: Settings, tenant: Tenant) -> Made:
    endpoint = make_webhook_endpoint(
        db, tenant.organization, url=f"https://a-{uuid.uuid4().hex[:8]}.example/in"
    )
    return endpoint.id, [str(endpoint.id), endpoint.url]


def _delivery(db: Database, settings: Settings, tenant: Tenant) -> Made:
    delivery = make_delivery(db, tenant.organization)
    return delivery.id, [str(delivery.id), str(delivery.event_id)]


def _attachment(db: Database, settings: Settings, tenant: Tenant) -> Made:
    task = make_task(db, make_queue(db, tenant.organization))
    attachment = make_attachment(db, settings, task, f"contrat-{uuid.uuid4().hex[:8]}.pdf")
    return attachment.id, [str(attachment.id), attachment.filename], {"task_id": task.id}


def _import(db: Database, settings: Settings, tenant: Tenant) -> Made:
    ref = f"IMP-{uuid.uuid4().hex[:10]}"
    content = f"title,description,external_ref\nImported,Une ligne importée,{ref}\n".encode()
    job = make_import(db, settings, make_queue(db, tenant.organization), content)
    return job.id, [str(job.id), ref]


def _calendar(db: Database, settings: Settings, tenant: Tenant) -> Made:
    calendar = make_calendar(db, tenant.organization, name=f"Cal-{uuid.uuid4().hex[:10]}")
    return calendar.id, [str(calendar.id), calendar.name]


def _policy(db: Database, settings: Settings, tenant: Tenant) -> Made:
    """A policy, and a task whose first response is already breached (for the reports)."""
    from datetime import timedelta

    from sqlalchemy import select

    from services.core.time import utcnow
    from services.sla import sweep
    from services.sla.models import SlaPolicy
    from tenants.scoping import AccessScope, bind

    with db.session() as session:  # a client has one policy: made once, found after
        bind(session, AccessScope.everything())
        policy = session.scalars(select(SlaPolicy).where(SlaPolicy.tenant_id == tenant.id)).first()
    policy = policy or make_policy(db, tenant.organization)
    task = make_task(db, make_queue(db, tenant.organization))
    with db.session() as session:
        bind(session, AccessScope.everything())
        sweep.sweep(session, now=utcnow() + timedelta(hours=2))
    return policy.id, [str(policy.id), str(task.id)]


def _provider_team(db: Database) -> Any:
    from tenants.principal import OrgKind

    provider = make_org(db, OrgKind.PROVIDER, country="RO")
    return provider, make_team(db, provider, name=f"Echipa-{uuid.uuid4().hex[:10]}")


def _team(db: Database, settings: Settings, tenant: Tenant) -> Made:
    """A provider's team: no client, and no other provider, reads it."""
    _provider, team = _provider_team(db)
    return team.id, [str(team.id), team.name]


def _agent(db: Database, settings: Settings, tenant: Tenant) -> Made:
    provider, team = _provider_team(db)
    agent = make_agent(db, provider, team, email=f"agent-{uuid.uuid4().hex[:10]}@carpati.test")
    return agent.id, [str(agent.id), agent.email]


def _engagement(db: Database, settings: Settings, tenant: Tenant) -> Made:
    _provider, team = _provider_team(db)
    engagement = make_engagement(db, make_queue(db, tenant.organization), team)
    return engagement.id, [str(engagement.id)]


def _offer(db: Database, settings: Settings, tenant: Tenant) -> Made:
    """A task of A's push queue offered to an agent of an engaged team."""
    from services.core.time import utcnow
    from services.routing import offers
    from tenants.scoping import AccessScope, bind
    from tests.factories import set_online

    provider, team = _provider_team(db)
    queue = make_queue(db, tenant.organization, mode="push")
    make_engagement(db, queue, team)
    set_online(db, make_agent(db, provider, team))
    task = make_task(db, queue)
    with db.session() as session:
        bind(session, AccessScope.everything())
        offers.sweep(session, utcnow())
        from sqlalchemy import select

        from services.routing.models import Offer

        offer_id = session.scalars(select(Offer.id).where(Offer.task_id == task.id)).one()
    return offer_id, [str(offer_id)]


def _billed(db: Database, tenant: Tenant) -> Any:
    """A's finalised invoice of last month, with an SLA credit line (made once per tenant)."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from services.billing import close, contracts, periods
    from services.billing.models import InvoiceLine, IssuingEntity
    from services.core.time import month_bounds, utcnow
    from services.sla.models import SlaClock
    from tenants.scoping import AccessScope, bind
    from tests.factories import advance, make_contract, make_issuing_entity, record_usage

    period = periods.previous_period(utcnow(), "Europe/Paris")
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = close.current_invoice(session, tenant.organization.id, period)
        has_entity = session.scalar(select(IssuingEntity.id).where(IssuingEntity.code == "IE"))
    if found is None:
        if has_entity is None:
            make_issuing_entity(db)
        credits = {"metrics": {"resolution": [{"below": 99, "credit_percent": 5}]}}
        with db.session() as session:
            bind(session, AccessScope.everything())
            has_contract = contracts.contract_of(session, tenant.organization.id) is not None
        if not has_contract:
            make_contract(db, tenant.organization, sla_credits=credits, billing_timezone="Europe/Paris")
        middle = month_bounds(period, "Europe/Paris")[0] + timedelta(days=10)
        record_usage(db, tenant.organization, "task_completed", 7, middle, task_kind="support_ticket")
        task = make_task(db, make_queue(db, tenant.organization))
        advance(db, task, "assign", "start", "resolve")
        with db.session() as session:
            bind(session, AccessScope.everything())
            session.execute(
                update(SlaClock)
                .where(SlaClock.task_id == task.id)
                .values(outcome="breached", breached_at=middle, settled_at=middle)
            )
            found = close.close(session, tenant.organization.id, period, timedelta(hours=1), finalise=True)
    with db.session() as session:
        bind(session, AccessScope.everything())
        line = session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == found.id, InvoiceLine.kind == "credit")
        ).one()
        return found.id, found.number, line.id, found.contract_id


def _contract(db: Database, settings: Settings, tenant: Tenant) -> Made:
    *_, contract_id = _billed(db, tenant)
    return contract_id, [str(contract_id)]


def _invoice(db: Database, settings: Settings, tenant: Tenant) -> Made:
    invoice_id, number, _line, _contract = _billed(db, tenant)
    return invoice_id, [str(invoice_id), number]


def _line(db: Database, settings: Settings, tenant: Tenant) -> Made:
    invoice_id, _number, line_id, _contract = _billed(db, tenant)
    return line_id, [str(line_id)], {"invoice_id": invoice_id}


FACTORIES: dict[str, Factory] = {
    "organization_id": _organization,
    "api_client_id": _api_client,
    "queue_id": _queue,
    "task_id": _task,
    "endpoint_id": _endpoint,
    "delivery_id": _delivery,
    "attachment_id": _attachment,
    "import_id": _import,
    "calendar_id": _calendar,
    "policy_id": _policy,
    "team_id": _team,
    "agent_id": _agent,
    "engagement_id": _engagement,
    "offer_id": _offer,
    "contract_id": _contract,
    "invoice_id": _invoice,
    "line_id": _line,
}
# A provider's objects: the client that "owns" the other factories' objects does not see them.
PROVIDERS_OWN = {"team_id", "agent_id"}


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi()
    found = []
    for path, item in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                found.append((method, path, operation))
    return found


def _path_parameters(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]


def _minimal_body(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """The smallest body that passes validation, so that a 404 is not masked by a 422."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return _minimal_body(document["components"]["schemas"][name], document)
    if "anyOf" in schema:
        return _minimal_body(schema["anyOf"][0], document)
    if "enum" in schema:
        return schema["enum"][0]
    if "examples" in schema:  # a string with a pattern ("EUR")
        return schema["examples"][0]
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {key: _minimal_body(props[key], document) for key in schema.get("required", [])}
    if kind == "array":
        return [_minimal_body(schema["items"], document) for _ in range(schema.get("minItems", 0))]
    return {"string": "x", "integer": 1, "number": 1, "boolean": True, "array": []}.get(kind or "")


def _without_echo(body: Any) -> str:
    """The answer minus ``instance``, which only echoes the path B itself asked for."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "instance"}
    return json.dumps(body)


@pytest.fixture
def two_tenants(client: TestClient, db: Database) -> TwoTenants:
    a, b = make_tenant(db), make_tenant(db)
    return (
        a,
        b,
        bearer(token(client, a.client_id, a.client_secret)),
        bearer(token(client, b.client_id, b.client_secret)),
    )


def _ids_for(names: list[str], db: Database, settings: Settings, tenant: Tenant) -> dict[str, uuid.UUID]:
    """Ids for a path, innermost first, so that a nested object comes with its own parents."""
    ids: dict[str, uuid.UUID] = {}
    for name in reversed(names):
        if name not in ids:
            made = FACTORIES[name](db, settings, tenant)
            ids[name] = made[0]
            ids.update(made[2] if len(made) == 3 else {})
    return ids


def _ask(
    client: TestClient,
    document: dict[str, Any],
    method: str,
    url: str,
    operation: dict[str, Any],
    headers: dict[str, str],
) -> Any:
    """The operation on ``url`` with the smallest valid body (or a file), as ``headers``."""
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        return client.request(method, url, headers=headers, files={"file": ("a.pdf", PDF)})
    schema = content.get("application/json", {}).get("schema")
    return client.request(
        method, url, headers=headers, json=_minimal_body(schema, document) if schema else None
    )


def test_every_id_in_a_v1_path_has_a_factory(app: FastAPI) -> None:
    missing = {
        f"{method.upper()} {path}: {name}"
        for method, path, operation in _operations(app)
        for name in _path_parameters(operation)
        if name not in FACTORIES
    }
    assert not missing, f"add a factory to FACTORIES for: {sorted(missing)}"


def test_the_suite_finds_the_routes_it_must_cover(app: FastAPI) -> None:
    paths = {path for _m, path, _o in _operations(app)}
    assert {"/v1/me", "/v1/organizations/{organization_id}", "/v1/api-clients/{api_client_id}"} <= paths


def test_foreign_ids_answer_404_on_every_operation(
    app: FastAPI,
    client: TestClient,
    db: Database,
    settings: Settings,
    two_tenants: TwoTenants,
) -> None:
    a, _b, as_a, as_b = two_tenants
    document = app.openapi()
    checked = 0
    for method, path, operation in _operations(app):
        names = _path_parameters(operation)
        if not names:
            continue
        ids = _ids_for(names, db, settings, a)
        url = path.format(**ids)
        answer = _ask(client, document, method, url, operation, as_b)
        assert answer.status_code == 404, (
            f"{method.upper()} {path} as tenant B: {answer.status_code} {answer.text}"
        )
        assert answer.headers["content-type"].startswith("application/problem+json")
        if method == "get" and not set(names) & PROVIDERS_OWN:  # the control: A finds its object
            own = client.get(url, headers=as_a)
            assert own.status_code == 200, f"GET {path} as tenant A: {own.status_code} {own.text}"
        checked += 1
    assert checked >= 3


def test_no_response_to_tenant_b_contains_anything_of_tenant_a(
    app: FastAPI,
    client: TestClient,
    db: Database,
    settings: Settings,
    two_tenants: TwoTenants,
) -> None:
    a, _b, as_a, as_b = two_tenants
    markers = [a.admin_email, a.client_id]
    ids: dict[str, uuid.UUID] = {}
    for name, factory in FACTORIES.items():
        made = factory(db, settings, a)
        ids[name] = made[0]
        markers += made[1]
        ids.update(made[2] if len(made) == 3 else {})  # nested objects bring their parents
    seen_by_a = 0
    for method, path, _operation in _operations(app):
        if method != "get":
            continue
        url = path.format(**ids)
        answer = client.get(url, headers=as_b)
        shown = _without_echo(answer.json())
        leaked = [m for m in markers if m in shown]
        assert not leaked, f"GET {path} as tenant B shows {leaked}"
        seen_by_a += sum(m in client.get(url, headers=as_a).text for m in markers)
    assert seen_by_a > 0, "the markers never appear even for tenant A: the check could not fail"


@pytest.fixture
def engaged_provider(client: TestClient, db: Database, two_tenants: TwoTenants) -> tuple[Any, dict[str, str]]:
    """A provider engaged on one queue of tenant A: it has grants on A, for that queue only."""
    from tenants.principal import OrgKind

    a = two_tenants[0]
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    team = make_team(db, provider.organization)
    engaged_queue = make_queue(db, a.organization)
    make_engagement(db, engaged_queue, team)
    return engaged_queue, bearer(token(client, provider.client_id, provider.client_secret))


def test_a_provider_gets_404_on_every_id_but_the_tasks_of_its_queue(
    app: FastAPI,
    client: TestClient,
    db: Database,
    settings: Settings,
    two_tenants: TwoTenants,
    engaged_provider: tuple[Any, dict[str, str]],
) -> None:
    """Engaged on one of A's queues, the provider still finds none of A's objects that the
    factories make elsewhere: tasks of other queues, the contract's SLA, webhooks, imports,
    API clients, the organisation, other providers' teams and agents."""
    a, _b, _as_a, _as_b = two_tenants
    _queue, as_provider = engaged_provider
    document = app.openapi()
    checked = 0
    for method, path, operation in _operations(app):
        names = _path_parameters(operation)
        if not names:
            continue
        ids = _ids_for(names, db, settings, a)
        answer = _ask(client, document, method, path.format(**ids), operation, as_provider)
        assert answer.status_code == 404, (
            f"{method.upper()} {path} as a provider: {answer.status_code} {answer.text}"
        )
        checked += 1
    assert checked >= 10


def test_no_answer_to_an_engaged_provider_contains_the_clients_contract(
    app: FastAPI,
    client: TestClient,
    db: Database,
    settings: Settings,
    two_tenants: TwoTenants,
    engaged_provider: tuple[Any, dict[str, str]],
) -> None:
    """Every GET the engaged provider may make, on the task it works (its history, routing,
    attachments, SLA slack) and on every list, shows nothing of the client's contract,
    invoices or SLA policy, while the client reads them."""
    a, _b, as_a, _as_b = two_tenants
    queue, as_provider = engaged_provider
    policy_id, _policy_markers = _policy(db, settings, a)
    invoice_id, number, _line_id, contract_id = _billed(db, a)
    markers = [str(contract_id), str(invoice_id), number, str(policy_id)]
    task = make_task(db, queue, external_ref=f"A-{uuid.uuid4().hex[:12]}")
    attachment = make_attachment(db, settings, task)
    own = {"queue_id": queue.id, "task_id": task.id, "attachment_id": attachment.id}
    answered = 0
    for method, path, operation in _operations(app):
        if method != "get":
            continue
        names = _path_parameters(operation)
        ids = {**_ids_for([n for n in names if n not in own], db, settings, a), **own}
        answer = client.get(path.format(**ids), headers=as_provider)
        is_json = "json" in answer.headers.get("content-type", "")
        shown = _without_echo(answer.json()) if is_json else answer.text  # a file: its bytes
        leaked = [m for m in markers if m in shown]
        assert not leaked, f"GET {path} as the engaged provider shows {leaked}"
        answered += answer.status_code == 200 and bool(set(names) & set(own))
    assert answered >= 4, "the provider read too little of its task for the check to mean anything"
    assert str(contract_id) in client.get(f"/v1/contracts/{contract_id}", headers=as_a).text
    assert number in client.get(f"/v1/invoices/{invoice_id}", headers=as_a).text
