"""OAuth 2.0 token and revocation endpoints (RFC 6749 client credentials, RFC 7009),
built on Authlib's framework-neutral authorization server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authlib.oauth2 import rfc6749, rfc7009
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.settings import Settings
from services.identity import service
from services.identity.credentials import matches, new_token
from services.identity.models import AccessToken, ApiClient
from tenants.scoping import AccessScope, bind

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class OAuthClient(ClientMixin):
    def __init__(self, model: ApiClient) -> None:
        self.model = model

    def get_client_id(self) -> str:
        return self.model.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.model.scopes.split()
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return matches(client_secret, self.model.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        """Asking for a scope the client was not given is an error, not a silent trim."""
        requested = self.request.payload.scope
        if requested and not set(requested.split()) <= set(self.request.client.model.scopes.split()):
            raise InvalidScopeError()


class RevocableToken:
    """Authlib's view of one of our access tokens."""

    def __init__(self, row: AccessToken) -> None:
        self.row = row

    def check_client(self, client: OAuthClient) -> bool:
        return self.row.api_client_id == client.model.id


class RevocationEndpoint(rfc7009.RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> RevocableToken | None:
        row = service.find_access_token(self.server.session, token_string)
        return RevocableToken(row) if row is not None else None

    def revoke_token(self, token: RevocableToken, request: OAuth2Request) -> None:
        self.server.act_for(request.client.model)
        service.revoke_access_token(token.row)


class FormRequest(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: Mapping[str, str], form: dict[str, str]) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class TokenServer(rfc6749.AuthorizationServer):
    """One per request: it holds that request's database session."""

    def __init__(self, session: Session, settings: Settings) -> None:
        super().__init__(scopes_supported=None)
        self.session = session
        self.settings = settings
        bind(session, AccessScope.authentication())
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: new_token("bpoat"),
                expires_generator=lambda *_: settings.access_token_ttl_seconds,
            ),
        )

    def query_client(self, client_id: str) -> OAuthClient | None:
        model = self.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
        if model is None or model.revoked_at is not None:
            return None
        return OAuthClient(model)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        client: ApiClient = request.client.model
        self.act_for(client)
        service.issue_access_token(
            self.session, client, token["access_token"], token.get("scope", ""), token["expires_in"]
        )

    def act_for(self, client: ApiClient) -> None:
        """Once the client is authenticated, the request acts for its organisation only."""
        bind(self.session, AccessScope.tenants({client.tenant_id}))

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        if status >= 400:
            bind(self.session, AccessScope.nothing())  # a refused client reads nothing more
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None
