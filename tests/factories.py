"""Factories that speak the domain: they create through the services, never by raw inserts."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from services.core.database import Database
from services.core.settings import Settings
from services.identity import service as identity
from services.work import queues
from services.work import service as work
from services.work.history import Actor
from services.work.lifecycle import Action, Side
from services.work.models import Queue, Task
from services.work.schemas import QueueCreate, TaskCreate
from tenants import service as tenancy
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal, Role, permissions_for_roles
from tenants.scoping import AccessScope, bind

PASSWORD = "correct-horse-battery"
# The platform itself, for factory steps no client may take (routing, an agent's work).
OPERATOR = Principal(
    subject_id=uuid.UUID(int=0),
    subject_kind="user",
    org_id=uuid.UUID(int=0),
    org_kind=OrgKind.OPERATOR,
    roles=frozenset({Role.PLATFORM_ADMIN}),
    permissions=frozenset(Permission),
    tenant_ids=None,
    display_name="operator",
)
_counter = itertools.count(1)


@dataclass
class Tenant:
    organization: Organization
    admin_email: str
    client_id: str
    client_secret: str

    @property
    def id(self) -> object:
        return self.organization.id


def make_org(
    db: Database, kind: OrgKind = OrgKind.CLIENT, name: str | None = None, country: str = "FR"
) -> Organization:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return tenancy.create_organization(
            session, kind=kind, name=name or f"Org {next(_counter)}", country=country
        )


def make_user(
    db: Database,
    organization: Organization,
    roles: list[Role],
    email: str | None = None,
    locale: str | None = None,
) -> str:
    email = email or f"user{next(_counter)}@example.test"
    with db.session() as session:
        bind(session, AccessScope.everything())
        identity.create_user(
            session,
            organization,
            email=email,
            password=PASSWORD,
            display_name=email.split("@")[0],
            roles=roles,
            locale=locale,
        )
    return email


def make_api_client(db: Database, organization: Organization, scopes: str | None = None) -> tuple[str, str]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        created = identity.create_api_client(session, organization.id, "test client", scopes)
        return created.client.client_id, created.client_secret


def make_tenant(db: Database, kind: OrgKind = OrgKind.CLIENT, country: str = "FR") -> Tenant:
    organization = make_org(db, kind, country=country)
    admin_role = {
        OrgKind.CLIENT: Role.CLIENT_ADMIN,
        OrgKind.PROVIDER: Role.PROVIDER_ADMIN,
        OrgKind.OPERATOR: Role.PLATFORM_ADMIN,
    }[kind]
    email = make_user(db, organization, [admin_role])
    client_id, secret = make_api_client(db, organization)
    return Tenant(organization, email, client_id, secret)


def token(client: TestClient, client_id: str, secret: str, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    answer = client.post("/oauth/token", data=data, auth=(client_id, secret))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def principal_of(organization: Organization) -> Principal:
    """The organisation's administrator, as the services see a caller."""
    role = {
        OrgKind.CLIENT: Role.CLIENT_ADMIN,
        OrgKind.PROVIDER: Role.PROVIDER_ADMIN,
        OrgKind.OPERATOR: Role.PLATFORM_ADMIN,
    }[organization.kind]
    return Principal(
        subject_id=organization.id,
        subject_kind="user",
        org_id=organization.id,
        org_kind=organization.kind,
        roles=frozenset({role}),
        permissions=permissions_for_roles(frozenset({role})),
        tenant_ids=None if organization.kind is OrgKind.OPERATOR else frozenset({organization.id}),
        display_name=f"{organization.name} admin",
    )


def make_queue(
    db: Database, organization: Organization, task_kind: str = "support_ticket", **fields: Any
) -> Queue:
    fields.setdefault("name", f"Queue {next(_counter)}")
    principal = principal_of(organization)
    with db.session() as session:
        bind(session, principal.access)
        return queues.create_queue(session, principal, QueueCreate(task_kind=task_kind, **fields))


def make_task(db: Database, queue: Queue, **fields: Any) -> Task:
    """A task submitted to ``queue`` by its tenant's administrator."""
    fields.setdefault("title", "Refund not received for order 1042")
    fields.setdefault("payload", {"description": "I returned the parcel three weeks ago."})
    fields.setdefault("language", "en")
    with db.session() as session:
        bind(session, AccessScope.everything())
        principal = principal_of(tenancy.get_organization(session, queue.tenant_id))
        bind(session, principal.access)
        return work.create_task(session, principal, TaskCreate(queue_id=queue.id, **fields))


