"""Per-request context of the pages: who is signed in, locale, zone, CSRF token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.core import i18n
from services.core.deps import DbSession
from services.identity import csrf, service
from services.identity.csrf import SESSION_COOKIE
from tenants.principal import Principal

LOCALE_COOKIE = "bpo_locale"


def _viewer(request: Request, session: DbSession) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    remember = request.app.state.settings.token_cache_seconds
    principal = service.principal_for_web_session(session, token, remember) if token else None
    request.state.principal = principal
    user_choice = (principal.locale if principal else None) or request.cookies.get(LOCALE_COOKIE)
    request.state.locale = i18n.negotiate(
        user_choice, request.headers.get("accept-language"), principal.org_locale if principal else None
    )
    request.state.timezone = principal.timezone if principal else None
    request.state.csrf_token = csrf.token_for(request)
    return principal


Viewer = Annotated[Principal | None, Depends(_viewer)]


class SignInRequired(Exception):
    """A page that needs a signed-in person was asked for without one: go to the login page."""


def _member(viewer: Viewer) -> Principal:
    if viewer is None:
        raise SignInRequired()
    return viewer


Member = Annotated[Principal, Depends(_member)]
