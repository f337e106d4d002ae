"""``bpo demo seed``: a realistic demo, created through the services, idempotently.

Clients in France, Germany and Spain outsource to providers in Romania, Poland
and the Philippines; the operator's account manager looks after two clients, whose
contracts have an SLA on their office hours. Their queues, the providers' teams and
agents, the engagements between them and a backlog come from ``demo_work``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.demo_billing import seed_billing
from services.demo_work import platform_principal, seed_work
from services.identity import service as identity
from services.identity.models import User
from tenants import service as tenancy
from tenants.models import Organization
from tenants.principal import OrgKind, Role
from tenants.scoping import narrowed_to

DEMO_PASSWORD = "bpo-demo-2026"  # noqa: S105  (printed for people to try the demo)


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    roles: tuple[Role, ...]
    locale: str | None = None


@dataclass(frozen=True)
class DemoOrg:
    kind: OrgKind
    name: str
    country: str
    users: tuple[DemoUser, ...] = field(default=())


DEMO: tuple[DemoOrg, ...] = (
    DemoOrg(
        OrgKind.OPERATOR,
        "Backstage Operations",
        "IE",
        (
            DemoUser("sofia.am@backstage.example", "Sofia Keane", (Role.ACCOUNT_MANAGER,), "en"),
            DemoUser("root@backstage.example", "Platform Admin", (Role.PLATFORM_ADMIN,), "en"),
        ),
    ),
    DemoOrg(
        OrgKind.CLIENT,
        "Assurances Lumière",
        "FR",
        (
            DemoUser("claire.admin@lumiere.example", "Claire Martin", (Role.CLIENT_ADMIN,)),
            DemoUser("hugo.submit@lumiere.example", "Hugo Bernard", (Role.CLIENT_SUBMITTER,)),
            DemoUser("lea.viewer@lumiere.example", "Léa Petit", (Role.CLIENT_VIEWER,)),
        ),
    ),
    DemoOrg(
        OrgKind.CLIENT,
        "Brandt Logistik GmbH",
        "DE",
        (DemoUser("jonas.admin@brandt.example", "Jonas Becker", (Role.CLIENT_ADMIN,)),),
    ),
    DemoOrg(
        OrgKind.CLIENT,
        "Seguros Iberia SA",
        "ES",
        (DemoUser("lucia.admin@iberia.example", "Lucía García", (Role.CLIENT_ADMIN,)),),
    ),
    DemoOrg(
        OrgKind.CLIENT,
        "Mazowsze Logistyka sp. z o.o.",
        "PL",
        (DemoUser("katarzyna.admin@mazowsze.example", "Katarzyna Wiśniewska", (Role.CLIENT_ADMIN,)),),
    ),
    DemoOrg(
        OrgKind.PROVIDER,
        "Carpați Back Office SRL",
        "RO",
        (
            DemoUser("andrei.admin@carpati.example", "Andrei Popescu", (Role.PROVIDER_ADMIN,)),
            DemoUser("ioana.lead@carpati.example", "Ioana Ionescu", (Role.TEAM_LEAD,)),
            DemoUser("mihai.agent@carpati.example", "Mihai Dumitru", (Role.AGENT,)),
        ),
    ),
    DemoOrg(
        OrgKind.PROVIDER,
        "Wisła Shared Services",
        "PL",
        (
            DemoUser(
                "agnieszka.lead@wisla.example", "Agnieszka Nowak", (Role.TEAM_LEAD, Role.PROVIDER_ADMIN)
            ),
            DemoUser("piotr.agent@wisla.example", "Piotr Kowalski", (Role.AGENT,)),
        ),
    ),
    DemoOrg(
        OrgKind.PROVIDER,
        "Manila Process Hub Inc.",
        "PH",
        (DemoUser("maria.agent@manilahub.example", "Maria Santos", (Role.AGENT,), "en"),),
    ),
)
PORTFOLIO = {
    "sofia.am@backstage.example": (
        "Assurances Lumière",
        "Brandt Logistik GmbH",
        "Mazowsze Logistyka sp. z o.o.",
    )
}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
# The contracts' service calendars: (name, zone, holidays country, subdivision, weekday hours).
SERVICE_CALENDARS = {
    "Assurances Lumière": (
        "Service Paris",
        "Europe/Paris",
        "FR",
        None,
        [["09:00", "12:00"], ["13:30", "18:00"]],
    ),
    "Brandt Logistik GmbH": ("Service Hamburg", "Europe/Berlin", "DE", "HH", [["08:00", "17:00"]]),
}
SLA_TARGETS = [  # business minutes on the service calendar
    {"metric": "first_response", "minutes": 120},
    {"metric": "first_response", "priority": "urgent", "minutes": 30},
    {"metric": "resolution", "minutes": 16 * 60},
    {"metric": "resolution", "priority": "urgent", "minutes": 4 * 60},
    {"metric": "next_update", "minutes": 4 * 60},
]
SLA_ESCALATIONS = [
    {"on": "warning", "action": "notify_account_manager"},
    {"on": "breach", "action": "raise_priority"},
]


def _contract_sla(session: Session, client: Organization, calendar: tuple[Any, ...]) -> None:
    """The client's service calendar and SLA policy, as the operator sets them."""
    from services.sla import definitions
    from services.sla.models import SlaPolicy
    from services.sla.schemas import CalendarCreate, PolicyCreate

    with narrowed_to(session, client.id):
        if session.scalar(select(SlaPolicy.id)) is not None:
            return
    name, zone, country, subdivision, hours = calendar
    platform = platform_principal(client.id)
    spec = {
        "timezone": zone,
        "weekly": {day: hours for day in _WEEKDAYS},
        "holidays": {"country": country, "subdivision": subdivision},
        "closures": [["2026-12-24", "2026-12-26"]],
    }
    definitions.create_calendar(session, platform, CalendarCreate(name=name, tenant_id=client.id, spec=spec))
    definitions.create_policy(
        session,
        platform,
        PolicyCreate.model_validate(
            {
                "name": f"{client.name} SLA",
                "tenant_id": str(client.id),
                "calendar": name,
                "targets": SLA_TARGETS,
                "escalations": SLA_ESCALATIONS,
            }
        ),
    )


