"""Error pages for people; machines get problem+json (``services/core/problems.py``)."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from services.core import i18n
from services.identity import csrf
from services.web.templating import render

MACHINE_PREFIXES = ("/v1", "/oauth", "/stripe", "/metrics", "/healthz", "/readyz", "/openapi.json")


def wants_page(request: Request) -> bool:
    if request.url.path.startswith(MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, title: str, detail: str | None) -> Response:
    if not getattr(request.state, "locale", None):
        request.state.locale = i18n.negotiate(
            request.cookies.get("bpo_locale"), request.headers.get("accept-language"), None
        )
    if not getattr(request.state, "csrf_token", None):
        request.state.csrf_token = csrf.token_for(request)
    return render(
        request, "error.html", {"title": i18n.gettext(request.state.locale, title), "detail": detail}, status
    )
