"""OAuth 2.0 client credentials: every failure is the right status, as problem+json."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from services.core.database import Database
from services.core.time import utcnow
from services.identity.models import AccessToken
from services.identity.token_cache import TOKENS
from tenants.principal import Permission
from tenants.scoping import AccessScope, bind
from tests.factories import bearer, make_tenant, token

PROBLEM = "application/problem+json"


def _assert_problem(answer, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body = answer.json()
    assert body["status"] == status and body["type"] and body["title"]
    return body


def test_token_with_basic_auth_has_the_rfc6749_shape(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    answer = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(tenant.client_id, tenant.client_secret),
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body["scope"].split()) == {p.value for p in Permission}  # a new client gets every scope
    assert answer.headers["cache-control"] == "no-store"
    me = client.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["organization_id"] == str(tenant.organization.id)


def test_token_with_client_secret_post(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    answer = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
        },
    )
    assert answer.status_code == 200, answer.text


def test_wrong_secret_is_401_invalid_client(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    answer = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(tenant.client_id, "wrong")
    )
    body = _assert_problem(answer, 401)
    assert body["error"] == "invalid_client" and body["type"] == "/problems/oauth/invalid_client"


def test_unknown_client_is_401_invalid_client(client: TestClient) -> None:
    answer = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("bpoc_nobody", "secret")
    )
    assert _assert_problem(answer, 401)["error"] == "invalid_client"


def test_unsupported_grant_type_is_400(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    answer = client.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(tenant.client_id, tenant.client_secret)
    )
    assert _assert_problem(answer, 400)["error"] == "unsupported_grant_type"


def test_scope_beyond_the_clients_is_400_invalid_scope(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    answer = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "org:read billing:everything"},
        auth=(tenant.client_id, tenant.client_secret),
    )
    assert _assert_problem(answer, 400)["error"] == "invalid_scope"


def test_missing_bearer_is_401(client: TestClient) -> None:
    answer = client.get("/v1/me")
    _assert_problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_unknown_token_is_401_invalid_token(client: TestClient) -> None:
    answer = client.get("/v1/me", headers=bearer("bpoat_forged"))
    assert _assert_problem(answer, 401)["type"] == "/problems/invalid-token"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_expired_token_is_401(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    access_token = token(client, tenant.client_id, tenant.client_secret)
    assert client.get("/v1/me", headers=bearer(access_token)).status_code == 200
    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(update(AccessToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    TOKENS.clear()  # as in a process that has not resolved it yet (see test_token_cache)
    _assert_problem(client.get("/v1/me", headers=bearer(access_token)), 401)


def test_token_revoked_by_rfc7009_is_401(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    access_token = token(client, tenant.client_id, tenant.client_secret)
    revoked = client.post(
        "/oauth/revoke", data={"token": access_token}, auth=(tenant.client_id, tenant.client_secret)
    )
    assert revoked.status_code == 200, revoked.text
    _assert_problem(client.get("/v1/me", headers=bearer(access_token)), 401)


def test_revoking_the_api_client_revokes_its_tokens(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    admin_token = token(client, tenant.client_id, tenant.client_secret)
    created = client.post("/v1/api-clients", json={"name": "erp"}, headers=bearer(admin_token)).json()
    erp_token = token(client, created["client_id"], created["client_secret"])
    assert client.delete(f"/v1/api-clients/{created['id']}", headers=bearer(admin_token)).status_code == 200
    _assert_problem(client.get("/v1/me", headers=bearer(erp_token)), 401)
    answer = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"]),
    )
    _assert_problem(answer, 401)


def test_missing_scope_is_403_insufficient_scope(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    narrow = token(client, tenant.client_id, tenant.client_secret, scope="org:read")
    answer = client.get("/v1/api-clients", headers=bearer(narrow))
    assert _assert_problem(answer, 403)["type"] == "/problems/insufficient-scope"
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


def test_a_client_cannot_mint_a_client_with_more_scopes(client: TestClient, db: Database) -> None:
    from tests.factories import make_api_client

    tenant = make_tenant(db)
    client_id, secret = make_api_client(db, tenant.organization, scopes="api_clients:manage")
    limited = token(client, client_id, secret)
    answer = client.post(
        "/v1/api-clients", json={"name": "x", "scopes": ["org:read"]}, headers=bearer(limited)
    )
    _assert_problem(answer, 403)


@pytest.mark.parametrize("scheme", ["Basic abc", "Bearer", "Token xyz"])
def test_malformed_authorization_is_401(client: TestClient, scheme: str) -> None:
    _assert_problem(client.get("/v1/me", headers={"Authorization": scheme}), 401)


def test_a_failed_credential_leaves_the_session_reading_nothing(db: Database) -> None:
    from sqlalchemy import select

    from services.core.errors import InvalidToken
    from services.identity import service
    from services.identity.models import User

    make_tenant(db)
    with db.session() as session:
        assert service.principal_for_web_session(session, "bpos_forged") is None
        assert session.scalars(select(User)).all() == []
        with pytest.raises(InvalidToken):
            service.principal_for_bearer(session, "bpoat_forged")
        assert session.scalars(select(User)).all() == []
