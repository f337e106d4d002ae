"""HTTP of identity: the OAuth 2.0 endpoints, ``/v1/me`` and API client management."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from authlib.oauth2.rfc6749.errors import InsecureTransportError
from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse

from services.core.deps import AppSettings, DbSession
from services.core.errors import BadRequest
from services.core.i18n import _
from services.core.pagination import Page, PageRequest, page_request
from services.core.problems import PROBLEM_RESPONSES, problem_response
from services.core.route_class import UnitOfWorkRoute
from services.identity import service
from services.identity.deps import CurrentPrincipal
from services.identity.models import ApiClient
from services.identity.oauth import FormRequest, TokenServer
from services.identity.schemas import ApiClientCreate, ApiClientCreated, ApiClientOut, MeOut
from tenants.principal import Permission

oauth_router = APIRouter(route_class=UnitOfWorkRoute, prefix="/oauth", tags=["oauth"])
router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["identity"], responses=PROBLEM_RESPONSES)

OAUTH_ERROR_TITLES = {
    "invalid_client": _("Client authentication failed"),
    "invalid_request": _("The token request is malformed"),
    "invalid_scope": _("The requested scope is not allowed for this client"),
    "unauthorized_client": _("This client may not use this grant type"),
    "unsupported_grant_type": _("Unsupported grant type"),
    "unsupported_token_type": _("Unsupported token type"),
    "invalid_grant": _("The grant is invalid"),
}


async def _form_request(request: Request) -> FormRequest:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = {key: str(value) for key, value in (await request.form()).items()}
    try:
        return FormRequest(request.method, str(request.url), request.headers, form)
    except InsecureTransportError:
        # Behind a TLS-terminating proxy, run the api with forwarded headers trusted.
        raise BadRequest("OAuth 2.0 endpoints require https (plain http only on loopback)") from None


# Read asynchronously; the endpoints stay sync so database waits never block the event loop.
OAuthForm = Annotated[FormRequest, Depends(_form_request)]


def _oauth_answer(request: Request, status_code: int, body: Any, headers: list[tuple[str, str]]) -> Response:
    """Successes as RFC 6749 JSON; errors as problem+json that keep RFC 6749's fields."""
    if status_code < 400:
        return JSONResponse(body, status_code=status_code, headers=dict(headers))
    error = dict(body).get("error", "invalid_request")
    return problem_response(
        request,
        status_code,
        f"/problems/oauth/{error}",
        OAUTH_ERROR_TITLES.get(error, _("Bad request")),
        detail=dict(body).get("error_description"),
        extra={
            "error": error,
            **({"error_description": body["error_description"]} if "error_description" in body else {}),
        },
        headers={k: v for k, v in headers if k.lower() in ("www-authenticate", "cache-control", "pragma")},
    )


@oauth_router.post("/token", summary="Issue an access token (client credentials grant)")
def token(request: Request, oauth_request: OAuthForm, session: DbSession, settings: AppSettings) -> Response:
    server = TokenServer(session, settings)
    return _oauth_answer(request, *server.create_token_response(oauth_request))


@oauth_router.post("/revoke", summary="Revoke an access token (RFC 7009)")
def revoke(request: Request, oauth_request: OAuthForm, session: DbSession, settings: AppSettings) -> Response:
    server = TokenServer(session, settings)
    return _oauth_answer(request, *server.create_endpoint_response("revocation", oauth_request))


@router.get("/me", response_model=MeOut, summary="Who is calling")
def me(request: Request, principal: CurrentPrincipal) -> MeOut:
    return MeOut(
        id=principal.subject_id,
        kind=principal.subject_kind,
        display_name=principal.display_name,
        organization_id=principal.org_id,
        organization_kind=principal.org_kind.value,
        roles=sorted(r.value for r in principal.roles),
        scopes=sorted(p.value for p in principal.permissions),
        tenant_ids=None if principal.tenant_ids is None else sorted(principal.tenant_ids),
        locale=request.state.locale,
    )


def _client_out(client: ApiClient) -> ApiClientOut:
    return ApiClientOut(
        id=client.id,
        client_id=client.client_id,
        name=client.name,
        scopes=client.scopes.split(),
        created_at=client.created_at,
        revoked_at=client.revoked_at,
    )


@router.get("/api-clients", response_model=Page[ApiClientOut], summary="API clients of your organisation")
def list_api_clients(
    session: DbSession, principal: CurrentPrincipal, page: Annotated[PageRequest, Depends(page_request)]
) -> Page[ApiClientOut]:
    principal.require(Permission.API_CLIENTS_MANAGE)
    clients, next_cursor = service.list_api_clients(session, page)
    return Page(items=[_client_out(c) for c in clients], next_cursor=next_cursor)


@router.post(
    "/api-clients",
    response_model=ApiClientCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API client; its secret is shown once",
)
def create_api_client(
    body: ApiClientCreate, session: DbSession, principal: CurrentPrincipal
) -> ApiClientCreated:
    principal.require(Permission.API_CLIENTS_MANAGE)
    scopes = " ".join(body.scopes) if body.scopes is not None else None
    created = service.create_api_client(session, principal.org_id, body.name, scopes, granted_by=principal)
    return ApiClientCreated(**_client_out(created.client).model_dump(), client_secret=created.client_secret)


@router.get("/api-clients/{api_client_id}", response_model=ApiClientOut, summary="One API client")
def get_api_client(api_client_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> ApiClientOut:
    principal.require(Permission.API_CLIENTS_MANAGE)
    return _client_out(service.get_api_client(session, api_client_id))


@router.delete(
    "/api-clients/{api_client_id}", response_model=ApiClientOut, summary="Revoke an API client and its tokens"
)
def revoke_api_client(
    api_client_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> ApiClientOut:
    principal.require(Permission.API_CLIENTS_MANAGE)
    return _client_out(service.revoke_api_client(session, api_client_id))
