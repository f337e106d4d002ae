"""The usage ledger over HTTP: batches answered event by event, idempotent keys,
reversals instead of changes, and who may report or read usage."""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from services.core.database import Database
from services.core.settings import Settings
from services.core.time import utcnow
from services.identity.models import User
from services.metering import ingest
from services.metering.models import UsageEvent
from tenants import service as tenancy
from tenants.models import Organization
from tenants.principal import OrgKind, Role
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller
from tests.factories import (
    OPERATOR,
    PASSWORD,
    bearer,
    make_contract,
    make_issuing_entity,
    make_org,
    make_tenant,
    make_user,
    token,
)

PERIOD = "2026-11"
IN_PERIOD = "2026-11-16T09:30:00Z"
_keys = itertools.count(1)


@pytest.fixture
def operator(client: TestClient, db: Database) -> dict[str, str]:
    """The platform's own integration: an API client of the operator organisation."""
    tenant = make_tenant(db, OrgKind.OPERATOR)
    return bearer(token(client, tenant.client_id, tenant.client_secret))


def _event(tenant: Caller | Organization, **fields: Any) -> dict[str, Any]:
    tenant_id = tenant.tenant.id if isinstance(tenant, Caller) else tenant.id
    return {
        "tenant_id": str(tenant_id),
        "metric": "task_completed",
        "quantity": "1",
        "occurred_at": IN_PERIOD,
        "idempotency_key": f"key-{next(_keys)}",
        "task_kind": "support_ticket",
        **fields,
    }


