"""The SLA API: calendars and policies set by the operator, clocks, attainment and breaches."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.core.database import Database
from services.core.time import utcnow
from services.sla import sweep
from services.sla.models import Outcome, SlaClock
from services.work.models import Task
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.conftest import Caller
from tests.factories import PARIS_OFFICE, advance, bearer, make_task, make_tenant, token


@pytest.fixture
def operator(client: TestClient, db: Database) -> dict[str, str]:
    """The platform's own integration: an API client of the operator organisation."""
    tenant = make_tenant(db, OrgKind.OPERATOR)
    return bearer(token(client, tenant.client_id, tenant.client_secret))


def _calendar(client: TestClient, operator: dict[str, str], acme: Caller, **fields: Any) -> Any:
    body = {"name": "Service Paris", "tenant_id": str(acme.tenant.id), "spec": PARIS_OFFICE, **fields}
    return client.post("/v1/sla/calendars", headers=operator, json=body)


def _policy(client: TestClient, operator: dict[str, str], acme: Caller, **fields: Any) -> Any:
    body = {
        "name": "Contrat 2026",
        "tenant_id": str(acme.tenant.id),
        "targets": [
            {"metric": "first_response", "minutes": 60, "business_time": False},
            {"metric": "resolution", "minutes": 480, "business_time": False},
        ],
        **fields,
    }
    return client.post("/v1/sla/policies", headers=operator, json=body)


def test_the_operator_sets_a_clients_calendar_and_policy_which_the_client_reads(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    calendar = _calendar(client, operator, acme)
    assert calendar.status_code == 201, calendar.text
    assert calendar.json()["versions"][0]["spec"]["timezone"] == "Europe/Paris"
    policy = _policy(client, operator, acme, calendar="Service Paris")
    assert policy.status_code == 201, policy.text
    version = policy.json()["versions"][0]
    assert version["calendar_id"] == calendar.json()["id"] and version["warn_at_percent"] == 75
    assert version["pause_on"] == ["waiting_on_client", "waiting_on_third_party"]
    mine = client.get("/v1/sla/policies", headers=acme.headers).json()["items"]
    assert [p["id"] for p in mine] == [policy.json()["id"]]
    seen = client.get(f"/v1/sla/calendars/{calendar.json()['id']}", headers=acme.headers)
    assert seen.status_code == 200


def test_a_client_may_not_set_its_own_sla(client: TestClient, acme: Caller) -> None:
    body = {"name": "Mine", "targets": [{"metric": "resolution", "minutes": 1}]}
    assert client.post("/v1/sla/policies", headers=acme.headers, json=body).status_code == 403


def test_a_new_version_applies_from_its_effective_date(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    policy = _policy(client, operator, acme).json()
    later = (utcnow() + timedelta(days=30)).isoformat()
    body = {
        "effective_from": later,
        "targets": [{"metric": "resolution", "minutes": 240, "business_time": False}],
    }
    answer = client.post(f"/v1/sla/policies/{policy['id']}/versions", headers=operator, json=body)
    assert answer.status_code == 201, answer.text
    assert [v["version"] for v in answer.json()["versions"]] == [1, 2]
    earlier = {**body, "effective_from": (utcnow() - timedelta(days=30)).isoformat()}
    refused = client.post(f"/v1/sla/policies/{policy['id']}/versions", headers=operator, json=earlier)
    assert refused.status_code == 422 and refused.json()["errors"][0]["pointer"] == "/effective_from"


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"timezone": "Europe/Atlantis"}, "/spec/timezone"),
        ({"weekly": {"mon": [["09:00", "09:00"]]}}, "/spec/weekly/mon/0"),
        ({"weekly": {"mon": [["09:00", "12:00"], ["11:00", "14:00"]]}}, "/spec/weekly/mon/1"),
        ({"holidays": {"country": "XX", "subdivision": None}}, "/spec/holidays/country"),
        ({"holidays": {"country": "FR", "subdivision": "ZZ"}}, "/spec/holidays/subdivision"),
        ({"weekly": {}}, "/spec/weekly"),
    ],
    ids=[
        "unknown-timezone",
        "end-equals-start",
        "overlap",
        "unknown-country",
        "unknown-subdivision",
        "never-open",
    ],
)
def test_a_bad_calendar_is_422_naming_the_field(
    client: TestClient, operator: dict[str, str], acme: Caller, change: dict[str, Any], pointer: str
) -> None:
    answer = _calendar(client, operator, acme, spec={**PARIS_OFFICE, **change})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["pointer"] for e in answer.json()["errors"]] == [pointer]


