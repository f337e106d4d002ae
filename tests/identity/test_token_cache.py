"""A process remembers a resolved bearer token for a few seconds, never longer than the
token lives, and forgets it the moment it is revoked here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, select

from services.core.database import Database
from services.identity import service
from services.identity.credentials import digest
from services.identity.models import AccessToken
from services.identity.token_cache import TOKENS, TokenCache
from tenants.principal import OrgKind, Principal
from tenants.scoping import AccessScope, bind
from tests.factories import bearer, make_tenant, token

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _principal(client_id: uuid.UUID | None = None) -> Principal:
    org = uuid.uuid4()
    return Principal(
        subject_id=client_id or uuid.uuid4(),
        subject_kind="api_client",
        org_id=org,
        org_kind=OrgKind.CLIENT,
        roles=frozenset(),
        permissions=frozenset(),
        tenant_ids=frozenset({org}),
    )


def test_a_remembered_token_never_outlives_its_expiry() -> None:
    cache, principal = TokenCache(), _principal()
    cache.put("d", principal, NOW, expires_at=NOW + timedelta(seconds=3), seconds=10, epoch=cache.epoch())
    assert cache.get("d", NOW + timedelta(seconds=2)) is principal
    assert cache.get("d", NOW + timedelta(seconds=3)) is None


def test_a_remembered_token_is_forgotten_after_the_configured_seconds() -> None:
    cache, principal = TokenCache(), _principal()
    cache.put("d", principal, NOW, expires_at=NOW + timedelta(hours=1), seconds=10, epoch=cache.epoch())
    assert cache.get("d", NOW + timedelta(seconds=9)) is principal
    assert cache.get("d", NOW + timedelta(seconds=10)) is None


def test_zero_seconds_remembers_nothing() -> None:
    cache = TokenCache()
    cache.put("d", _principal(), NOW, expires_at=NOW + timedelta(hours=1), seconds=0, epoch=cache.epoch())
    assert cache.get("d", NOW) is None


def test_the_oldest_entries_go_first() -> None:
    cache = TokenCache(max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(
            key, _principal(), NOW, expires_at=NOW + timedelta(hours=1), seconds=10, epoch=cache.epoch()
        )
    assert [cache.get(k, NOW) is not None for k in ("a", "b", "c")] == [False, True, True]


def test_a_remembered_token_costs_no_statement(
    client: TestClient, db: Database, connection: Connection
) -> None:
    tenant = make_tenant(db)
    access_token = token(client, tenant.client_id, tenant.client_secret)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        assert client.get("/v1/me", headers=bearer(access_token)).status_code == 200
        first = [s for s in statements if "access_tokens" in s]
        statements.clear()
        assert client.get("/v1/me", headers=bearer(access_token)).status_code == 200
        again = [s for s in statements if "access_tokens" in s]
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert len(first) == 1 and again == []


def test_revocation_forgets_even_an_entry_put_back_before_it_commits(
    client: TestClient, db: Database
) -> None:
    """A request of the same process may resolve the token between the revoking
    statement and its commit; the commit forgets the token once more."""
    tenant = make_tenant(db)
    access_token = token(client, tenant.client_id, tenant.client_secret)
    assert client.get("/v1/me", headers=bearer(access_token)).status_code == 200
    key = digest(access_token)
    assert TOKENS.get(key, datetime.now(UTC)) is not None
    with db.session() as session:
        bind(session, AccessScope.everything())
        row = session.scalars(select(AccessToken).where(AccessToken.token_hash == key)).one()
        service.revoke_access_token(row)
        assert TOKENS.get(key, datetime.now(UTC)) is None
        TOKENS.put(key, _principal(row.api_client_id), datetime.now(UTC), row.expires_at, 10, TOKENS.epoch())
    assert TOKENS.get(key, datetime.now(UTC)) is None
    assert client.get("/v1/me", headers=bearer(access_token)).status_code == 401


def test_a_resolution_begun_before_a_revocation_is_not_remembered(client: TestClient, db: Database) -> None:
    """A request of the same process read the token just before the revocation committed."""
    tenant = make_tenant(db)
    access_token = token(client, tenant.client_id, tenant.client_secret)
    key = digest(access_token)
    before = TOKENS.epoch()
    with db.session() as session:
        bind(session, AccessScope.everything())
        row = session.scalars(select(AccessToken).where(AccessToken.token_hash == key)).one()
        service.revoke_access_token(row)
    TOKENS.put(key, _principal(row.api_client_id), datetime.now(UTC), row.expires_at, 10, before)
    assert TOKENS.get(key, datetime.now(UTC)) is None


def test_the_event_loop_takes_a_remembered_client_never_a_provider_whose_grants_need_a_query(
    client: TestClient, db: Database
) -> None:
    """The dependency runs on the event loop: a provider's grants are read in the thread pool."""
    for kind, on_the_loop in ((OrgKind.CLIENT, True), (OrgKind.PROVIDER, False)):
        tenant = make_tenant(db, kind, country="RO")
        access_token = token(client, tenant.client_id, tenant.client_secret)
        assert client.get("/v1/me", headers=bearer(access_token)).status_code == 200  # remembered
        with db.session() as session:
            assert (service.remembered_without_io(session, access_token) is not None) is on_the_loop
            assert service.remembered_principal(session, access_token) is not None