def advance(db: Database, task: Task, *actions: str) -> Task:
    """Move ``task`` through ``actions`` as the platform's operator would (system and provider steps)."""
    with db.session() as session:
        bind(session, AccessScope.everything())
        current = work.get_task(session, OPERATOR, task.id)
        actor = Actor("system", None, "operator", Side.OPERATOR)
        for action in actions:
            current = work.apply(session, actor, current, Action(action))
        return current


def make_webhook_endpoint(
    db: Database, organization: Organization, url: str = "https://hooks.example.com/in"
) -> Any:
    from services.notify import service as notify
    from services.notify.schemas import EndpointCreate

    principal = principal_of(organization)
    with db.session() as session:
        bind(session, principal.access)
        key = notify.sealer("test-secret-key-not-for-production")
        return notify.create_endpoint(session, principal, EndpointCreate(url=url), key).endpoint


def make_delivery(db: Database, organization: Organization) -> Any:
    """A delivery of a task's creation to a new endpoint of ``organization``."""
    from sqlalchemy import select

    from services.notify.models import WebhookDelivery
    from services.notify.relay import fan_out

    endpoint = make_webhook_endpoint(db, organization)
    make_task(db, make_queue(db, organization))
    with db.session() as session:
        bind(session, AccessScope.everything())
        while fan_out(session):
            pass
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        return session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(1)).one()


# The smallest well-formed PDF header a sniffer recognises.
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def make_attachment(db: Database, settings: Settings, task: Task, filename: str = "contrat.pdf") -> Any:
    """A PDF attached to ``task`` by its tenant's administrator, in the app's blob store."""
    from services.work import attachments
    from services.work.storage import blob_store_from_url

    store = blob_store_from_url(settings.blob_store_url, settings.data_dir.resolve())
    with db.session() as session:
        bind(session, AccessScope.everything())
        principal = principal_of(tenancy.get_organization(session, task.tenant_id))
        bind(session, principal.access)
        return attachments.add(
            session, principal, task.id, filename, [PDF], store, settings.attachment_max_bytes
        )


def make_import(db: Database, settings: Settings, queue: Queue, content: bytes, run: bool = True) -> Any:
    """A CSV import job for ``queue``, run to its end by the same code as the worker's."""
    import io

    from services.work import bulk, imports
    from services.work.storage import blob_store

    store = blob_store(settings)
    with db.session() as session:
        bind(session, AccessScope.everything())
        principal = principal_of(tenancy.get_organization(session, queue.tenant_id))
        bind(session, principal.access)
        order = imports.BulkRequest(queue.id, bulk.FileFormat.CSV, False, ",")
        job = imports.start_job(session, principal, order, io.BytesIO(content), len(content), store)
    if run:
        imports.run_job(db, store, job.id)
    return job


