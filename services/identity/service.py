"""Users, API clients and bearer tokens: the business rules of identity."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.core.database import affected_rows
from services.core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidToken,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from services.core.pagination import PageRequest, fetch_page
from services.core.settings import Settings
from services.core.time import utcnow
from services.identity import principals, throttle
from services.identity.credentials import digest, new_token
from services.identity.models import AccessToken, ApiClient, User, WebSession
from services.identity.passwords import hash_password, needs_rehash, verify_password
from services.identity.token_cache import SESSIONS, TOKENS
from tenants import grants
from tenants.models import Membership, Organization
from tenants.principal import ROLES_BY_KIND, OrgKind, Permission, Principal, Role
from tenants.scoping import AccessScope, bind, fetch

MIN_PASSWORD_LENGTH = 10


class InvalidCredentials(Exception):
    """Email or password wrong; deliberately says not which."""


# ---- users -----------------------------------------------------------------


def create_user(
    session: Session,
    organization: Organization,
    *,
    email: str,
    password: str,
    display_name: str,
    roles: list[Role],
    locale: str | None = None,
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise ValidationFailed(errors=[FieldError("/email", "not an email address")])
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(errors=[FieldError("/password", f"at least {MIN_PASSWORD_LENGTH} characters")])
    allowed = ROLES_BY_KIND[OrgKind(organization.kind)]
    wrong = [r for r in roles if r not in allowed]
    if wrong:
        raise ValidationFailed(
            errors=[
                FieldError("/roles", f"{r.value} is not a role of a {organization.kind} organisation")
                for r in wrong
            ]
        )
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} exists")
    user = User(
        tenant_id=organization.id,
        email=email,
        display_name=display_name,
        password_hash=hash_password(password),
        locale=locale,
    )
    session.add(user)
    session.flush()
    for role in roles:
        session.add(Membership(tenant_id=organization.id, user_id=user.id, role=role))
    session.flush()
    return user


def authenticate_password(
    session: Session, settings: Settings, email: str, password: str, address: str
) -> Principal:
    """Check a login; on success the session is re-scoped to the user's principal.

    Raises ``RateLimited`` when throttled, ``InvalidCredentials`` otherwise.
    """
    bind(session, AccessScope.authentication())
    try:
        throttle.check_allowed(session, settings, email, address)
    except RateLimited:
        bind(session, AccessScope.nothing())
        raise
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if (
        not verify_password(user.password_hash if user else None, password)
        or user is None
        or not user.is_active
    ):
        bind(session, AccessScope.nothing())  # a failed login reads nothing more
        throttle.record_failure(session, email, address)
        raise InvalidCredentials()
    throttle.clear_failures(session, email)
    principal = grants.acting(session, principals.for_user(session, user))
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return principal


# ---- web sessions ----------------------------------------------------------


def open_web_session(
    session: Session, settings: Settings, principal: Principal, user_agent: str | None
) -> str:
    token = new_token("bpos")
    session.add(
        WebSession(
            tenant_id=principal.org_id,
            user_id=principal.subject_id,
            token_hash=digest(token),
            expires_at=utcnow() + timedelta(seconds=settings.session_ttl_seconds),
            user_agent=(user_agent or "")[:400],
        )
    )
    return token


def principal_for_web_session(session: Session, token: str, cache_seconds: int = 0) -> Principal | None:
    """The signed-in person's principal, remembered for ``cache_seconds`` (``token_cache``);
    a provider's grants are read again for every request."""
    token_digest, now = digest(token), utcnow()
    remembered = SESSIONS.get(token_digest, now)
    if remembered is not None:
        return grants.acting(session, remembered)
    epoch = SESSIONS.epoch()
    bind(session, AccessScope.authentication())
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == token_digest, WebSession.expires_at > now)
    ).first()
    if row is None or not row.User.is_active:
        bind(session, AccessScope.nothing())
        return None
    principal = principals.for_user(session, row.User)
    SESSIONS.put(token_digest, principal, now, row.WebSession.expires_at, cache_seconds, epoch)
    return grants.acting(session, principal)


def close_web_session(session: Session, token: str) -> None:
    SESSIONS.forget_token(session, digest(token))
    found = session.scalar(select(WebSession).where(WebSession.token_hash == digest(token)))
    if found is not None:
        session.delete(found)


def set_user_locale(session: Session, principal: Principal, locale: str) -> None:
    SESSIONS.forget_subject(session, principal.subject_id)  # the remembered principal carries the locale
    user = fetch(session, User, principal.subject_id)
    if user is not None:
        user.locale = locale


# ---- API clients and bearer tokens -----------------------------------------


@dataclass(frozen=True)
class NewApiClient:
    client: ApiClient
    client_secret: str  # shown once, never stored


def parse_scopes(requested: str | None) -> str:
    known = {p.value for p in Permission}
    if requested is None:
        return " ".join(sorted(known))
    scopes = requested.split()
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise ValidationFailed(
            errors=[
                FieldError("/scopes", f"unknown scope {s}; known: {' '.join(sorted(known))}") for s in unknown
            ]
        )
    return " ".join(sorted(set(scopes)))


