"""The API's authentication dependency: a bearer token becomes a ``Principal``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.core import i18n
from services.core.deps import DbSession
from services.core.errors import Unauthenticated
from services.core.settings import Settings
from services.identity import csrf, service
from tenants.principal import Principal

_bearer = HTTPBearer(auto_error=False, description="OAuth 2.0 access token (client credentials)")


async def _principal(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """A token this process resolved moments ago costs no I/O, so no hop to the thread pool.
    A signed-in person's pages call the API with their session cookie instead (agents pull
    their next task from the workspace), a change then carrying the CSRF token."""
    if credentials is None and request.cookies.get(csrf.SESSION_COOKIE):
        await csrf.verify(request)
        found = await run_in_threadpool(
            service.principal_for_web_session,
            session,
            request.cookies[csrf.SESSION_COOKIE],
            request.app.state.settings.token_cache_seconds,
        )
        if found is None:
            raise Unauthenticated("your session has ended: sign in again")
        request.state.locale = i18n.negotiate(
            found.locale, request.headers.get("accept-language"), found.org_locale
        )
        return found
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send Authorization: Bearer <access token>")
    principal = service.remembered_without_io(session, credentials.credentials)
    if principal is None:  # a provider's grants are read in the thread pool, never on the loop
        settings: Settings = request.app.state.settings
        principal = await run_in_threadpool(
            service.principal_for_bearer, session, credentials.credentials, settings.token_cache_seconds
        )
    request.state.locale = i18n.negotiate(
        principal.locale, request.headers.get("accept-language"), principal.org_locale
    )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
