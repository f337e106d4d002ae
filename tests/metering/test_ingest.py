"""The batch path of the usage ledger (``metering.ingest``): what its speed must not
change. Its hash is the ledger's own, text is recorded as sent, each client of a batch
keeps its own contract terms, and the answer is the documented one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.core.database import Database
from services.metering.models import UsageEvent
from services.metering.schemas import EventResult, UsageBatchOut
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller
from tests.factories import (
    RATE_CARD,
    bearer,
    make_contract,
    make_issuing_entity,
    make_org,
    make_tenant,
    record_usage,
    token,
)


@pytest.fixture
def operator(client: TestClient, db: Database) -> dict[str, str]:
    tenant = make_tenant(db, OrgKind.OPERATOR)
    return bearer(token(client, tenant.client_id, tenant.client_secret))


def _post(client: TestClient, headers: dict[str, str], *events: dict[str, Any]) -> Any:
    answer = client.post("/v1/usage-events", headers=headers, json={"events": list(events)})
    assert answer.status_code == 200, answer.text
    return answer


def _stored(db: Database, event_id: str) -> UsageEvent:
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = session.scalars(select(UsageEvent).where(UsageEvent.id == uuid.UUID(event_id))).one()
        session.expunge(found)
        return found


def test_an_event_the_ledger_recorded_is_a_duplicate_when_sent_again_over_http(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    """The batch path hashes a body as ``service.row`` does: every field that counts, the
    time in another offset and the quantity written otherwise."""
    make_issuing_entity(db)
    make_contract(db, acme.tenant.organization)
    queue = uuid.uuid4()
    fields = {
        "queue_id": queue,
        "task_kind": "support_ticket",
        "language": "de",
        "out_of_hours": True,
        "reason": "Weekend migration support",
        "unit_price": Decimal("350.5"),
        "currency": "EUR",
    }
    at = datetime(2026, 11, 20, 8, 0, 0, 250_000, tzinfo=UTC)
    record_usage(db, acme.tenant.organization, "handle_minutes", "1.5", at, key="crm-1", **fields)
    event = {
        "tenant_id": str(acme.tenant.id),
        "metric": "handle_minutes",
        "quantity": "1.500",
        "occurred_at": "2026-11-20T10:00:00.25+02:00",
        "idempotency_key": "crm-1",
        "queue_id": str(queue).upper(),
        "task_kind": "support_ticket",
        "language": "de",
        "out_of_hours": True,
        "reason": "Weekend migration support",
        "unit_price": {"amount": "350.50", "currency": "EUR"},
    }
    [same] = _post(client, operator, event).json()["results"]
    [other] = _post(client, operator, {**event, "language": "fr"}).json()["results"]
    assert same["status"] == "duplicate"
    assert other["status"] == "rejected"
    assert [e["pointer"] for e in other["errors"]] == ["/events/0/idempotency_key"]


@pytest.mark.parametrize(
    "text",
    ["tab\there", "back\\slash", "line\nbreak", "carriage\rreturn", "\\N", "all\t\\\n\r of them"],
    ids=["tab", "backslash", "newline", "carriage-return", "null-marker", "all"],
)
def test_text_is_recorded_as_sent_whatever_it_holds(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller, text: str
) -> None:
    event = {
        "tenant_id": str(acme.tenant.id),
        "metric": "task_completed",
        "quantity": "1",
        "occurred_at": "2026-11-16T09:30:00Z",
        "idempotency_key": f"key {text}",
        "task_kind": f"kind {text}",
        "source": f"source {text}",
        "reason": f"reason {text}",
    }
    [first] = _post(client, operator, event).json()["results"]
    assert first["status"] == "accepted"
    stored = _stored(db, first["id"])
    assert (stored.idempotency_key, stored.task_kind, stored.source, stored.reason) == (
        f"key {text}",
        f"kind {text}",
        f"source {text}",
        f"reason {text}",
    )
    [again] = _post(client, operator, event).json()["results"]
    assert (again["status"], again["id"]) == ("duplicate", first["id"])


def test_each_client_of_a_batch_is_held_to_its_own_contract(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    from services.billing import close

    make_issuing_entity(db)
    card = {**RATE_CARD, "prices": [*RATE_CARD["prices"], {"metric": "translation_pages", "unit_price": "3"}]}
    make_contract(db, acme.tenant.organization, rate_card=card)  # euros, Paris time
    polish = make_org(db, OrgKind.CLIENT, country="PL")
    make_contract(db, polish, currency="PLN", billing_timezone="Europe/Warsaw")
    without = make_org(db, OrgKind.CLIENT)
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert close.close(
            session, acme.tenant.organization.id, "2026-10", timedelta(hours=48), finalise=True
        )

    def event(tenant: uuid.UUID, key: str, **fields: Any) -> dict[str, Any]:
        return {
            "tenant_id": str(tenant),
            "metric": "task_completed",
            "quantity": "1",
            "occurred_at": "2026-11-16T09:30:00Z",
            "idempotency_key": key,
            **fields,
        }

    priced = {"reason": "Weekend support", "unit_price": {"amount": "350.00", "currency": "EUR"}}
    october = {"occurred_at": "2026-10-20T10:00:00Z"}
    results = _post(
        client,
        operator,
        event(acme.tenant.id, "pages", metric="translation_pages"),
        event(polish.id, "pages", metric="translation_pages"),
        event(acme.tenant.id, "priced", **priced),
        event(polish.id, "priced", **priced),
        event(without.id, "priced", **priced),
        event(acme.tenant.id, "late", **october),
        event(polish.id, "late", **october),
        event(without.id, "late", **october),
    ).json()["results"]
    assert [r["status"] for r in results] == [
        "accepted", "rejected", "accepted", "rejected", "rejected", "accepted", "accepted", "accepted",
    ]  # fmt: skip
    assert [e["pointer"] for e in results[1]["errors"]] == ["/events/1/metric"]
    assert [e["pointer"] for e in results[3]["errors"]] == ["/events/3/unit_price/currency"]
    assert "PLN" in results[3]["errors"][0]["message"]
    assert [e["pointer"] for e in results[4]["errors"]] == ["/events/4/unit_price"]
    assert [r["adjustment"] for r in results[5:]] == [
        {"period": "2026-10", "billed_in": "2026-11"},
        None,
        None,
    ]


def test_the_answer_is_the_documented_one_with_ids_in_the_batchs_order(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    first = {
        "tenant_id": str(acme.tenant.id),
        "metric": "task_completed",
        "quantity": "1",
        "occurred_at": "2026-11-16T09:30:00Z",
        "idempotency_key": "first",
    }
    others = [{**first, "idempotency_key": f"other-{n}"} for n in range(50)]
    answer = _post(client, operator, first, {**first, "quantity": "-1"}, first, *others)
    assert answer.headers["content-type"] == "application/json"
    documented = UsageBatchOut.model_validate_json(answer.content)
    assert documented.model_dump(mode="json") == answer.json()
    assert all(set(result) == set(EventResult.model_fields) for result in answer.json()["results"])
    assert (documented.accepted, documented.duplicates, documented.rejected) == (51, 1, 1)
    accepted = [r.id for r in documented.results if r.status == "accepted"]
    assert all(event_id is not None and event_id.version == 7 for event_id in accepted)
    assert accepted == sorted(accepted, key=lambda event_id: event_id.bytes if event_id else b"")
    assert len(set(accepted)) == len(accepted)
