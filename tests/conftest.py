"""Shared fixtures: one migrated database per run, one rolled-back transaction per test.

``BPO_TEST_DATABASE_URL`` selects PostgreSQL (connecting as the application
role) and ``BPO_TEST_MIGRATION_DATABASE_URL`` the owner that migrates; without
them the suite runs on a SQLite file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, inspect

from services.api import create_app
from services.core.database import Database, make_engine
from services.core.settings import Settings
from services.migrations import alembic_config, upgrade
from tests.factories import Tenant, bearer, make_tenant, token
from tests.notify.receiver import Receiver

IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip on a developer's machine, fail in CI: CI must run every suite."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bpo-data")


@pytest.fixture(scope="session")
def database_url(data_dir: Path) -> str:
    return os.environ.get("BPO_TEST_DATABASE_URL") or f"sqlite:///{data_dir / 'test.sqlite'}"


@pytest.fixture(scope="session")
def migration_url(database_url: str) -> str:
    return os.environ.get("BPO_TEST_MIGRATION_DATABASE_URL") or database_url


@pytest.fixture(scope="session")
def settings(data_dir: Path, database_url: str, migration_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        migration_database_url=migration_url,
        broker_url=os.environ.get("BPO_TEST_BROKER_URL") or f"sqla+sqlite:///{data_dir / 'broker.sqlite'}",
        secret_key="test-secret-key-not-for-production",
        webhook_allow_private_networks=True,  # the test receivers listen on 127.0.0.1
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    _reset_schema(settings.resolved_migration_url())
    upgrade(settings.resolved_migration_url())
    engine = make_engine(settings.resolved_database_url())
    yield engine
    engine.dispose()


def _reset_schema(migration_url: str) -> None:
    """Start from an empty schema: downgrade whatever an earlier run left."""
    from alembic import command

    owner = make_engine(migration_url)
    try:
        if "alembic_version" in inspect(owner).get_table_names():
            command.downgrade(alembic_config(migration_url), "base")
    finally:
        owner.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def db(connection: Connection, settings: Settings) -> Database:
    """Sessions made here join the test's transaction through savepoints."""
    return Database(settings.resolved_database_url(), bind=connection)


@pytest.fixture(scope="session")
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings, Database(settings.resolved_database_url(), bind=engine))


@pytest.fixture
def client(app: FastAPI, db: Database) -> Iterator[TestClient]:
    previous = app.state.db
    app.state.db = db
    with TestClient(app, base_url="http://localhost") as test_client:
        yield test_client
    app.state.db = previous


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


# A client tenant calling the API with a token holding every scope.
@dataclass
class Caller:
    tenant: Tenant
    headers: dict[str, str]


@pytest.fixture
def acme(client: TestClient, db: Database) -> Caller:
    tenant = make_tenant(db)
    return Caller(tenant, bearer(token(client, tenant.client_id, tenant.client_secret)))


@pytest.fixture
def queue_id(client: TestClient, acme: Caller) -> str:
    answer = client.post(
        "/v1/queues", headers=acme.headers, json={"name": "Support FR", "task_kind": "support_ticket"}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real webhook receiver on 127.0.0.1."""
    from tests.notify.receiver import serve

    found = Receiver()
    server = serve(found)
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def committed(engine: Engine, settings: Settings, is_postgres: bool) -> Iterator[Database]:
    """A database whose transactions really commit, for tests of concurrent processes
    (PostgreSQL only); the organisations they create are deleted afterwards."""
    if not is_postgres:  # CI runs the suite a second time on PostgreSQL, where these run
        pytest.skip("concurrency tests need PostgreSQL (BPO_TEST_DATABASE_URL)")
    from sqlalchemy import delete, select

    from services.notify.models import OutboxEvent
    from services.work.models import Task
    from tenants.models import Organization
    from tenants.scoping import AccessScope, bind

    database = Database(settings.resolved_database_url(), bind=engine)
    with database.session() as session:
        bind(session, AccessScope.everything())
        before = set(session.scalars(select(Organization.id)))
    yield database
    with database.session() as session:
        bind(session, AccessScope.everything())
        created = set(session.scalars(select(Organization.id))) - before
        session.execute(delete(Task).where(Task.tenant_id.in_(created)))
        session.execute(delete(OutboxEvent).where(OutboxEvent.tenant_id.in_(created)))  # no key: no cascade
        session.execute(delete(Organization).where(Organization.id.in_(created)))
