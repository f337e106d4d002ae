"""The demo's billing: issuing entities, each client's contract, last month's history
closed into invoices, and a late event that the current month adjusts.

Last month is made now and dated back (the demo's time machine): tasks of Lumière go
through the real lifecycle, their usage is metered by the recorder's own rules, and
their history, clocks and usage are moved into last month, two of them breached so the
French invoice carries an SLA credit with its evidence. The other clients' volume is
recorded as usage dated last month. Everything is idempotent: a second seed adds nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing import close, contracts
from services.billing.models import IssuingEntity
from services.billing.schemas import ContractCreate, ContractVersionIn, IssuingEntityIn
from services.core.time import month_bounds, month_of, utcnow
from services.demo_work import client_principal, platform_principal
from services.metering import recorder
from services.metering import service as metering
from services.metering.models import UsageEvent
from services.notify.models import OutboxEvent
from services.sla.models import Outcome, SlaClock, SlaClockSegment
from services.work import service as work
from services.work.history import Actor
from services.work.lifecycle import Action, Side
from services.work.models import Queue, Task, TaskEvent
from services.work.schemas import TaskCreate
from tenants.models import Organization
from tenants.scoping import insert_rows, narrowed_to

ENTITIES = (
    ("IE", "Backstage Operations Ltd", "IE", "IE6388047V", "2 Grand Canal Square\nDublin 2, D02 A342"),
    ("PL", "Backstage Polska sp. z o.o.", "PL", "PL5260250995", "ul. Prosta 20\n00-850 Warszawa"),
)
SUPPORT_CARD = {
    "prices": [
        {
            "metric": "task_completed",
            "task_kind": "support_ticket",
            "tiers": [
                {"first": "0", "up_to": "1000", "unit_price": "2.35"},
                {"first": "1000", "up_to": None, "unit_price": "1.95"},
            ],
        },
        {"metric": "handle_minutes", "unit_price": "0.4125"},
    ],
    "surcharges": [{"when": "out_of_hours", "percent": "25"}],
    "minimum": "150",
}
CONTRACTS: dict[str, dict[str, Any]] = {
    "Assurances Lumière": {
        "issuing_entity": "IE",
        "currency": "EUR",
        "billing_timezone": "Europe/Paris",
        "client_vat_number": "FR40303265045",
        "client_address": "12 rue de la Paix\n75002 Paris",
        "billing_email": "comptabilite@lumiere-assurances.example",
        "rate_card": SUPPORT_CARD,
        "sla_credits": {
            "metrics": {
                "resolution": [{"below": 98, "credit_percent": 5}, {"below": 90, "credit_percent": 10}],
                "first_response": [{"below": 95, "credit_percent": 3}],
            },
            "cap_percent": 15,
        },
    },
    "Brandt Logistik GmbH": {
        "issuing_entity": "IE",
        "currency": "EUR",
        "billing_timezone": "Europe/Berlin",
        "client_vat_number": "DE129273398",
        "client_address": "Am Sandtorkai 50\n20457 Hamburg",
        "billing_email": "buchhaltung@brandt-logistik.example",
        "rate_card": {
            "prices": [
                {"metric": "task_completed", "task_kind": "contract_documents", "unit_price": "14.00"},
                {"metric": "handle_minutes", "unit_price": "0.55"},
            ],
            "surcharges": [{"when": "language", "languages": ["de"], "percent": "10"}],
        },
        "sla_credits": {"metrics": {"resolution": [{"below": 97, "credit_percent": 5}]}, "cap_percent": 10},
    },
    "Seguros Iberia SA": {
        "issuing_entity": "IE",
        "currency": "EUR",
        "billing_timezone": "Europe/Madrid",
        "client_vat_number": "ESA28015865",
        "client_address": "Paseo de la Castellana 259\n28046 Madrid",
        "billing_email": "facturas@seguros-iberia.example",
        "rate_card": {"prices": [{"metric": "task_completed", "task_kind": "claim", "unit_price": "6.80"}]},
    },
    "Mazowsze Logistyka sp. z o.o.": {
        "issuing_entity": "PL",
        "currency": "PLN",
        "billing_timezone": "Europe/Warsaw",
        "tax_mode": "domestic",
        "vat_rate": "23",
        "client_vat_number": "PL7010002137",
        "client_address": "ul. Marszałkowska 104\n00-017 Warszawa",
        "billing_email": "faktury@mazowsze-logistyka.example",
        "rate_card": {
            "currency": "PLN",
            "prices": [
                {"metric": "task_completed", "task_kind": "order_processing", "unit_price": "9.50"},
                {"metric": "handle_minutes", "unit_price": "1.80"},
            ],
            "minimum": "1500",
        },
    },
}
# Last month's volume of the clients whose history is recorded as usage:
# (metric, task kind, language, quantity, out of hours).
VOLUME: dict[str, list[tuple[str, str | None, str | None, str, bool]]] = {
    "Assurances Lumière": [
        ("task_completed", "support_ticket", "fr", "1184", False),
        ("handle_minutes", "support_ticket", "fr", "9472.5", False),
        ("handle_minutes", "support_ticket", "fr", "610", True),
    ],
    "Brandt Logistik GmbH": [
        ("task_completed", "contract_documents", "de", "212", False),
        ("handle_minutes", "contract_documents", "de", "5088", False),
    ],
    "Seguros Iberia SA": [("task_completed", "claim", "es", "431", False)],
    "Mazowsze Logistyka sp. z o.o.": [
        ("task_completed", "order_processing", "pl", "96", False),
        ("handle_minutes", "order_processing", "pl", "1152", False),
    ],
}
QUEUE_OF = {
    "Assurances Lumière": "Support FR",
    "Brandt Logistik GmbH": "Vertragsdokumente DE",
    "Seguros Iberia SA": "Siniestros ES",
    "Mazowsze Logistyka sp. z o.o.": "Zamówienia PL",
}
HISTORY_TASKS = 12  # Lumière's, worked for real and dated back; two breached their resolution
SYSTEM = Actor("system", None, "demo history", Side.OPERATOR)


def seed_billing(session: Session, organizations: dict[str, Organization]) -> dict[str, Any]:
    operator = platform_principal(uuid.UUID(int=0))
    for code, name, country, vat, address in ENTITIES:
        if session.scalar(select(IssuingEntity.id).where(IssuingEntity.code == code)) is None:
            contracts.create_issuing_entity(
                session,
                operator,
                IssuingEntityIn(
                    code=code,
                    name=name,
                    country=country,
                    vat_number=vat,
                    address=address,
                    email="billing@backstage.example",
                ),
            )
    now = utcnow()
    invoices = []
    for client_name, terms in CONTRACTS.items():
        client = organizations[client_name]
        last_month = _previous_month(now, terms["billing_timezone"])
        start, _ = month_bounds(last_month, terms["billing_timezone"])
        if contracts.contract_of(session, client.id) is None:
            effective = (start - timedelta(days=62)).astimezone(UTC).date().replace(day=1)
            contracts.create_contract(
                session,
                operator,
                ContractCreate(
                    tenant_id=client.id,
                    name=f"{client_name} - Backstage BPO",
                    version=ContractVersionIn.model_validate(
                        {**terms, "effective_from": effective.isoformat()}
                    ),
                ),
            )
        invoice = close.current_invoice(session, client.id, last_month)
        if invoice is not None:  # seeded before
            invoices.append({"client": client_name, "number": invoice.number, "period": last_month})
            continue
        if client_name == "Assurances Lumière":
            with narrowed_to(session, client.id):
                queue = session.scalars(select(Queue).where(Queue.name == "Support FR")).one()
            _worked_history(session, client, queue, start + timedelta(days=9))
        _volume(session, client, client_name, start + timedelta(days=14))
        invoice = close.close(session, client.id, last_month, timedelta(hours=48), finalise=True)
        if invoice is not None:
            invoices.append({"client": client_name, "number": invoice.number, "period": last_month})
        if client_name == "Assurances Lumière":  # arrives after the close: adjusted on the next invoice
            _record(
                session,
                client,
                "task_completed",
                "support_ticket",
                "fr",
                Decimal(3),
                start + timedelta(days=27),
                "demo:late:lumiere",
                False,
            )
    return {"invoices": invoices}


def _previous_month(now: datetime, zone: str) -> str:
    start, _ = month_bounds(month_of(now, zone), zone)
    return month_of(start - timedelta(seconds=1), zone)


def _record(
    session: Session,
    client: Organization,
    metric: str,
    kind: str | None,
    language: str | None,
    quantity: Decimal,
    at: datetime,
    key: str,
    out_of_hours: bool,
    queue_id: uuid.UUID | None = None,
) -> None:
    row = metering.row(
        client.id,
        metric,
        quantity,
        at,
        key,
        "demo",
        task_kind=kind,
        language=language,
        out_of_hours=out_of_hours,
        queue_id=queue_id,
    )
    insert_rows(session, UsageEvent, [row], unless_taken=metering.UNIQUE_KEY)


def _volume(session: Session, client: Organization, name: str, at: datetime) -> None:
    with narrowed_to(session, client.id):
        queue_id = session.scalars(select(Queue.id).where(Queue.name == QUEUE_OF[name])).one()
    for index, (metric, kind, language, quantity, out_of_hours) in enumerate(VOLUME[name]):
        key = f"demo:history:{month_of(at, 'UTC')}:{index}"
        _record(session, client, metric, kind, language, Decimal(quantity), at, key, out_of_hours, queue_id)


def _worked_history(session: Session, client: Organization, queue: Queue, day: datetime) -> None:
    """Tasks worked through the real lifecycle, then dated back to ``day``: their usage
    (recorded now under the recorder's own keys, so the recorder skips it later), their
    history and their SLA clocks, two of which breached."""
    principal, operator = client_principal(client), platform_principal(client.id)
    made = []
    for n in range(HISTORY_TASKS):
        task = work.create_task(
            session,
            principal,
            TaskCreate.model_validate(
                {
                    "queue_id": str(queue.id),
                    "external_ref": f"LUM-H{n:03d}",
                    "title": "Question sur mon contrat",
                    "payload": {"description": "Demande traitée le mois dernier."},
                    "language": "fr",
                }
            ),
        )
        worked = work.get_task(
            session, operator, task.id, for_change=True
        )  # intake's object is not the ORM's
        for action in (Action.ASSIGN, Action.START, Action.RESOLVE):
            work.apply(session, SYSTEM, worked, action)
        made.append(worked)
    session.flush()
    ids = [task.id for task in made]
    shift = utcnow() - day
    with narrowed_to(session, client.id):
        events = session.scalars(
            select(OutboxEvent).where(OutboxEvent.subject_id.in_(ids)).order_by(OutboxEvent.id)
        ).all()
        rows = [values for event in events for values in recorder.usage_of(session, event)]
        for values in rows:
            values["occurred_at"] -= shift
        insert_rows(session, UsageEvent, rows, unless_taken=metering.UNIQUE_KEY)
        for model, columns in (
            (Task, ("created_at", "updated_at", "rank_at")),
            (TaskEvent, ("at",)),
            (SlaClock, ("started_at", "stopped_at", "settled_at", "due_at", "warn_at")),
        ):
            key = model.id if model is Task else model.task_id  # type: ignore[union-attr]
            for found in session.scalars(select(model).where(key.in_(ids))):
                _shift(found, columns, shift)
        clocks = session.scalars(select(SlaClock).where(SlaClock.task_id.in_(ids))).all()
        for segment in session.scalars(
            select(SlaClockSegment).where(SlaClockSegment.clock_id.in_([c.id for c in clocks]))
        ):
            _shift(segment, ("at", "due_at"), shift)
        for clock in clocks:
            if clock.task_id in ids[:2] and clock.metric.value == "resolution":
                clock.outcome, clock.breached_at = Outcome.BREACHED, clock.settled_at
        session.flush()


def _shift(row: Any, columns: tuple[str, ...], by: timedelta) -> None:
    for column in columns:
        value = getattr(row, column)
        if value is not None:
            setattr(row, column, value - by)
