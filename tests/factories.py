"""Factories that speak the domain: they create through the services, never by raw inserts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from fastapi.testclient import TestClient

from services.core.database import Database
from services.identity import service as identity
from tenants import service as tenancy
from tenants.models import Organization
from tenants.principal import OrgKind, Role
from tenants.scoping import AccessScope, bind

PASSWORD = "correct-horse-battery"
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
