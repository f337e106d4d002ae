"""CSRF protection for form posts: a double-submit token.

The token lives in an HttpOnly, SameSite=Lax cookie and is rendered into every
form (and into a meta tag that htmx sends as a header). A cross-site page can
make the browser send the cookie but cannot read it to fill the form. Pages' scripts
also call the JSON API with the session cookie (``identity.deps``), sending the token
as ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.responses import Response

from services.core.errors import Forbidden

SESSION_COOKIE = "bpo_session"  # a signed-in person's web session
COOKIE = "bpo_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"


def token_for(request: Request) -> str:
    """The request's token: the cookie's, or a new one that the response will set."""
    existing = request.cookies.get(COOKIE)
    return existing if existing and len(existing) >= 32 else secrets.token_urlsafe(32)


def set_cookie(request: Request, response: Response) -> None:
    token: str = request.state.csrf_token
    if request.cookies.get(COOKIE) != token:
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/"
        )


async def verify(request: Request) -> None:
    """Raise ``Forbidden`` unless the posted token matches the cookie (on a change: not on a read)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    cookie = request.cookies.get(COOKIE, "")
    sent = request.headers.get(HEADER)
    if sent is None:
        form = await request.form()
        sent = str(form.get(FIELD, ""))
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise Forbidden("the form is stale or was not sent from this site; reload the page and try again")