# A contract's service calendar: Paris office hours with a lunch break, French holidays.
PARIS_OFFICE = {
    "timezone": "Europe/Paris",
    "weekly": {d: [["09:00", "12:00"], ["13:30", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "FR", "subdivision": None},
    "closures": [],
    "openings": [],
}
# Every minute counts: clocks on it behave like calendar time, whatever the day.
ALWAYS_OPEN = {
    "timezone": "UTC",
    "weekly": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


def make_calendar(
    db: Database, organization: Organization, spec: dict[str, Any] | None = None, name: str | None = None
) -> Any:
    from services.sla import definitions
    from services.sla.schemas import CalendarCreate

    with db.session() as session:
        bind(session, AccessScope.everything())
        data = CalendarCreate(
            name=name or f"Calendar {next(_counter)}", spec=spec or PARIS_OFFICE, tenant_id=organization.id
        )
        return definitions.create_calendar(session, OPERATOR, data)


def make_policy(
    db: Database,
    organization: Organization,
    targets: list[dict[str, Any]] | None = None,
    calendar: str | None = None,
    **terms: Any,
) -> Any:
    """The organisation's SLA policy (set by the operator); by default 1 hour to first
    response and 8 hours to resolution, in calendar time."""
    from services.sla import definitions
    from services.sla.schemas import PolicyCreate

    targets = targets or [
        {"metric": "first_response", "minutes": 60, "business_time": False},
        {"metric": "resolution", "minutes": 480, "business_time": False},
    ]
    with db.session() as session:
        bind(session, AccessScope.everything())
        data = PolicyCreate(
            name="Contract SLA", tenant_id=organization.id, calendar=calendar, targets=targets, **terms
        )
        return definitions.create_policy(session, OPERATOR, data)


# ---------------------------------------------------------------- workforce

OPEN_ALWAYS = {
    "timezone": "UTC",
    "weekly": {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


def make_team(db: Database, provider: Organization, **fields: Any) -> Any:
    from services.workforce import teams
    from services.workforce.schemas import TeamCreate

    fields.setdefault("name", f"Team {next(_counter)}")
    fields.setdefault("country", provider.country)
    fields.setdefault("timezone", "UTC")
    fields.setdefault("calendar", OPEN_ALWAYS)
    fields.setdefault("languages", [{"code": "en", "level": "C1"}, {"code": "fr", "level": "C1"}])
    fields.setdefault("hourly_cost", {"amount": 1500, "currency": "EUR"})
    principal = principal_of(provider)
    with db.session() as session:
        bind(session, principal.access)
        return teams.create_team(session, principal, TeamCreate(**fields))


def make_agent(
    db: Database, provider: Organization, team: Any, email: str | None = None, **fields: Any
) -> Any:
    """A user of ``provider`` with the agent role, made an agent of ``team``."""
    from sqlalchemy import select

    from services.identity.models import User
    from services.workforce import agents
    from services.workforce.schemas import AgentCreate

    email = make_user(db, provider, [Role.AGENT], email=email)
    principal = principal_of(provider)
    with db.session() as session:
        bind(session, AccessScope.everything())
        user_id = session.scalars(select(User.id).where(User.email == email)).one()
        bind(session, principal.access)
        agent = agents.create_agent(
            session, principal, AgentCreate(user_id=user_id, team_id=team.id, **fields)
        )
    agent.email = email
    return agent


def make_engagement(db: Database, queue: Queue, team: Any, **fields: Any) -> Any:
    from services.workforce import engagements
    from services.workforce.schemas import EngagementCreate

    with db.session() as session:
        bind(session, AccessScope.everything())
        return engagements.create_engagement(
            session, OPERATOR, EngagementCreate(queue_id=queue.id, team_id=team.id, **fields)
        )


def set_online(db: Database, agent: Any) -> None:
    from datetime import timedelta

    from services.core.time import utcnow
    from services.workforce.models import Agent, Presence

    with db.session() as session:
        bind(session, AccessScope.everything())
        row = session.get(Agent, agent.id)
        assert row is not None
        row.presence, row.presence_expires_at = Presence.ONLINE, utcnow() + timedelta(hours=1)


# ---------------------------------------------------------------- billing

RATE_CARD: dict[str, Any] = {
    "prices": [
        {"metric": "task_completed", "task_kind": "support_ticket", "unit_price": "2.35"},
        {"metric": "handle_minutes", "unit_price": "0.4125"},
    ],
    "surcharges": [{"when": "language", "languages": ["de"], "percent": "10"}],
    "minimum": "0",
}


def make_issuing_entity(
    db: Database, code: str = "IE", country: str = "IE", vat_number: str = "IE6388047V"
) -> Any:
    from services.billing import contracts
    from services.billing.schemas import IssuingEntityIn

    with db.session() as session:
        bind(session, AccessScope.everything())
        data = IssuingEntityIn(
            code=code,
            name=f"Backstage BPO {code}",
            country=country,
            vat_number=vat_number,
            address="1 Dock Road",
        )
        return contracts.create_issuing_entity(session, OPERATOR, data)


def make_contract(db: Database, organization: Organization, entity: str = "IE", **version: Any) -> Any:
    """The client's contract (set by the operator): euros, Paris time, ``RATE_CARD``."""
    from services.billing import contracts
    from services.billing.schemas import ContractCreate, ContractVersionIn

    version.setdefault("rate_card", RATE_CARD)
    version.setdefault("currency", "EUR")
    version.setdefault("effective_from", "2026-01-01")
    with db.session() as session:
        bind(session, AccessScope.everything())
        data = ContractCreate(
            tenant_id=organization.id,
            name="Contrat cadre",
            version=ContractVersionIn(issuing_entity=entity, **version),
        )
        return contracts.create_contract(session, OPERATOR, data)


def record_usage(
    db: Database, organization: Organization, metric: str, quantity: Any, at: Any, **fields: Any
) -> None:
    """One usage event, as the outbox recorder or an integration would record it."""
    from decimal import Decimal

    from services.metering import service as metering
    from services.metering.models import UsageEvent
    from tenants.scoping import insert_rows

    key = fields.pop("key", f"test-{next(_counter)}")
    with db.session() as session:
        bind(session, AccessScope.everything())
        row = metering.row(organization.id, metric, Decimal(str(quantity)), at, key, "test", **fields)
        insert_rows(session, UsageEvent, [row], unless_taken=metering.UNIQUE_KEY)
