"""The demo's work: queues, teams, agents, engagements and a backlog (``bpo demo seed``),
and agents playing it (``bpo demo simulate``).

Bucharest (French, Romanian, English, Spanish; three shifts, every day), Kraków (German,
Polish, English; office hours with Polish holidays) and Manila (English, Spanish; the
European night) serve the clients' queues: Lumière's French support tickets (Bucharest,
share 2), Iberia's Spanish claims (Bucharest share 1, Manila as overflow), Brandt's German
contract documents, whose data must stay in the EU (Kraków; Manila, which answers Brandt's
English delivery questions, could not be engaged, and every routing decision on a German
contract says so), and Mazowsze's Polish orders (Kraków).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.database import Database
from services.identity import principals
from services.identity.models import User
from services.routing import claim, offers
from services.work import queues, service
from services.work.lifecycle import Action
from services.work.models import Queue, Task
from services.work.schemas import QueueCreate, TaskCreate
from services.workforce import agents, engagements, teams
from services.workforce.models import Agent, Engagement, EngagementRank, Presence, Team
from services.workforce.schemas import AgentCreate, EngagementCreate, TeamCreate
from tenants import grants
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal, Role, permissions_for_roles
from tenants.scoping import AccessScope, bind, narrowed_to

EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TEAMS: dict[str, dict[str, Any]] = {
    "Bucharest FR/RO/EN": {
        "provider": "Carpați Back Office SRL",
        "country": "RO",
        "timezone": "Europe/Bucharest",
        # three shifts: a back office that never closes
        "calendar": {"timezone": "Europe/Bucharest", "weekly": {d: [["00:00", "24:00"]] for d in EVERY_DAY}},
        "languages": [("fr", "C1"), ("ro", "native"), ("en", "C1"), ("es", "B2")],
        "skills": [("billing", 4), ("claims", 3)],
        "hourly_cost": (1450, "EUR"),
        "agents": ("mihai.agent@carpati.example",),
        "public_names": True,  # Carpați shows its clients its agents' first names; the others none
    },
    "Kraków DE/PL/EN": {
        "provider": "Wisła Shared Services",
        "country": "PL",
        "timezone": "Europe/Warsaw",
        "calendar": {
            "timezone": "Europe/Warsaw",
            "weekly": {d: [["08:00", "18:00"]] for d in EVERY_DAY[:5]},
            "holidays": {"country": "PL"},
        },
        "languages": [("de", "C1"), ("pl", "native"), ("en", "C1")],
        "skills": [("contracts", 4)],
        "hourly_cost": (6900, "PLN"),
        "agents": ("piotr.agent@wisla.example",),
    },
    "Manila EN night shift": {
        "provider": "Manila Process Hub Inc.",
        "country": "PH",
        "timezone": "Asia/Manila",
        "calendar": {"timezone": "Asia/Manila", "weekly": {d: [["15:00", "24:00"]] for d in EVERY_DAY}},
        "languages": [("en", "C2"), ("es", "C1"), ("da", "B2")],
        "skills": [("claims", 4), ("billing", 3)],
        "hourly_cost": (45000, "PHP"),
        "agents": ("maria.agent@manilahub.example",),
    },
}
QUEUES: dict[str, dict[str, Any]] = {
    "Support FR": {
        "client": "Assurances Lumière",
        "task_kind": "support_ticket",
        "languages": ["fr", "en"],
        "residency": {"allow": ["EU"]},
        "teams": (("Bucharest FR/RO/EN", EngagementRank.PRIMARY, 2),),
    },
    "Siniestros ES": {
        "client": "Seguros Iberia SA",
        "task_kind": "claim",
        "languages": ["es"],
        "residency": {"allow": []},
        "teams": (
            ("Bucharest FR/RO/EN", EngagementRank.PRIMARY, 1),
            ("Manila EN night shift", EngagementRank.OVERFLOW, 1),
        ),
        # Bucharest's claims experts first; Manila's night shift once a claim has waited half
        # an hour, or has under two hours of its SLA left.
        "routing": {
            "steps": [
                {"name": "Bucharest, claims experts", "ranks": ["primary"], "min_skill_level": 3},
                {"name": "after 30 min: overflow", "after_seconds": 1800, "ranks": ["primary", "overflow"]},
                {"name": "at risk: overflow", "slack_below_seconds": 7200, "ranks": ["primary", "overflow"]},
            ],
            "weights": {"cost": 1.0},
        },
        "skills": [{"name": "claims", "min_level": 2}],
    },
    "Vertragsdokumente DE": {
        "client": "Brandt Logistik GmbH",
        "task_kind": "contract_documents",
        "languages": ["de"],
        "residency": {"allow": ["EU"]},  # the German contracts never leave the EU
        "teams": (("Kraków DE/PL/EN", EngagementRank.PRIMARY, 1),),
    },
    "Customer Service EN": {
        "client": "Brandt Logistik GmbH",
        "task_kind": "support_ticket",
        "languages": ["en"],
        "residency": {"allow": []},  # delivery questions carry no contract data
        "teams": (("Manila EN night shift", EngagementRank.PRIMARY, 1),),
    },
    "Zamówienia PL": {
        "client": "Mazowsze Logistyka sp. z o.o.",
        "task_kind": "order_processing",
        "languages": ["pl"],
        "residency": {"allow": ["EU"]},
        "teams": (("Kraków DE/PL/EN", EngagementRank.PRIMARY, 1),),
        # Orders are pushed: Kraków's agent is offered each one, two minutes to accept.
        "mode": "push",
        "routing": {"offer_timeout_seconds": 120},
    },
}
SUPPORT_FR = [
    (
        "Double prélèvement sur ma mensualité",
        "J'ai été prélevé deux fois ce mois-ci pour mon contrat habitation.",
    ),
    ("Attestation d'assurance introuvable", "Je ne trouve pas mon attestation pour mon nouveau bail."),
    ("Changement d'adresse", "Je déménage le 15 : merci de mettre à jour mon adresse de correspondance."),
    ("Résiliation de mon contrat auto", "J'ai vendu ma voiture, je souhaite résilier mon contrat."),
    ("Erreur sur mon échéancier", "L'échéancier reçu ne correspond pas au montant annoncé par téléphone."),
    ("Remboursement non reçu", "Le remboursement promis le mois dernier n'est toujours pas arrivé."),
]
SUPPORT_EN = [("Login to the customer area fails", "I cannot log in to my customer area since yesterday.")]
DELIVERIES_EN = [
    ("Where is my pallet?", "Our delivery to Rotterdam was due on Monday and has not arrived."),
    ("Wrong delivery address", "Please deliver order 55120 to our new warehouse in Antwerp."),
]
CLAIMS_ES = [
    ("Daños por agua en la cocina", "Una tubería rota del piso de arriba ha dañado el parquet de la cocina."),
    ("Robo de bicicleta", "Me robaron la bicicleta del garaje comunitario el sábado por la noche."),
    ("Rotura de luna del coche", "Una piedra en la autopista rompió el parabrisas delantero."),
]
CONTRACTS_DE = [
    (
        "Verlängerung Speditionsvertrag",
        "Verlängerung um zwei Jahre vorbereiten, Preisanpassungsklausel prüfen.",
    ),
    ("Kündigung Lagervertrag Bremen", "Kündigung zum Quartalsende vorbereiten und Fristen prüfen."),
]
ORDERS_PL = [
    (
        "Zmiana adresu dostawy",
        "Klient prosi o zmianę adresu dostawy zamówienia na magazyn w Łodzi.",
        "modify",
    ),
    (
        "Anulowanie zamówienia",
        "Zamówienie złożone dwa razy przez pomyłkę: proszę anulować duplikat.",
        "cancel",
    ),
    ("Zwrot towaru", "Paleta dotarła uszkodzona, klient żąda zwrotu i ponownej wysyłki.", "return"),
]


def platform_principal(acting_for: uuid.UUID) -> Principal:
    """The seed acts for the platform, not for a person."""
    return Principal(
        subject_id=acting_for,
        subject_kind="user",
        org_id=acting_for,
        org_kind=OrgKind.OPERATOR,
        roles=frozenset({Role.PLATFORM_ADMIN}),
        permissions=frozenset(Permission),
        tenant_ids=None,
        display_name="demo seed",
    )


def client_principal(client: Organization) -> Principal:
    roles = frozenset({Role.CLIENT_ADMIN})
    return Principal(
        subject_id=client.id,
        subject_kind="user",
        org_id=client.id,
        org_kind=OrgKind.CLIENT,
        roles=roles,
        permissions=permissions_for_roles(roles),
        tenant_ids=frozenset({client.id}),
        display_name=f"{client.name} (demo)",
    )


def seed_work(session: Session, organizations: dict[str, Organization]) -> dict[str, Any]:
    """Create what is missing (idempotent); the ids of the teams and queues."""
    made_teams = {
        name: _team(session, organizations[spec["provider"]], name, spec) for name, spec in TEAMS.items()
    }
    for name, spec in TEAMS.items():
        for email in spec["agents"]:
            _agent(session, made_teams[name], email, bool(spec.get("public_names")))
    made_queues = {}
    for name, spec in QUEUES.items():
        queue = _queue(session, organizations[spec["client"]], name, spec)
        made_queues[name] = queue
        for team_name, rank, share in spec["teams"]:
            _engagement(session, queue, made_teams[team_name], rank, share)
    _backlog(session, organizations, made_queues)
    return {
        "teams": [{"id": str(t.id), "name": t.name, "country": t.country} for t in made_teams.values()],
        "queues": [{"id": str(q.id), "name": q.name} for q in made_queues.values()],
    }


def _team(session: Session, provider: Organization, name: str, spec: dict[str, Any]) -> Team:
    with narrowed_to(session, provider.id):
        existing = session.scalar(select(Team).where(Team.name == name))
    if existing is not None:
        return existing
    amount, currency = spec["hourly_cost"]
    return teams.create_team(
        session,
        platform_principal(provider.id),
        TeamCreate.model_validate(
            {
                "name": name,
                "country": spec["country"],
                "timezone": spec["timezone"],
                "calendar": spec["calendar"],
                "languages": [{"code": c, "level": lvl} for c, lvl in spec["languages"]],
                "skills": [{"name": n, "level": lvl} for n, lvl in spec["skills"]],
                "hourly_cost": {"amount": amount, "currency": currency},
                "provider_id": str(provider.id),
            }
        ),
    )


def _agent(session: Session, team: Team, email: str, public_name: bool) -> None:
    user = session.scalar(select(User).where(User.email == email))
    assert user is not None, email
    if session.scalar(select(Agent.id).where(Agent.user_id == user.id)) is None:
        shown = user.display_name.split()[0] if public_name else None
        agents.create_agent(
            session,
            platform_principal(team.tenant_id),
            AgentCreate(user_id=user.id, team_id=team.id, capacity={"*": 2}, public_name=shown),
        )


def _queue(session: Session, client: Organization, name: str, spec: dict[str, Any]) -> Queue:
    with narrowed_to(session, client.id):
        existing = session.scalar(select(Queue).where(Queue.name == name))
    if existing is not None:
        return existing
    return queues.create_queue(
        session,
        client_principal(client),
        QueueCreate.model_validate(
            {
                "name": name,
                "task_kind": spec["task_kind"],
                "languages": spec["languages"],
                "residency": spec["residency"],
                "skills": spec.get("skills", []),
                "routing": spec.get("routing", {}),
                "mode": spec.get("mode", "pull"),
            }
        ),
    )


def _engagement(session: Session, queue: Queue, team: Team, rank: EngagementRank, share: int) -> None:
    active = session.scalar(
        select(Engagement.id).where(
            Engagement.queue_id == queue.id, Engagement.team_id == team.id, Engagement.revoked_at.is_(None)
        )
    )
    if active is None:
        engagements.create_engagement(
            session,
            platform_principal(queue.tenant_id),
            EngagementCreate(queue_id=queue.id, team_id=team.id, rank=rank, share=share),
        )


def _backlog(session: Session, organizations: dict[str, Organization], made: dict[str, Queue]) -> None:
    """A few dozen tasks in several languages (once: references are unique)."""
    plan: list[tuple[str, str, str, str, dict[str, Any]]] = []
    priorities = ("normal", "normal", "high", "low", "urgent", "normal")
    for n in range(18):
        title, text = SUPPORT_FR[n % len(SUPPORT_FR)] if n % 6 else SUPPORT_EN[0]
        language = "fr" if n % 6 else "en"
        plan.append(
            ("Support FR", f"LUM-{1000 + n}", title, language, {"description": text, "_p": priorities[n % 6]})
        )
    for n in range(12):
        title, text = CLAIMS_ES[n % len(CLAIMS_ES)]
        payload = {
            "claim_type": "insurance",
            "category": "damage",
            "description": text,
            "_p": priorities[n % 6],
            "_case": f"EXP-2026-{n // 2:03d}",  # two tasks a claim file: sticky to its agent
        }
        plan.append(("Siniestros ES", f"SIN-{2000 + n}", title, "es", payload))
    for n in range(8):
        title, text = CONTRACTS_DE[n % len(CONTRACTS_DE)]
        payload = {"action": "renew", "contract_type": "logistics", "summary": text, "_p": "normal"}
        plan.append(("Vertragsdokumente DE", f"VD-{3000 + n}", title, "de", payload))
    for n in range(4):
        title, text = DELIVERIES_EN[n % len(DELIVERIES_EN)]
        plan.append(
            ("Customer Service EN", f"CS-{3500 + n}", title, "en", {"description": text, "_p": "normal"})
        )
    for n in range(6):
        title, text, action = ORDERS_PL[n % len(ORDERS_PL)]
        payload = {"action": action, "order_number": f"ZAM/2026/{4100 + n}", "notes": text, "_p": "normal"}
        plan.append(("Zamówienia PL", f"ZAM-{4000 + n}", title, "pl", payload))
    for queue_name, ref, title, language, payload in plan:
        queue = made[queue_name]
        with narrowed_to(session, queue.tenant_id):
            if session.scalar(select(Task.id).where(Task.external_ref == ref)) is not None:
                continue
        client = organizations[QUEUES[queue_name]["client"]]
        priority, case_ref = payload.pop("_p"), payload.pop("_case", None)
        service.create_task(
            session,
            client_principal(client),
            TaskCreate.model_validate(
                {
                    "queue_id": str(queue.id),
                    "external_ref": ref,
                    "case_ref": case_ref,
                    "title": title,
                    "payload": payload,
                    "priority": priority,
                    "language": language,
                }
            ),
        )


# ---------------------------------------------------------------- simulation


@dataclass
class Played:
    taken: int = 0
    resolved: int = 0
    asked: int = 0
    idle: int = 0


def simulate(
    database: Database, rounds: int, progress: Callable[[], None] | None = None, seed: int = 7
) -> Played:
    """Each round, every demo agent goes online, accepts a task offered to them (push
    queues) or takes their next task (pull), and works it: most
    are resolved at once, some go to the client with a question, answered the next round."""
    chance = random.Random(seed)  # noqa: S311 (a demo, not a secret)
    played = Played()
    emails = [email for spec in TEAMS.values() for email in spec["agents"]]
    waiting: list[tuple[uuid.UUID, uuid.UUID, str]] = []  # (client tenant, task, agent) asked last round
    for _ in range(rounds):
        for tenant_id, task_id, email in waiting:
            with database.session() as session:  # the client answers, then the agent resolves
                bind(session, AccessScope.tenants({tenant_id}))
                organization = session.get(Organization, tenant_id)
                assert organization is not None
                service.transition(
                    session,
                    client_principal(organization),
                    task_id,
                    Action.CLIENT_REPLIED,
                    "Voici les informations.",
                )
            with database.session() as session:
                service.transition(session, agent_principal(session, email), task_id, Action.RESOLVE, "Done.")
                played.resolved += 1
        waiting = []
        for email in emails:
            with database.session() as session:
                agents.set_presence(session, agent_principal(session, email), Presence.ONLINE, 900)
        with database.session() as session:  # the push queues' offers, as beat makes them
            bind(session, AccessScope.everything())
            offers.sweep(session)
        for email in emails:
            with database.session() as session:
                principal = agent_principal(session, email)
                offered = offers.my_offers(session, principal)
                if offered:
                    task = offers.accept(session, principal, offered[0][0].id)
                else:
                    taken = claim.next_task(session, principal)
                    if taken.task is None:
                        played.idle += 1
                        continue
                    task = taken.task
                played.taken += 1
                service.transition(session, principal, task.id, Action.START)
                if chance.random() < 0.2:
                    service.transition(
                        session, principal, task.id, Action.ASK_CLIENT, "Could you confirm the reference?"
                    )
                    waiting.append((task.tenant_id, task.id, email))
                    played.asked += 1
                else:
                    service.transition(session, principal, task.id, Action.RESOLVE, "Done.")
                    played.resolved += 1
        if progress is not None:
            progress()
    return played


def agent_principal(session: Session, email: str) -> Principal:
    bind(session, AccessScope.authentication())
    user = session.scalars(select(User).where(User.email == email)).one()
    return grants.acting(session, principals.for_user(session, user))