def _post(client: TestClient, headers: dict[str, str], *events: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/usage-events", headers=headers, json={"events": list(events)})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _totals(client: TestClient, headers: dict[str, str], tenant: Caller, **query: str) -> dict[str, Decimal]:
    """The tenant's usage of PERIOD, metric by metric."""
    params = {"period": PERIOD, "tenant_id": str(tenant.tenant.id), **query}
    answer = client.get("/v1/usage", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    totals: dict[str, Decimal] = {}
    for item in answer.json()["items"]:
        totals[item["metric"]] = totals.get(item["metric"], Decimal(0)) + Decimal(item["quantity"])
    return totals


def _recorded(db: Database, tenant: Caller) -> int:
    with db.session() as session:
        bind(session, AccessScope.everything())
        query = select(func.count()).select_from(UsageEvent).where(UsageEvent.tenant_id == tenant.tenant.id)
        return int(session.scalar(query) or 0)


def _pointers(result: dict[str, Any]) -> list[str]:
    return [error["pointer"] for error in result["errors"]]


# ------------------------------------------------------------------ batches


def test_accepted_events_get_ids_and_count_in_the_usage(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    answer = _post(client, operator, _event(acme), _event(acme, quantity=2), _event(acme, metric="sla_met"))
    assert [r["status"] for r in answer["results"]] == ["accepted"] * 3
    assert [r["index"] for r in answer["results"]] == [0, 1, 2]
    assert len({r["id"] for r in answer["results"]}) == 3
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (3, 0, 0)
    assert _totals(client, operator, acme) == {"task_completed": Decimal(3), "sla_met": Decimal(1)}


def test_a_replayed_batch_is_duplicate_with_the_same_ids_and_records_nothing_more(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    batch = [_event(acme), _event(acme, metric="handle_minutes", quantity="12.5"), _event(acme)]
    first = _post(client, operator, *batch)
    before = _totals(client, operator, acme)
    replay = _post(client, operator, *batch)
    assert [r["status"] for r in replay["results"]] == ["duplicate"] * 3
    assert [r["id"] for r in replay["results"]] == [r["id"] for r in first["results"]]
    assert replay["duplicates"] == 3 and replay["accepted"] == 0
    assert (
        _totals(client, operator, acme)
        == before
        == {
            "task_completed": Decimal(2),
            "handle_minutes": Decimal("12.5"),
        }
    )
    assert _recorded(db, acme) == 3


def test_the_same_quantity_written_otherwise_is_still_a_duplicate(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    first = _post(client, operator, _event(acme, idempotency_key="typed", quantity="1.50"))
    again = _post(client, operator, _event(acme, idempotency_key="typed", quantity=1.5))
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["id"] == first["results"][0]["id"]


def test_the_same_key_with_another_body_is_rejected_naming_the_key(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    _post(client, operator, _event(acme, idempotency_key="invoice-line-7", quantity="1"))
    other = _post(
        client, operator, _event(acme), _event(acme, idempotency_key="invoice-line-7", quantity="2")
    )
    assert [r["status"] for r in other["results"]] == ["accepted", "rejected"]
    assert _pointers(other["results"][1]) == ["/events/1/idempotency_key"]
    assert _totals(client, operator, acme) == {"task_completed": Decimal(2)}


def test_a_key_repeated_within_a_batch_is_a_duplicate_of_its_first_use(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    event = _event(acme)
    answer = _post(client, operator, event, event)
    assert [r["status"] for r in answer["results"]] == ["accepted", "duplicate"]
    assert answer["results"][0]["id"] == answer["results"][1]["id"]
    assert _totals(client, operator, acme) == {"task_completed": Decimal(1)}


def test_a_key_repeated_within_a_batch_with_another_body_is_rejected(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    answer = _post(
        client, operator, _event(acme, idempotency_key="k"), _event(acme, idempotency_key="k", quantity=5)
    )
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]
    assert _pointers(answer["results"][1]) == ["/events/1/idempotency_key"]


def test_keys_are_unique_per_tenant_not_across_tenants(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    other = make_org(db, OrgKind.CLIENT)
    answer = _post(
        client, operator, _event(acme, idempotency_key="shared"), _event(other, idempotency_key="shared")
    )
    assert [r["status"] for r in answer["results"]] == ["accepted", "accepted"]


def test_the_good_events_of_a_batch_with_bad_ones_are_recorded(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    answer = _post(
        client,
        operator,
        _event(acme, quantity="2"),
        _event(acme, quantity="-1"),
        _event(acme, metric="parcels_weighed"),
        _event(acme, quantity="3"),
    )
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected", "rejected", "accepted"]
    assert (answer["accepted"], answer["rejected"]) == (2, 2)
    assert "id" not in answer["results"][1] or answer["results"][1]["id"] is None
    assert _totals(client, operator, acme) == {"task_completed": Decimal(5)}


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"quantity": "-1"}, "/events/0/quantity"),
        ({"quantity": -0.5}, "/events/0/quantity"),
        ({"quantity": "abc"}, "/events/0/quantity"),
        ({"quantity": "NaN"}, "/events/0/quantity"),
        ({"quantity": "1.1234567"}, "/events/0/quantity"),
        ({"metric": "parcels_weighed"}, "/events/0/metric"),
        ({"metric": "Not A Metric!"}, "/events/0/metric"),
        ({"occurred_at": "2026-11-16T09:30:00"}, "/events/0/occurred_at"),
        ({"occurred_at": "yesterday"}, "/events/0/occurred_at"),
        ({"idempotency_key": ""}, "/events/0/idempotency_key"),
        ({"colour": "blue"}, "/events/0/colour"),
    ],
    ids=[
        "negative-quantity",
        "negative-number",
        "non-numeric-quantity",
        "nan-quantity",
        "seven-decimal-places",
        "unknown-metric",
        "malformed-metric",
        "naive-time",
        "not-a-time",
        "empty-key",
        "unknown-field",
    ],
)
def test_a_bad_event_is_rejected_naming_its_field_and_not_recorded(
    client: TestClient,
    db: Database,
    operator: dict[str, str],
    acme: Caller,
    change: dict[str, Any],
    pointer: str,
) -> None:
    answer = _post(client, operator, _event(acme, **change))
    result = answer["results"][0]
    assert result["status"] == "rejected"
    assert _pointers(result) == [pointer]
    assert all(error["message"] for error in result["errors"])
    assert _recorded(db, acme) == 0


@pytest.mark.parametrize("missing", ["metric", "quantity", "occurred_at", "idempotency_key"])
def test_a_missing_field_is_rejected_naming_it(
    client: TestClient, operator: dict[str, str], acme: Caller, missing: str
) -> None:
    event = _event(acme)
    del event[missing]
    assert _pointers(_post(client, operator, event)["results"][0]) == [f"/events/0/{missing}"]


def test_six_decimal_places_are_kept_exactly(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    _post(client, operator, _event(acme, metric="handle_minutes", quantity="0.123456"))
    _post(client, operator, _event(acme, metric="handle_minutes", quantity="0.000001"))
    assert _totals(client, operator, acme) == {"handle_minutes": Decimal("0.123457")}


def test_more_than_a_thousand_events_is_a_422_naming_the_list_and_records_nothing(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    events = [_event(acme) for _ in range(1001)]
    answer = client.post("/v1/usage-events", headers=operator, json={"events": events})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["pointer"] for e in answer.json()["errors"]] == ["/events"]
    assert _recorded(db, acme) == 0


def test_a_thousand_events_are_one_batch(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    answer = _post(client, operator, *[_event(acme) for _ in range(1000)])
    assert answer["accepted"] == 1000
    assert _recorded(db, acme) == 1000


def test_an_event_dated_beyond_the_tolerance_is_rejected_as_in_the_future(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller, settings: Settings
) -> None:
    later = utcnow() + timedelta(seconds=settings.usage_future_tolerance_seconds + 60)
    answer = _post(client, operator, _event(acme, occurred_at=later.isoformat()))
    assert answer["results"][0]["status"] == "rejected"
    assert _pointers(answer["results"][0]) == ["/events/0/occurred_at"]
    assert _recorded(db, acme) == 0


def test_an_event_dated_slightly_ahead_of_the_clock_is_accepted(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    soon = utcnow() + timedelta(minutes=1)  # a sender's clock a little fast
    answer = _post(client, operator, _event(acme, occurred_at=soon.isoformat()))
    assert answer["results"][0]["status"] == "accepted"


def test_an_operator_must_name_the_client(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    event = _event(acme)
    del event["tenant_id"]
    assert _pointers(_post(client, operator, event)["results"][0]) == ["/events/0/tenant_id"]


def test_usage_of_a_provider_or_an_unknown_organisation_is_rejected(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    provider = make_org(db, OrgKind.PROVIDER)
    answer = _post(
        client,
        operator,
        _event(acme, tenant_id=str(provider.id)),
        _event(acme, tenant_id=str(uuid.uuid4())),
    )
    assert [_pointers(r) for r in answer["results"]] == [["/events/0/tenant_id"], ["/events/1/tenant_id"]]


def test_a_priced_item_needs_a_reason(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    item = _event(acme, unit_price={"amount": "12.50", "currency": "EUR"})
    result = _post(client, operator, item)["results"][0]
    assert result["status"] == "rejected" and "/events/0/reason" in _pointers(result)


# ------------------------------------------------------------------ reversals


def test_a_reversal_records_the_negative_quantity_and_the_usage_nets_to_zero(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    original = _post(client, operator, _event(acme, metric="handle_minutes", quantity="42.5"))["results"][0]
    reversal = _post(
        client,
        operator,
        {
            "tenant_id": str(acme.tenant.id),
            "reverses": original["id"],
            "reason": "counted twice by the integration",
            "idempotency_key": "reverse-1",
        },
    )["results"][0]
    assert reversal["status"] == "accepted"
    with db.session() as session:
        bind(session, AccessScope.everything())
        row = session.get(UsageEvent, uuid.UUID(reversal["id"]))
        assert row is not None
        assert (row.quantity, row.metric, str(row.reverses_id)) == (
            Decimal("-42.5"),
            "handle_minutes",
            original["id"],
        )
        assert row.reason == "counted twice by the integration"
    answer = client.get(
        "/v1/usage", headers=operator, params={"period": PERIOD, "tenant_id": str(acme.tenant.id)}
    )
    [item] = answer.json()["items"]
    assert (Decimal(item["quantity"]), item["events"]) == (Decimal(0), 2)


def _reverse(
    client: TestClient, operator: dict[str, str], acme: Caller, event_id: str, key: str, reason: str
) -> dict[str, Any]:
    """A reversal of ``event_id``, and its answer."""
    body = {"tenant_id": str(acme.tenant.id), "reverses": event_id, "reason": reason, "idempotency_key": key}
    return dict(_post(client, operator, body)["results"][0])


def test_a_reversal_is_not_reversed(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    original = _post(client, operator, _event(acme))["results"][0]
    first = _reverse(client, operator, acme, original["id"], "r-1", "wrong task")
    again = _reverse(client, operator, acme, first["id"], "r-2", "undo the undo")
    assert again["status"] == "rejected" and _pointers(again) == ["/events/0/reverses"]
    assert _totals(client, operator, acme) == {"task_completed": Decimal(0)}


def test_reversing_an_unknown_event_is_rejected(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    answer = _post(
        client,
        operator,
        {
            "tenant_id": str(acme.tenant.id),
            "reverses": str(uuid.uuid4()),
            "reason": "x",
            "idempotency_key": "r",
        },
    )
    assert _pointers(answer["results"][0]) == ["/events/0/reverses"]


def test_reversing_another_tenants_event_is_rejected_as_unknown(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    other = make_org(db, OrgKind.CLIENT)
    theirs = _post(client, operator, _event(other))["results"][0]
    answer = _post(
        client,
        operator,
        {"tenant_id": str(acme.tenant.id), "reverses": theirs["id"], "reason": "x", "idempotency_key": "r"},
    )
    assert _pointers(answer["results"][0]) == ["/events/0/reverses"]


def test_a_reversal_needs_a_reason(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    original = _post(client, operator, _event(acme))["results"][0]
    answer = _post(
        client,
        operator,
        {"tenant_id": str(acme.tenant.id), "reverses": original["id"], "idempotency_key": "r"},
    )
    assert _pointers(answer["results"][0]) == ["/events/0/reason"]


# ------------------------------------------------------------------ who


def test_a_clients_api_client_may_not_report_usage(client: TestClient, db: Database, acme: Caller) -> None:
    answer = client.post("/v1/usage-events", headers=acme.headers, json={"events": [_event(acme)]})
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert _recorded(db, acme) == 0


def test_an_operator_client_without_the_billing_manage_scope_may_not_report_usage(
    client: TestClient, db: Database, acme: Caller
) -> None:
    tenant = make_tenant(db, OrgKind.OPERATOR)
    reader = bearer(token(client, tenant.client_id, tenant.client_secret, scope="billing:read"))
    answer = client.post("/v1/usage-events", headers=reader, json={"events": [_event(acme)]})
    assert answer.status_code == 403, answer.text


def test_a_client_reads_its_own_usage(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    _post(client, operator, _event(acme, quantity="4"))
    answer = client.get("/v1/usage", headers=acme.headers, params={"period": PERIOD})
    assert answer.status_code == 200, answer.text
    [item] = answer.json()["items"]
    assert (item["tenant_id"], item["metric"], Decimal(item["quantity"])) == (
        str(acme.tenant.id),
        "task_completed",
        Decimal(4),
    )


def test_a_client_never_sees_another_clients_usage(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    other = make_org(db, OrgKind.CLIENT)
    _post(client, operator, _event(other, quantity="9"))
    mine = client.get("/v1/usage", headers=acme.headers, params={"period": PERIOD})
    assert mine.json()["items"] == []
    theirs = client.get(
        "/v1/usage", headers=acme.headers, params={"period": PERIOD, "tenant_id": str(other.id)}
    )
    assert theirs.status_code == 404, theirs.text


def test_a_provider_reading_usage_gets_404(client: TestClient, db: Database) -> None:
    provider = make_tenant(db, OrgKind.PROVIDER)
    headers = bearer(token(client, provider.client_id, provider.client_secret))
    assert client.get("/v1/usage", headers=headers, params={"period": PERIOD}).status_code == 404


def test_an_operator_reads_one_tenant_or_all_of_them(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    other = make_org(db, OrgKind.CLIENT)
    _post(client, operator, _event(acme, quantity="1"), _event(other, quantity="2"))
    everyone = client.get("/v1/usage", headers=operator, params={"period": PERIOD}).json()
    seen = {item["tenant_id"]: Decimal(item["quantity"]) for item in everyone["items"]}
    assert seen[str(acme.tenant.id)] == 1 and seen[str(other.id)] == 2
    assert everyone["timezone"] == "UTC"
    one = client.get(
        "/v1/usage", headers=operator, params={"period": PERIOD, "tenant_id": str(other.id)}
    ).json()
    assert [item["tenant_id"] for item in one["items"]] == [str(other.id)]


def test_usage_is_aggregated_by_metric_and_filtered_by_metric_and_queue(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    queue = str(uuid.uuid4())
    _post(
        client,
        operator,
        _event(acme, queue_id=queue),
        _event(acme, queue_id=queue),
        _event(acme, metric="handle_minutes", quantity="3", queue_id=queue),
        _event(acme),
    )
    assert _totals(client, operator, acme, metric="handle_minutes") == {"handle_minutes": Decimal(3)}
    assert _totals(client, operator, acme, queue_id=queue) == {
        "task_completed": Decimal(2),
        "handle_minutes": Decimal(3),
    }


def test_usage_of_another_month_is_not_in_the_period(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    _post(client, operator, _event(acme, occurred_at="2026-10-31T23:59:59Z"), _event(acme))
    assert _totals(client, operator, acme) == {"task_completed": Decimal(1)}


def test_a_period_that_is_not_a_month_is_422(client: TestClient, operator: dict[str, str]) -> None:
    answer = client.get("/v1/usage", headers=operator, params={"period": "2026-13"})
    assert answer.status_code == 422
    assert [e["pointer"] for e in answer.json()["errors"]] == ["/query/period"]


def _account_manager(client: TestClient, db: Database, *portfolio: Organization) -> dict[str, str]:
    """An account manager of the operator, signed in; the headers of a change from its pages."""
    email = make_user(db, make_org(db, OrgKind.OPERATOR), [Role.ACCOUNT_MANAGER], locale="en")
    with db.session() as session:
        bind(session, AccessScope.everything())
        manager_id = session.scalars(select(User.id).where(User.email == email)).one()
        for organization in portfolio:
            tenancy.assign_account_manager(session, organization, manager_id)
    page = client.get("/login")
    csrf = client.cookies.get("bpo_csrf")
    assert page.status_code == 200 and csrf
    answer = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code in (302, 303), answer.text
    session_csrf = client.cookies.get("bpo_csrf")  # signing in issues the session's own token
    assert session_csrf
    return {"x-csrf-token": session_csrf}


def test_an_account_manager_reports_usage_for_its_portfolio_only(
    client: TestClient, db: Database, acme: Caller
) -> None:
    outside = make_org(db, OrgKind.CLIENT)
    headers = _account_manager(client, db, acme.tenant.organization)
    answer = client.post(
        "/v1/usage-events", headers=headers, json={"events": [_event(acme), _event(outside)]}
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert _pointers(results[1]) == ["/events/1/tenant_id"]


def test_an_account_manager_reads_the_usage_of_its_portfolio_only(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    outside = make_org(db, OrgKind.CLIENT)
    _post(client, operator, _event(acme), _event(outside))
    _account_manager(client, db, acme.tenant.organization)
    portfolio = client.get("/v1/usage", params={"period": PERIOD})
    assert portfolio.status_code == 200, portfolio.text
    assert {item["tenant_id"] for item in portfolio.json()["items"]} == {str(acme.tenant.id)}
    hidden = client.get("/v1/usage", params={"period": PERIOD, "tenant_id": str(outside.id)})
    assert hidden.status_code == 404


# ------------------------------------------------------------------ immutability (PostgreSQL)


@pytest.fixture
def recorded(db: Database, settings: Settings, is_postgres: bool) -> Organization:
    """A client with one usage event, reported through the service."""
    if not is_postgres:  # CI runs the suite a second time on PostgreSQL, where these run
        pytest.skip("the ledger's trigger is PostgreSQL's (set BPO_TEST_DATABASE_URL)")
    organization = make_org(db, OrgKind.CLIENT)
    with db.session() as session:
        bind(session, OPERATOR.access)
        answer = ingest.ingest(session, OPERATOR, settings, [_event(organization)])
        assert answer.accepted == 1
    return organization


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE usage_events SET quantity = 0 WHERE tenant_id = :t",
        "DELETE FROM usage_events WHERE tenant_id = :t",
    ],
    ids=["update", "delete"],
)
def test_the_ledger_refuses_updates_and_deletes(db: Database, recorded: Organization, statement: str) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        with pytest.raises(DBAPIError, match="usage events are immutable"), session.begin_nested():
            session.execute(text(statement), {"t": recorded.id})
        assert session.scalar(select(func.count()).where(UsageEvent.tenant_id == recorded.id)) == 1


@pytest.mark.postgres
def test_the_ledger_refuses_an_orm_update(db: Database, recorded: Organization) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        with pytest.raises(DBAPIError, match="immutable"), session.begin_nested():
            session.execute(
                update(UsageEvent).where(UsageEvent.tenant_id == recorded.id).values(reason="edited")
            )


@pytest.mark.postgres
def test_deleting_the_tenant_still_deletes_its_usage(db: Database, recorded: Organization) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        with session.begin_nested():
            session.execute(delete(Organization).where(Organization.id == recorded.id))
        left = session.scalar(
            select(func.count()).select_from(UsageEvent).where(UsageEvent.tenant_id == recorded.id)
        )
        assert left == 0


def test_an_event_is_reversed_once(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    original = _post(client, operator, _event(acme, quantity="3"))["results"][0]
    first = _reverse(client, operator, acme, original["id"], "r-1", "wrong task")
    again = _reverse(client, operator, acme, original["id"], "r-2", "wrong task")
    assert first["status"] == "accepted"
    assert again["status"] == "rejected" and _pointers(again) == ["/events/0/reverses"]
    assert _totals(client, operator, acme) == {"task_completed": Decimal(0)}


def test_two_reversals_of_one_event_in_a_batch_take_the_first(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    original = _post(client, operator, _event(acme, quantity="3"))["results"][0]
    reversal = {"tenant_id": str(acme.tenant.id), "reverses": original["id"], "reason": "wrong task"}
    answer = _post(
        client, operator, {**reversal, "idempotency_key": "r-1"}, {**reversal, "idempotency_key": "r-2"}
    )
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]
    assert _pointers(answer["results"][1]) == ["/events/1/reverses"]
    assert _totals(client, operator, acme) == {"task_completed": Decimal(0)}


def test_a_replayed_reversal_is_a_duplicate(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    original = _post(client, operator, _event(acme))["results"][0]
    reversal = {
        "tenant_id": str(acme.tenant.id),
        "reverses": original["id"],
        "reason": "wrong task",
        "idempotency_key": "r-1",
    }
    first = _post(client, operator, reversal)["results"][0]
    again = _post(client, operator, reversal)["results"][0]
    assert (again["status"], again["id"]) == ("duplicate", first["id"])


@pytest.mark.postgres
def test_two_requests_reversing_one_event_at_once_reverse_it_once(
    committed: Database, settings: Settings
) -> None:
    organization = make_org(committed, OrgKind.CLIENT)

    def statuses_of(*events: dict[str, Any]) -> list[str]:
        with committed.session() as session:
            bind(session, OPERATOR.access)
            return [r.status for r in ingest.ingest(session, OPERATOR, settings, list(events)).results]

    with committed.session() as session:
        bind(session, OPERATOR.access)
        original = ingest.ingest(session, OPERATOR, settings, [_event(organization)]).results[0].id
    barrier, statuses = threading.Barrier(2), []

    def reverse(key: str) -> None:
        barrier.wait()
        reversal = {"tenant_id": str(organization.id), "reverses": str(original), "reason": "x"}
        statuses.extend(statuses_of({**reversal, "idempotency_key": key}))

    threads = [threading.Thread(target=reverse, args=(f"r-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == ["accepted", "rejected"]


def test_the_usage_of_an_organisation_that_is_not_a_client_is_404(
    client: TestClient, db: Database, operator: dict[str, str]
) -> None:
    provider = make_org(db, OrgKind.PROVIDER)
    answer = client.get(
        "/v1/usage", headers=operator, params={"period": PERIOD, "tenant_id": str(provider.id)}
    )
    assert answer.status_code == 404, answer.text


def test_an_event_dated_in_a_finalised_period_of_the_contracts_timezone_is_an_adjustment(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller
) -> None:
    from services.billing import close

    make_issuing_entity(db)
    make_contract(db, acme.tenant.organization)  # Paris time
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert close.close(
            session, acme.tenant.organization.id, "2026-10", timedelta(hours=48), finalise=True
        )
    # The same UTC day, either side of midnight in Paris: 1 November, then 31 October.
    answer = _post(
        client,
        operator,
        _event(acme, occurred_at="2026-10-31T23:30:00Z"),
        _event(acme, occurred_at="2026-10-31T22:30:00Z"),
    )
    november, october = answer["results"]
    assert (november["status"], november.get("adjustment")) == ("accepted", None)
    assert (october["status"], october["adjustment"]) == (
        "accepted",
        {"period": "2026-10", "billed_in": "2026-11"},
    )