def seed(session: Session) -> dict[str, object]:
    """Create what is missing; answer the same description on every run."""
    organizations: dict[str, Organization] = {}
    logins: list[dict[str, str]] = []
    for spec in DEMO:
        slug = tenancy.slugify(spec.name)
        organization = session.scalar(select(Organization).where(Organization.slug == slug))
        if organization is None:
            organization = tenancy.create_organization(
                session, kind=spec.kind, name=spec.name, country=spec.country
            )
        organizations[spec.name] = organization
        for person in spec.users:
            if session.scalar(select(User.id).where(User.email == person.email)) is None:
                identity.create_user(
                    session,
                    organization,
                    email=person.email,
                    password=DEMO_PASSWORD,
                    display_name=person.name,
                    roles=list(person.roles),
                    locale=person.locale,
                )
            logins.append(
                {
                    "email": person.email,
                    "password": DEMO_PASSWORD,
                    "organization": spec.name,
                    "roles": ",".join(r.value for r in person.roles),
                }
            )
    for email, client_names in PORTFOLIO.items():
        manager_id = session.scalar(select(User.id).where(User.email == email))
        assert manager_id is not None
        for client_name in client_names:
            tenancy.assign_account_manager(session, organizations[client_name], manager_id)
    for client_name, calendar in SERVICE_CALENDARS.items():
        _contract_sla(session, organizations[client_name], calendar)
    work = seed_work(session, organizations)
    billing = seed_billing(session, organizations)
    return {
        **work,
        **billing,
        "organizations": [
            {"id": str(o.id), "kind": o.kind.value, "name": o.name, "country": o.country}
            for o in organizations.values()
        ],
        "logins": logins,
    }