@pytest.mark.parametrize("minutes", [0, -30])
def test_a_target_of_zero_or_less_is_422(
    client: TestClient, operator: dict[str, str], acme: Caller, minutes: int
) -> None:
    answer = _policy(client, operator, acme, targets=[{"metric": "resolution", "minutes": minutes}])
    assert answer.status_code == 422
    assert [e["pointer"] for e in answer.json()["errors"]] == ["/targets/0/minutes"]


def test_a_naive_effective_date_is_422(client: TestClient, operator: dict[str, str], acme: Caller) -> None:
    answer = _calendar(client, operator, acme, effective_from="2026-12-01T09:00:00")
    assert answer.status_code == 422
    assert [e["pointer"] for e in answer.json()["errors"]] == ["/effective_from"]


def test_business_time_on_an_unknown_calendar_is_422(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    answer = _policy(client, operator, acme, targets=[{"metric": "resolution", "minutes": 60}])
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"] == "/targets/0/calendar"
    named = _policy(
        client, operator, acme, calendar="Nowhere", targets=[{"metric": "resolution", "minutes": 60}]
    )
    assert named.json()["errors"][0]["pointer"] == "/calendar"


def test_a_tasks_clocks_come_with_their_log(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller, queue_id: str
) -> None:
    _policy(client, operator, acme)
    task = client.post(
        "/v1/tasks",
        headers=acme.headers,
        json={"queue_id": queue_id, "title": "Remboursement", "payload": {"description": "x"}},
    ).json()
    clocks = client.get(f"/v1/tasks/{task['id']}/sla", headers=acme.headers).json()
    assert [(c["metric"], c["state"]) for c in clocks] == [
        ("first_response", "running"),
        ("resolution", "running"),
    ]
    assert [s["kind"] for s in clocks[0]["log"]] == ["start"]


# The sweep ran "two hours from now", so the breaches are dated in the future.
WINDOW = {"until": (utcnow() + timedelta(days=1)).isoformat()}


def _settle_some(db: Database, acme: Caller, queue_id: str) -> None:
    """Three tasks: one answered in time, two whose first response breaches."""
    from services.work.models import Queue

    with db.session() as session:
        bind(session, AccessScope.everything())
        queue = session.get(Queue, uuid.UUID(queue_id))
    assert queue is not None
    answered = make_task(db, queue)
    advance(db, answered, "assign", "start")
    late = [make_task(db, queue) for _ in range(2)]
    with db.session() as session:
        bind(session, AccessScope.everything())
        sweep.sweep(session, now=utcnow() + timedelta(hours=2))
    advance(db, late[0], "assign", "start", "ask_client")


def test_attainment_matches_the_clocks_and_its_csv_matches_the_json(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller, queue_id: str
) -> None:
    _policy(client, operator, acme)
    _settle_some(db, acme, queue_id)
    params = {**WINDOW, "granularity": "day"}
    rows = client.get("/v1/sla/attainment", params=params, headers=acme.headers).json()["items"]
    first = [r for r in rows if r["metric"] == "first_response"]
    with db.session() as session:
        bind(session, AccessScope.everything())
        clocks = session.scalars(select(SlaClock).where(SlaClock.tenant_id == acme.tenant.id)).all()
    met = sum(c.outcome is Outcome.MET and c.metric.value == "first_response" for c in clocks)
    breached = sum(c.outcome is Outcome.BREACHED and c.metric.value == "first_response" for c in clocks)
    assert (met, breached) == (1, 2)
    assert sum(r["met"] for r in first) == met and sum(r["breached"] for r in first) == breached
    assert first[0]["attainment"] == round(1 / 3, 4)
    exported = client.get("/v1/sla/attainment", params=params, headers={**acme.headers, "Accept": "text/csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["metric"], int(r["met"]), int(r["breached"])) for r in lines] == [
        (r["metric"], r["met"], r["breached"]) for r in rows
    ]


def test_each_breach_comes_with_its_log_as_evidence_in_json_and_csv(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller, queue_id: str
) -> None:
    _policy(client, operator, acme)
    _settle_some(db, acme, queue_id)
    breaches = client.get("/v1/sla/breaches", params=WINDOW, headers=acme.headers).json()["items"]
    assert len(breaches) == 2 and {b["metric"] for b in breaches} == {"first_response"}
    stopped = next(b for b in breaches if b["state"] == "stopped")
    assert [s["kind"] for s in stopped["log"]] == ["start", "stop"]
    assert stopped["breached_at"] == stopped["due_at"]
    exported = client.get("/v1/sla/breaches", params=WINDOW, headers={**acme.headers, "Accept": "text/csv"})
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(line["clock_id"] for line in lines) == sorted(b["id"] for b in breaches)
    line = next(line for line in lines if line["clock_id"] == stopped["id"])
    assert line["log"].startswith("start ") and " | stop start " in line["log"]


def test_a_report_window_must_be_ordered(client: TestClient, acme: Caller) -> None:
    answer = client.get(
        "/v1/sla/attainment",
        params={"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
        headers=acme.headers,
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["pointer"] == "/since"


def test_paused_time_in_the_report_is_what_the_clock_logs_show(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller, queue_id: str
) -> None:
    _policy(client, operator, acme)
    task = client.post(
        "/v1/tasks",
        headers=acme.headers,
        json={"queue_id": queue_id, "title": "Attestation", "payload": {"description": "x"}},
    ).json()
    with db.session() as session:
        bind(session, AccessScope.everything())
        stored = session.get(Task, uuid.UUID(task["id"]))
    assert stored is not None
    advance(db, stored, "assign", "start", "ask_client")
    time.sleep(1.1)  # clocks count whole seconds: let the client hold the task for one at least
    client.post(
        f"/v1/tasks/{task['id']}/transitions", headers=acme.headers, json={"action": "client_replied"}
    )
    advance(db, stored, "resolve")
    clocks = client.get(f"/v1/tasks/{task['id']}/sla", headers=acme.headers).json()
    resolution = next(c for c in clocks if c["metric"] == "resolution")
    log = {s["kind"]: s for s in resolution["log"]}
    held = datetime.fromisoformat(log["resume"]["at"]) - datetime.fromisoformat(log["pause"]["at"])
    assert held.total_seconds() >= 1
    rows = client.get("/v1/sla/attainment", params=WINDOW, headers=acme.headers).json()["items"]
    row = next(r for r in rows if r["metric"] == "resolution")
    assert row["met"] == 1
    assert (
        row["paused_waiting_on_client_seconds"] == held.total_seconds() == resolution["paused_client_seconds"]
    )
    assert log["stop"]["elapsed_seconds"] == resolution["elapsed_seconds"]


def test_a_calendar_with_no_open_time_ahead_is_422(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    past = {"from": "2020-01-06", "to": "2020-01-06", "hours": [["09:00", "11:00"]]}
    answer = _calendar(client, operator, acme, spec={"timezone": "Europe/Paris", "openings": [past]})
    assert answer.status_code == 422 and answer.json()["errors"][0]["pointer"] == "/spec"


def test_a_target_the_calendar_cannot_reach_is_422_not_a_hang(
    client: TestClient, operator: dict[str, str], acme: Caller
) -> None:
    day = (utcnow() + timedelta(days=7)).date().isoformat()
    spec = {"timezone": "Europe/Paris", "openings": [{"from": day, "to": day, "hours": [["09:00", "11:00"]]}]}
    assert _calendar(client, operator, acme, name="Two hours", spec=spec).status_code == 201
    answer = _policy(
        client, operator, acme, calendar="Two hours", targets=[{"metric": "resolution", "minutes": 180}]
    )
    assert answer.status_code == 422
    assert [e["pointer"] for e in answer.json()["errors"]] == ["/targets/0/minutes"]


def test_clocks_are_the_contracts_and_need_the_sla_scope(
    client: TestClient, acme: Caller, queue_id: str
) -> None:
    task = client.post(
        "/v1/tasks",
        headers=acme.headers,
        json={"queue_id": queue_id, "title": "x", "payload": {"description": "x"}},
    ).json()
    reader = bearer(token(client, acme.tenant.client_id, acme.tenant.client_secret, scope="tasks:read"))
    assert client.get(f"/v1/tasks/{task['id']}/sla", headers=reader).status_code == 403


def test_the_next_page_of_the_breach_csv_keeps_the_filters(
    client: TestClient, db: Database, operator: dict[str, str], acme: Caller, queue_id: str
) -> None:
    _policy(client, operator, acme)
    _settle_some(db, acme, queue_id)
    params = {**WINDOW, "metric": "first_response", "limit": 1}
    exported = client.get("/v1/sla/breaches", params=params, headers={**acme.headers, "Accept": "text/csv"})
    link = exported.headers["link"]
    assert "cursor=" in link and "metric=first_response" in link and "until=" in link
    following = link.split("<")[1].split(">")[0]
    second = client.get(following, headers={**acme.headers, "Accept": "text/csv"})
    first_ids = {line["clock_id"] for line in csv.DictReader(io.StringIO(exported.text))}
    second_ids = {line["clock_id"] for line in csv.DictReader(io.StringIO(second.text))}
    assert len(first_ids) == len(second_ids) == 1 and first_ids != second_ids
