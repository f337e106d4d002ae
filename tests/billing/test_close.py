"""Closing a period: usage rated into one invoice per client, idempotent, numbered,
late usage adjusted on the next invoice, tax and reverse charge, SLA credits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from services.billing import close
from services.billing.models import Invoice, InvoiceLine
from services.core.database import Database
from services.core.errors import ValidationFailed
from services.sla.models import SlaClock
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import (
    advance,
    bearer,
    make_contract,
    make_issuing_entity,
    make_policy,
    make_queue,
    make_task,
    make_tenant,
    record_usage,
    token,
)

GRACE = timedelta(hours=48)
OCTOBER = datetime(2026, 10, 14, 10, tzinfo=UTC)


def _close(db: Database, tenant: Any, period: str = "2026-10", finalise: bool = False) -> Invoice:
    with db.session() as session:
        bind(session, AccessScope.everything())
        invoice = close.close(session, tenant.id, period, GRACE, finalise=finalise)
        assert invoice is not None
        session.expunge(invoice)
        return invoice


def _lines(db: Database, invoice: Invoice) -> list[InvoiceLine]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.position)
        ).all()
        session.expunge_all()
        return list(found)


@pytest.fixture
def french_client(db: Database) -> Any:
    client = make_tenant(db)
    make_issuing_entity(db)
    make_contract(db, client.organization, tax_mode="domestic", vat_rate="20")
    return client


def test_a_period_closes_into_one_draft_with_each_line_rounded_once(db: Database, french_client: Any) -> None:
    record_usage(db, french_client.organization, "task_completed", 3, OCTOBER, task_kind="support_ticket")
    record_usage(
        db, french_client.organization, "handle_minutes", "30.5", OCTOBER, task_kind="support_ticket"
    )
    record_usage(db, french_client.organization, "handle_minutes", "10", OCTOBER, language="de")
    record_usage(db, french_client.organization, "sla_met", 2, OCTOBER)  # measured, not priced

    invoice = _close(db, french_client)

    lines = _lines(db, invoice)
    assert [(line.kind.value, line.metric, line.amount) for line in lines] == [
        ("usage", "handle_minutes", 1671),  # one price, every kind: 40.5 min x 0.4125 = 16.70625
        ("usage", "task_completed", 705),  # 3 x 2.35
        ("surcharge", None, 41),  # 10 % of the German 10 minutes' 4.125 = 0.4125 -> 0.41
    ]
    assert invoice.status.value == "draft" and invoice.number is None
    assert invoice.subtotal == 2417 and invoice.tax == 483 and invoice.total == 2900  # VAT 20 % rounded once


def test_closing_twice_gives_the_same_invoice(db: Database, french_client: Any) -> None:
    record_usage(db, french_client.organization, "task_completed", 3, OCTOBER, task_kind="support_ticket")
    first = _close(db, french_client)
    again = _close(db, french_client)
    assert again.id == first.id and again.total == first.total
    assert [line.amount for line in _lines(db, again)] == [705]


def test_finalising_numbers_the_invoice_and_freezes_it(db: Database, french_client: Any) -> None:
    record_usage(db, french_client.organization, "task_completed", 3, OCTOBER, task_kind="support_ticket")
    invoice = _close(db, french_client, finalise=True)
    assert invoice.status.value == "pending_sync"
    assert invoice.number is not None and invoice.number.startswith("IE-2026-")
    record_usage(db, french_client.organization, "task_completed", 5, OCTOBER, task_kind="support_ticket")
    again = _close(db, french_client)
    assert (again.id, again.total, again.number) == (invoice.id, invoice.total, invoice.number)


def test_numbers_are_consecutive_per_issuing_entity(db: Database, french_client: Any) -> None:
    other = make_tenant(db)
    make_contract(db, other.organization)
    for tenant in (french_client, other):
        record_usage(db, tenant.organization, "task_completed", 1, OCTOBER, task_kind="support_ticket")
    numbers = [_close(db, tenant, finalise=True).number for tenant in (french_client, other)]
    assert numbers[0] is not None and numbers[1] is not None
    first = int(numbers[0].rsplit("-", 1)[1])
    assert numbers[1] == f"IE-2026-{first + 1:06d}"


def test_usage_recorded_after_finalisation_is_an_adjustment_on_the_next_invoice(
    db: Database, french_client: Any
) -> None:
    record_usage(db, french_client.organization, "task_completed", 3, OCTOBER, task_kind="support_ticket")
    _close(db, french_client, finalise=True)
    record_usage(db, french_client.organization, "task_completed", 2, OCTOBER, task_kind="support_ticket")
    november = _close(db, french_client, "2026-11")
    lines = _lines(db, november)
    assert [(line.kind.value, line.details.get("period"), line.amount) for line in lines] == [
        ("adjustment", "2026-10", 470)
    ]


def test_a_period_not_over_is_not_closed(db: Database, french_client: Any) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        with pytest.raises(ValidationFailed):
            close.close(session, french_client.id, datetime.now(UTC).strftime("%Y-%m"), GRACE)


def test_the_minimum_commitment_is_topped_up_and_prorated_from_the_day_the_contract_starts(
    db: Database,
) -> None:
    client = make_tenant(db)
    make_issuing_entity(db)
    card = {"prices": [{"metric": "task_completed", "unit_price": "10"}], "minimum": "310"}
    make_contract(db, client.organization, rate_card=card, effective_from="2026-10-22")  # 10 of 31 days
    record_usage(db, client.organization, "task_completed", 4, datetime(2026, 10, 25, tzinfo=UTC))
    lines = _lines(db, _close(db, client))
    assert [(line.kind.value, line.amount) for line in lines] == [("usage", 4000), ("minimum", 6000)]


def test_a_cross_border_client_with_a_vat_number_is_reverse_charged(db: Database) -> None:
    client = make_tenant(db, country="FR")
    make_issuing_entity(db)
    make_contract(db, client.organization, client_vat_number="FR40303265045")
    record_usage(db, client.organization, "task_completed", 3, OCTOBER, task_kind="support_ticket")
    invoice = _close(db, client)
    assert invoice.reverse_charge is True and invoice.tax == 0 and invoice.total == invoice.subtotal


def test_an_sla_credit_line_follows_attainment_and_lists_its_breaches(
    client: TestClient, db: Database, french_client: Any
) -> None:
    credits = {
        "metrics": {"resolution": [{"below": 98, "credit_percent": 5}, {"below": 90, "credit_percent": 10}]}
    }
    make_contract(db, make_tenant(db).organization)  # another client's contract changes nothing
    with db.session() as session:
        bind(session, AccessScope.everything())
        from services.billing import contracts
        from services.billing.schemas import ContractVersionIn
        from tests.factories import OPERATOR, RATE_CARD

        contract = contracts.contract_of(session, french_client.id)
        assert contract is not None
        contracts.add_version(
            session,
            OPERATOR,
            contract.id,
            ContractVersionIn(
                issuing_entity="IE",
                currency="EUR",
                effective_from="2026-02-01",
                rate_card=RATE_CARD,
                sla_credits=credits,
                tax_mode="domestic",
            ),
        )
    make_policy(db, french_client.organization)
    queue = make_queue(db, french_client.organization)
    tasks = [make_task(db, queue, external_ref=f"T-{i}") for i in range(10)]
    for task in tasks[:9]:
        advance(db, task, "assign", "start", "resolve")  # met at once
    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(  # settled in October, the late one breached then
            update(SlaClock).where(SlaClock.tenant_id == french_client.id).values(settled_at=OCTOBER)
        )
        session.execute(
            update(SlaClock)
            .where(SlaClock.task_id == tasks[9].id, SlaClock.metric == "resolution")
            .values(outcome="breached", breached_at=OCTOBER, settled_at=OCTOBER)
        )
    record_usage(db, french_client.organization, "task_completed", 10, OCTOBER, task_kind="support_ticket")

    invoice = _close(db, french_client)

    credit = [line for line in _lines(db, invoice) if line.kind.value == "credit"]
    assert len(credit) == 1
    assert credit[0].details["attainment"] == "90.00" and credit[0].details["percent"] == "5"
    assert credit[0].amount == -118  # 5 % of 23.50
    operator = make_tenant(db, OrgKind.OPERATOR)
    headers = bearer(token(client, operator.client_id, operator.client_secret))
    evidence = client.get(f"/v1/invoices/{invoice.id}/lines/{credit[0].id}/evidence", headers=headers)
    assert evidence.status_code == 200, evidence.text
    assert [item["task_id"] for item in evidence.json()["items"]] == [str(tasks[9].id)]
    assert evidence.json()["items"][0]["log"], "each breach comes with its clock log"
    as_csv = client.get(
        f"/v1/invoices/{invoice.id}/lines/{credit[0].id}/evidence", headers={**headers, "Accept": "text/csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv") and str(tasks[9].id) in as_csv.text


def test_the_worked_example_of_the_docs_closes_to_the_same_lines(db: Database) -> None:
    """docs/billing.md: April 2026, a second version from the 16th raising the minimum."""
    from services.billing import contracts
    from services.billing.schemas import ContractVersionIn
    from tests.factories import OPERATOR

    client = make_tenant(db)
    make_issuing_entity(db)
    card = {
        "prices": [
            {
                "metric": "task_completed",
                "task_kind": "support_ticket",
                "tiers": [
                    {"first": 0, "up_to": 1000, "unit_price": "2.35"},
                    {"first": 1000, "unit_price": "1.95"},
                ],
            },
            {"metric": "handle_minutes", "unit_price": "0.4125"},
        ],
        "surcharges": [{"when": "language", "languages": ["de"], "percent": "10"}],
        "minimum": "4000",
    }
    contract = make_contract(db, client.organization, rate_card=card, tax_mode="domestic")
    with db.session() as session:
        bind(session, AccessScope.everything())
        later = ContractVersionIn(
            issuing_entity="IE",
            currency="EUR",
            effective_from="2026-04-16",
            tax_mode="domestic",
            rate_card={**card, "minimum": "4650"},
        )
        contracts.add_version(session, OPERATOR, contract.id, later)
    april = datetime(2026, 4, 10, 12, tzinfo=UTC)
    record_usage(db, client.organization, "task_completed", 600, april, task_kind="support_ticket")
    record_usage(
        db, client.organization, "task_completed", 634, april + timedelta(days=10), task_kind="support_ticket"
    )
    record_usage(db, client.organization, "handle_minutes", "2638", april, task_kind="support_ticket")
    record_usage(
        db, client.organization, "handle_minutes", "412.5", april, task_kind="support_ticket", language="de"
    )
    lines = _lines(db, _close(db, client, "2026-04"))
    by_kind: dict[str, int] = {}
    for line in lines:
        by_kind[f"{line.kind.value}:{line.metric}"] = (
            by_kind.get(f"{line.kind.value}:{line.metric}", 0) + line.amount
        )
    assert by_kind["usage:task_completed"] == 280630  # 1,000 x 2.35 + 234 x 1.95, over both versions
    assert by_kind["usage:handle_minutes"] == 125833
    assert by_kind["surcharge:None"] == 1702
    assert by_kind["minimum:None"] == 24335  # 4000 x 15/30 + 4650 x 15/30 - usage
    assert sum(line.amount for line in lines) == 432500


def test_numbers_of_two_years_each_count_on_without_repeating(db: Database) -> None:
    """Around New Year an entity issues in two years at once (clients in other timezones)."""
    from services.billing import numbering

    entity = make_issuing_entity(db)
    with db.session() as session:
        bind(session, AccessScope.everything())
        given = [
            *numbering.next_numbers(session, entity.id, 2026, 2),
            *numbering.next_numbers(session, entity.id, 2027, 1),
            *numbering.next_numbers(session, entity.id, 2026, 1),
            *numbering.next_numbers(session, entity.id, 2027, 1),
        ]
    assert given == ["IE-2026-000001", "IE-2026-000002", "IE-2027-000001", "IE-2026-000003", "IE-2027-000002"]


def test_a_reissued_period_bills_no_late_usage_twice_and_loses_none(db: Database, french_client: Any) -> None:
    from services.billing import invoices
    from tests.factories import OPERATOR

    org = french_client.organization
    kind = {"task_kind": "support_ticket"}
    record_usage(db, org, "task_completed", 3, datetime(2026, 8, 10, tzinfo=UTC), **kind)
    august = _close(db, french_client, "2026-08", finalise=True)
    record_usage(db, org, "task_completed", 2, datetime(2026, 8, 20, tzinfo=UTC), **kind)  # late
    september = _close(db, french_client, "2026-09", finalise=True)
    assert [(line.kind.value, line.quantity) for line in _lines(db, september)] == [("adjustment", 2)]
    record_usage(
        db, org, "task_completed", 1, datetime(2026, 9, 20, tzinfo=UTC), **kind
    )  # late for September
    with db.session() as session:
        bind(session, AccessScope.everything())
        reissued = invoices.reissue(session, OPERATOR, august.id, GRACE)
        session.expunge(reissued)
    assert [line.quantity for line in _lines(db, reissued)] == [3]  # the 2 late ones are on September's
    october = _close(db, french_client, "2026-10")
    assert [(line.kind.value, line.details["period"], line.quantity) for line in _lines(db, october)] == [
        ("adjustment", "2026-09", 1)
    ]


def test_late_usage_continues_the_tiers_its_period_billed(db: Database) -> None:
    client = make_tenant(db)
    make_issuing_entity(db)
    tiers = [{"first": 0, "up_to": 100, "unit_price": "10"}, {"first": 100, "unit_price": "1"}]
    make_contract(
        db, client.organization, rate_card={"prices": [{"metric": "task_completed", "tiers": tiers}]}
    )
    record_usage(db, client.organization, "task_completed", 200, datetime(2026, 8, 10, tzinfo=UTC))
    _close(db, client, "2026-08", finalise=True)  # 100 x 10 + 100 x 1
    record_usage(db, client.organization, "task_completed", 10, datetime(2026, 8, 20, tzinfo=UTC))
    lines = _lines(db, _close(db, client, "2026-09"))
    assert [(line.kind.value, line.details["period"], line.amount) for line in lines] == [
        ("adjustment", "2026-08", 1000)  # 10 more at the 201st unit's price: 1.00 each, not 10.00
    ]
