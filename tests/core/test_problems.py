"""Every error is RFC 9457 problem+json with a stable type and a localised title."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from services.core.database import Database
from tests.factories import bearer, make_tenant, token

PROBLEM = "application/problem+json"


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    answer = client.get("/v1/nothing-here")
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == "/problems/not-found"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    answer = client.put("/v1/me")
    assert answer.status_code == 405 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == "/problems/method-not-allowed"


def test_title_follows_accept_language(client: TestClient) -> None:
    answer = client.get("/v1/me", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert answer.json()["title"] == "Authentification requise"
    assert answer.headers["content-language"] == "fr"


def test_body_over_the_limit_is_413_before_it_is_read(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    limit = app.state.settings.max_body_bytes
    answer = client.post(
        "/v1/api-clients", content=b"x" * (limit + 1), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM


def test_streamed_body_over_the_limit_is_413(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    limit = app.state.settings.max_body_bytes

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    answer = client.post("/v1/api-clients", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["type"] == "/problems/payload-too-large"


def test_malformed_json_is_422_with_the_pointer_of_the_broken_member(
    client: TestClient, db: Database
) -> None:
    tenant = make_tenant(db)
    headers = {
        **bearer(token(client, tenant.client_id, tenant.client_secret)),
        "Content-Type": "application/json",
    }
    answer = client.post(
        "/v1/api-clients", content=b'{"name": "erp", "scopes": ["org:read",, ]}', headers=headers
    )
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["type"] == "/problems/malformed-json"
    assert body["errors"][0]["pointer"] == "/scopes/1"


def test_schema_violation_lists_each_pointer(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    headers = bearer(token(client, tenant.client_id, tenant.client_secret))
    answer = client.post(
        "/v1/api-clients",
        content=json.dumps({"name": "", "extra": 1}),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    pointers = {e["pointer"] for e in answer.json()["errors"]}
    assert pointers == {"/name", "/extra"}


def test_unknown_scope_in_a_body_is_422_naming_it(client: TestClient, db: Database) -> None:
    tenant = make_tenant(db)
    headers = bearer(token(client, tenant.client_id, tenant.client_secret))
    answer = client.post(
        "/v1/api-clients", json={"name": "x", "scopes": ["billing:everything"]}, headers=headers
    )
    assert answer.status_code == 422
    assert "billing:everything" in answer.json()["errors"][0]["message"]


def test_openapi_document_is_served_and_lists_the_v1_routes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert {"/v1/me", "/v1/organizations", "/v1/api-clients", "/oauth/token"} <= set(document["paths"])
    assert client.get("/docs").status_code == 200


def test_an_unexpected_error_is_a_500_problem(settings, engine) -> None:  # type: ignore[no-untyped-def]
    from services.api import create_app
    from services.core.database import Database as Db

    app = create_app(settings, Db(settings.resolved_database_url(), bind=engine))

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        answer = test_client.get("/v1/boom", headers={"Accept-Language": "de"})
    assert answer.status_code == 500 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Ein unerwarteter Fehler ist aufgetreten"
    assert "boom" not in answer.json().get("detail", "")  # internals are logged, not shown