def create_api_client(
    session: Session,
    organization_id: uuid.UUID,
    name: str,
    scopes: str | None = None,
    granted_by: Principal | None = None,
) -> NewApiClient:
    """``granted_by`` is None only for the operator's command line."""
    granted = parse_scopes(scopes)
    if granted_by is not None and granted_by.subject_kind == "api_client":
        # A client may not mint another that holds more than it does itself.
        held = {p.value for p in granted_by.permissions}
        missing = sorted(set(granted.split()) - held)
        if missing:
            raise Forbidden(f"cannot grant scopes you do not hold: {' '.join(missing)}")
    secret = new_token("bpocs")
    client = ApiClient(
        tenant_id=organization_id,
        client_id=new_token("bpoc")[:40],
        secret_hash=digest(secret),
        name=name,
        scopes=granted,
    )
    session.add(client)
    session.flush()
    return NewApiClient(client=client, client_secret=secret)


def list_api_clients(session: Session, page: PageRequest) -> tuple[Sequence[ApiClient], str | None]:
    return fetch_page(session, select(ApiClient), ApiClient.id, page)


def get_api_client(session: Session, api_client_id: uuid.UUID) -> ApiClient:
    client = fetch(session, ApiClient, api_client_id)
    if client is None:
        raise NotFound()
    return client


def revoke_api_client(session: Session, api_client_id: uuid.UUID) -> ApiClient:
    """Revoke the client and every token it holds, at once."""
    client = get_api_client(session, api_client_id)
    now = utcnow()
    client.revoked_at = client.revoked_at or now
    session.execute(
        update(AccessToken)
        .where(AccessToken.api_client_id == client.id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    TOKENS.forget_subject(session, client.id)
    return client


def issue_access_token(
    session: Session, client: ApiClient, token: str, scopes: str, expires_in: int
) -> AccessToken:
    row = AccessToken(
        tenant_id=client.tenant_id,
        api_client_id=client.id,
        token_hash=digest(token),
        scopes=scopes,
        expires_at=utcnow() + timedelta(seconds=expires_in),
    )
    session.add(row)
    return row


def find_access_token(session: Session, token: str) -> AccessToken | None:
    return session.scalar(select(AccessToken).where(AccessToken.token_hash == digest(token)))


def revoke_access_token(row: AccessToken) -> None:
    row.revoked_at = row.revoked_at or utcnow()
    session = Session.object_session(row)
    if session is not None:
        TOKENS.forget_token(session, row.token_hash)


def remembered_principal(session: Session, token: str) -> Principal | None:
    """The token's principal if this process resolved it moments ago (``token_cache``),
    the session then scoped to it. No I/O, but for a provider's, whose grants are read
    again for every request (``tenants.grants``)."""
    principal = TOKENS.get(digest(token), utcnow())
    return _acting(session, principal) if principal is not None else None


def remembered_without_io(session: Session, token: str) -> Principal | None:
    """As ``remembered_principal``, for an event loop: None unless it costs no I/O."""
    principal = TOKENS.get(digest(token), utcnow())
    if principal is None or principal.org_kind is OrgKind.PROVIDER:
        return None
    return _acting(session, principal)


def principal_for_bearer(session: Session, token: str, cache_seconds: int = 0) -> Principal:
    """Resolve a bearer token; the session is scoped to the client's principal, who is
    remembered for ``cache_seconds``."""
    principal = remembered_principal(session, token)
    if principal is not None:
        return principal
    token_digest = digest(token)
    now = utcnow()
    epoch = TOKENS.epoch()
    bind(session, AccessScope.authentication())
    row = session.execute(  # one round trip: the token, its client and the client's organisation
        select(AccessToken, ApiClient, Organization)
        .join(ApiClient, ApiClient.id == AccessToken.api_client_id)
        .join(Organization, Organization.id == ApiClient.tenant_id)
        .where(AccessToken.token_hash == token_digest)
    ).first()
    if (
        row is None
        or row.AccessToken.revoked_at is not None
        or row.ApiClient.revoked_at is not None
        or row.AccessToken.expires_at <= now
    ):
        bind(session, AccessScope.nothing())
        raise InvalidToken()
    principal = principals.for_api_client(row.Organization, row.ApiClient, row.AccessToken.scopes)
    TOKENS.put(token_digest, principal, now, row.AccessToken.expires_at, cache_seconds, epoch)
    return _acting(session, principal)


def _acting(session: Session, principal: Principal) -> Principal:
    return grants.acting(session, principal)


def purge_expired_credentials(session: Session, settings: Settings) -> dict[str, int]:
    """Housekeeping run by beat (acting for the platform): expired tokens and
    sessions, old login failures."""
    now = utcnow()
    tokens = session.execute(delete(AccessToken).where(AccessToken.expires_at < now - timedelta(days=1)))
    sessions = session.execute(delete(WebSession).where(WebSession.expires_at < now))
    attempts = throttle.purge_older_than(session, settings)
    return {
        "access_tokens": affected_rows(tokens),
        "web_sessions": affected_rows(sessions),
        "login_attempts": attempts,
    }
