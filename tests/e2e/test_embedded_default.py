"""``bpo serve`` on a fresh data dir runs the whole platform: the api answers,
and a job sent through the embedded broker is done by the real worker."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from celery import Celery
from sqlalchemy import select

from services.core.database import Database
from services.core.time import utcnow
from services.identity.credentials import digest
from services.identity.models import User, WebSession
from tenants.scoping import AccessScope, bind
from tests.live import LivePlatform

pytestmark = pytest.mark.slow


def test_demo_seed_describes_every_organisation(platform: LivePlatform) -> None:
    organizations = platform.demo["organizations"]
    assert isinstance(organizations, list)
    countries = {(o["kind"], o["country"]) for o in organizations}
    assert {
        ("client", "FR"),
        ("client", "DE"),
        ("client", "ES"),
        ("provider", "RO"),
        ("provider", "PL"),
        ("provider", "PH"),
        ("operator", "IE"),
    } <= countries
    assert all({"id", "kind", "name", "country"} <= set(o) for o in organizations)


def test_the_demo_clients_of_the_portfolio_have_a_contract_sla(platform: LivePlatform) -> None:
    from tests.live import api_headers

    operator = httpx.Client(base_url=platform.url, headers=api_headers(platform, "Backstage Operations"))
    policies = operator.get("/v1/sla/policies", params={"limit": 100}).json()["items"]
    names = {p["name"] for p in policies}
    assert {"Assurances Lumière SLA", "Brandt Logistik GmbH SLA"} <= names
    calendars = operator.get("/v1/sla/calendars", params={"limit": 100}).json()["items"]
    paris = next(c for c in calendars if c["name"] == "Service Paris")
    assert paris["versions"][0]["spec"]["holidays"] == {"country": "FR", "subdivision": None}


def test_api_and_metrics_answer(platform: LivePlatform) -> None:
    assert httpx.get(f"{platform.url}/healthz").json() == {"status": "ok"}
    httpx.get(f"{platform.url}/login")
    assert "bpo_http_requests_total" in httpx.get(f"{platform.url}/metrics").text


def test_the_worker_runs_a_job_sent_through_the_broker(platform: LivePlatform) -> None:
    database = Database(f"sqlite:///{platform.data_dir / 'bpo.sqlite'}")
    with database.session() as session:
        bind(session, AccessScope.everything())
        user = session.scalars(select(User)).first()
        assert user is not None
        session.add(
            WebSession(
                tenant_id=user.tenant_id,
                user_id=user.id,
                token_hash=digest("stale"),
                expires_at=utcnow() - timedelta(minutes=1),
            )
        )
    broker = Celery(broker=f"sqla+sqlite:///{platform.data_dir / 'broker.sqlite'}")
    broker.send_task("identity.purge_expired_credentials")
    deadline = time.monotonic() + 60
    remaining = 1
    while time.monotonic() < deadline and remaining:
        time.sleep(0.5)
        with database.session() as session:
            bind(session, AccessScope.everything())
            remaining = len(
                session.scalars(select(WebSession).where(WebSession.token_hash == digest("stale"))).all()
            )
    database.engine.dispose()
    assert remaining == 0, "the worker did not purge the expired session within 60 s"


def test_stopping_serve_stops_its_worker_and_beat(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from tests import live

    running = live.start(tmp_path)
    children_file = Path(f"/proc/{running.process.pid}/task/{running.process.pid}/children")
    children = [int(pid) for pid in children_file.read_text().split()]
    assert len(children) == 2  # worker and beat
    live.stop(running)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.2)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert alive == [], f"worker/beat left running after bpo serve stopped: {alive}"


def _state(pid: int) -> str:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


def test_every_decision_on_a_german_contract_says_manila_is_excluded(platform: LivePlatform) -> None:
    """Brandt's contract documents must stay in the EU: Manila, which answers Brandt's
    English delivery questions, is named in each decision as excluded by residency, to the
    operator and to the client, and no German contract is ever Manila's."""
    from tests.live import api_headers

    operator = httpx.Client(base_url=platform.url, headers=api_headers(platform, "Backstage Operations"))
    brandt = httpx.Client(base_url=platform.url, headers=api_headers(platform, "Brandt Logistik GmbH"))
    teams = {t["name"]: t["id"] for t in operator.get("/v1/teams", params={"limit": 100}).json()["items"]}
    queues = {q["name"]: q["id"] for q in brandt.get("/v1/queues").json()["items"]}
    listed = brandt.get("/v1/tasks", params={"queue_id": queues["Vertragsdokumente DE"], "limit": 100})
    contracts = listed.json()["items"]
    assert contracts
    manila = {"team_id": teams["Manila EN night shift"], "eligible": False, "failed": "residency"}
    for task in contracts:
        for side in (operator, brandt):
            decisions = side.get(f"/v1/tasks/{task['id']}/routing").json()["decisions"]
            assert decisions
            for decision in decisions:
                assert any(manila.items() <= line.items() for line in decision["candidates"]), decision
                assert decision.get("winner", {}).get("team_id") != manila["team_id"]
