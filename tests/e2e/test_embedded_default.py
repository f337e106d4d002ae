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
