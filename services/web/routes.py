"""The pages: login, logout, locale switcher and each persona's home."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from services.core import i18n
from services.core.deps import AppSettings, DbSession
from services.core.errors import RateLimited
from services.core.pagination import PageRequest
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.identity import service as identity
from services.identity.csrf import SESSION_COOKIE
from services.web.deps import LOCALE_COOKIE, Viewer
from services.web.templating import render
from services.workforce import agents
from tenants import service as tenancy
from tenants.principal import OrgKind, Permission, Principal, Role

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)

HOME_TEMPLATES = {
    OrgKind.CLIENT: "home_client.html",
    OrgKind.PROVIDER: "home_provider.html",
    OrgKind.OPERATOR: "home_operator.html",
}


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _with_csrf_cookie(request: Request, response: Response) -> Response:
    csrf.set_cookie(request, response)
    return response


@router.get("/")
def index(viewer: Viewer) -> Response:
    return _redirect("/home" if viewer else "/login")


def _local_path(target: str | None) -> str:
    """Where to go after signing in: only a path of this site (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/home"


@router.get("/login")
def login_page(request: Request, viewer: Viewer, next: str | None = None) -> Response:
    if viewer:
        return _redirect(_local_path(next))
    context = {"email": "", "next": _local_path(next)}
    return _with_csrf_cookie(request, render(request, "login.html", context))


@router.post("/login", dependencies=[Depends(csrf.verify)])
def login(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    viewer: Viewer,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/home",
) -> Response:
    try:
        principal = identity.authenticate_password(
            session, settings, email, password, _client_address(request)
        )
    except RateLimited:
        error, status = i18n._("Too many failed attempts. Wait a few minutes and try again."), 429
    except identity.InvalidCredentials:
        error, status = i18n._("Wrong email or password."), 401
    else:
        token = identity.open_web_session(session, settings, principal, request.headers.get("user-agent"))
        response = _redirect(_local_path(next))
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=settings.session_ttl_seconds,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        csrf.set_cookie(request, response, csrf.new_token(request, token))  # the new session's
        return response
    return _with_csrf_cookie(
        request,
        render(
            request,
            "login.html",
            {"email": email, "error": error, "next": _local_path(next)},
            status_code=status,
        ),
    )


@router.post("/logout", dependencies=[Depends(csrf.verify)])
def logout(request: Request, session: DbSession, viewer: Viewer) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token and viewer:
        identity.close_web_session(session, token)
    response = _redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/locale", dependencies=[Depends(csrf.verify)])
def switch_locale(
    request: Request, session: DbSession, viewer: Viewer, locale: Annotated[str, Form(max_length=16)]
) -> Response:
    chosen = i18n.normalize(locale) or i18n.DEFAULT_LOCALE
    if viewer:
        identity.set_user_locale(session, viewer, chosen)
    back = urlsplit(request.headers.get("referer", "/")).path or "/"
    response: Response = _redirect(back if back.startswith("/") and not back.startswith("//") else "/")
    if request.headers.get("hx-request"):
        response = Response(status_code=204, headers={"HX-Refresh": "true"})
    response.set_cookie(LOCALE_COOKIE, chosen, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("/home")
def home(request: Request, session: DbSession, viewer: Viewer) -> Response:
    if viewer is None:
        return _redirect("/login")
    if Role.AGENT in viewer.roles and agents.agent_of(session, viewer) is not None:
        return _redirect("/workspace")  # an agent's home is their workspace
    context = {"viewer": viewer, **_home_context(session, viewer)}
    return _with_csrf_cookie(request, render(request, HOME_TEMPLATES[viewer.org_kind], context))


def _home_context(session: DbSession, viewer: Principal) -> dict[str, object]:
    organization = tenancy.get_organization(session, viewer.org_id)
    context: dict[str, object] = {
        "organization": organization,
        "roles": sorted(r.value for r in viewer.roles),
    }
    if viewer.org_kind == OrgKind.OPERATOR:
        organizations, _cursor = tenancy.list_organizations(session, PageRequest(limit=200, after=None))
        context["organizations"] = [o for o in organizations if o.id != viewer.org_id]
    if viewer.has(Permission.API_CLIENTS_MANAGE):
        clients, _cursor = identity.list_api_clients(session, PageRequest(limit=200, after=None))
        context["api_clients"] = clients
    return context
