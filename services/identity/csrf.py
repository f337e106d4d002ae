"""CSRF protection for form posts: a signed double-submit token, bound to the session.

The token lives in an HttpOnly, SameSite=Lax cookie and is rendered into every
form (and into a meta tag that htmx sends as a header). A cross-site page can
make the browser send the cookie but cannot read it to fill the form. Pages' scripts
also call the JSON API with the session cookie (``identity.deps``), sending the token
as ``X-CSRF-Token``. The token is a nonce and its HMAC over the nonce and the session
cookie (OWASP's signed double submit): a cookie planted from elsewhere (a sibling
subdomain), or kept from an earlier session, does not verify; signing in issues a new one.
"""

from __future__ import annotations

import hashlib
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
    """The request's token: the cookie's while it is this session's, or a new one that the
    response will set."""
    existing = request.cookies.get(COOKIE, "")
    session = request.cookies.get(SESSION_COOKIE, "")
    return existing if _signed(request, existing, session) else new_token(request, session)


def new_token(request: Request, session_cookie: str) -> str:
    """A token for the session whose cookie is ``session_cookie`` ("" before signing in)."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_mac(request, nonce, session_cookie)}"


def _mac(request: Request, nonce: str, session_cookie: str) -> str:
    key = getattr(request.app.state, "csrf_key", None)
    if key is None:  # derived once from the secret key (which the embedded default keeps on disk)
        secret = request.app.state.settings.resolved_secret_key().encode()
        key = request.app.state.csrf_key = hmac.new(secret, b"bpo csrf", hashlib.sha256).digest()
    return hmac.new(key, f"{nonce}|{session_cookie}".encode(), hashlib.sha256).hexdigest()[:43]


def _signed(request: Request, token: str, session_cookie: str) -> bool:
    nonce, _, mac = token.partition(".")
    expected = _mac(request, nonce, session_cookie).encode()
    return bool(nonce and mac) and hmac.compare_digest(mac.encode(), expected)  # bytes: any cookie


def set_cookie(request: Request, response: Response, token: str | None = None) -> None:
    """Set the request's token (or ``token``: a new session's) unless the browser has it."""
    token = token or request.state.csrf_token
    if request.cookies.get(COOKIE) != token:
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/"
        )


async def verify(request: Request) -> None:
    """Raise ``Forbidden`` unless the posted token matches the cookie and is this session's
    (on a change: not on a read)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    cookie = request.cookies.get(COOKIE, "")
    sent = request.headers.get(HEADER)
    if sent is None:
        form = await request.form()
        sent = str(form.get(FIELD, ""))
    session = request.cookies.get(SESSION_COOKIE, "")
    if (
        not cookie
        or not sent
        or not hmac.compare_digest(cookie.encode(), sent.encode())
        or not _signed(request, cookie, session)
    ):
        raise Forbidden("the form is stale or was not sent from this site; reload the page and try again")
