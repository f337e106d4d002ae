"""Web login: session cookie, CSRF on every form, throttling, persona homes, locale."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, event

from services.core.database import Database
from tenants.principal import OrgKind, Role
from tests.factories import PASSWORD, make_org, make_user


def _csrf(client: TestClient) -> str:
    page = client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def _login(client: TestClient, email: str, password: str = PASSWORD, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": _csrf(client)},
        headers=headers,
        follow_redirects=False,
    )


def test_login_sets_a_safe_session_cookie_and_lands_on_home(client: TestClient, db: Database) -> None:
    organization = make_org(db, OrgKind.CLIENT, country="DE")
    email = make_user(db, organization, [Role.CLIENT_ADMIN], locale="en")
    answer = _login(client, email)
    assert answer.status_code == 303 and answer.headers["location"] == "/home"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("bpo_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = client.get("/home")
    assert home.status_code == 200 and organization.name in home.text
    assert "Client administrator" in home.text


def test_a_post_without_the_csrf_token_is_refused(client: TestClient, db: Database) -> None:
    organization = make_org(db)
    email = make_user(db, organization, [Role.CLIENT_ADMIN])
    client.get("/login")
    answer = client.post("/login", data={"email": email, "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 403
    assert "bpo_session" not in answer.headers.get("set-cookie", "")


def test_the_csrf_token_is_the_sessions_a_planted_or_earlier_one_is_refused(
    client: TestClient, db: Database
) -> None:
    email = make_user(db, make_org(db), [Role.CLIENT_ADMIN], locale="en")
    before = _csrf(client)
    assert _login(client, email).status_code == 303
    after = client.cookies["bpo_csrf"]
    assert after != before  # signing in issues the new session's token

    def switch_with(csrf: str) -> int:
        client.cookies.set("bpo_csrf", csrf)
        answer = client.post("/locale", data={"locale": "fr", "csrf_token": csrf}, follow_redirects=False)
        return answer.status_code

    assert switch_with(before) == 403
    assert switch_with("x" * 43) == 403  # planted from a sibling domain, the same value in the form
    assert switch_with(after) == 303


def test_a_planted_csrf_cookie_that_is_not_ascii_is_replaced_not_a_crash(client: TestClient) -> None:
    page = client.get("/login", headers={"Cookie": 'bpo_csrf="ab.\\351"'})
    assert page.status_code == 200, page.text
    assert "bpo_csrf=" in page.headers.get("set-cookie", "")  # a new token of this browser's


def test_a_wrong_password_shows_a_translated_error(client: TestClient, db: Database) -> None:
    organization = make_org(db)
    email = make_user(db, organization, [Role.CLIENT_ADMIN])
    answer = _login(client, email, "not-the-password", **{"Accept-Language": "fr"})
    assert answer.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect." in answer.text


def test_too_many_failures_lock_the_account_even_with_the_right_password(
    client: TestClient, db: Database
) -> None:
    organization = make_org(db)
    email = make_user(db, organization, [Role.CLIENT_ADMIN])
    for _ in range(5):
        assert _login(client, email, "guess-guess").status_code == 401
    locked = _login(client, email)
    assert locked.status_code == 429 and "bpo_session" not in locked.headers.get("set-cookie", "")


def test_the_home_page_follows_the_organisations_locale(client: TestClient, db: Database) -> None:
    organization = make_org(db, OrgKind.CLIENT, country="FR")
    email = make_user(db, organization, [Role.CLIENT_SUBMITTER])
    _login(client, email)
    home = client.get("/home")
    assert "Votre organisation" in home.text and 'lang="fr"' in home.text
    assert "France" in home.text


def test_switching_locale_is_remembered_for_the_user(client: TestClient, db: Database) -> None:
    organization = make_org(db, OrgKind.CLIENT, country="FR")
    email = make_user(db, organization, [Role.CLIENT_ADMIN])
    _login(client, email)
    switched = client.post(
        "/locale", data={"locale": "en", "csrf_token": _csrf(client)}, follow_redirects=False
    )
    assert switched.status_code == 303
    client.cookies.delete("bpo_locale")  # the user's own setting must be enough
    assert "Your organisation" in client.get("/home").text


def test_logout_ends_the_session(client: TestClient, db: Database) -> None:
    organization = make_org(db)
    email = make_user(db, organization, [Role.CLIENT_ADMIN])
    _login(client, email)
    token = client.cookies.get("bpo_session")
    out = client.post("/logout", data={"csrf_token": _csrf(client)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("bpo_session", token or "")
    assert client.get("/home", follow_redirects=False).headers["location"] == "/login"


def test_each_persona_lands_on_its_own_home(client: TestClient, db: Database) -> None:
    from services.identity.models import User
    from tenants import service as tenancy
    from tenants.scoping import AccessScope, bind

    operator = make_org(db, OrgKind.OPERATOR, country="IE")
    provider = make_org(db, OrgKind.PROVIDER, country="RO")
    mine = make_org(db, OrgKind.CLIENT, name="Mutuelle Portefeuille", country="FR")
    other = make_org(db, OrgKind.CLIENT, name="Hidden Seguros", country="ES")
    manager = make_user(db, operator, [Role.ACCOUNT_MANAGER], locale="en")
    agent = make_user(db, provider, [Role.AGENT], locale="en")
    with db.session() as session:
        bind(session, AccessScope.everything())
        from sqlalchemy import select

        manager_id = session.scalars(select(User.id).where(User.email == manager)).one()
        tenancy.assign_account_manager(session, mine, manager_id)
    _login(client, manager)
    portfolio = client.get("/home").text
    assert "Portfolio of" in portfolio and mine.name in portfolio and other.name not in portfolio
    client.cookies.clear()
    _login(client, agent)
    assert "Your work queues" in client.get("/home").text


def test_pages_for_people_render_errors_as_html(client: TestClient) -> None:
    answer = client.get("/no-such-page", headers={"Accept": "text/html", "Accept-Language": "fr"})
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert "Introuvable" in answer.text


def test_a_non_ascii_csrf_token_is_refused_not_a_crash(client: TestClient) -> None:
    _csrf(client)
    answer = client.post("/login", data={"email": "a@b.c", "password": "x", "csrf_token": "é" * 40})
    assert answer.status_code == 403


def test_a_remembered_session_costs_no_identity_statement(
    client: TestClient, db: Database, connection: Connection
) -> None:
    """The workspace polls: a process remembers the signed-in principal a few seconds
    (``token_cache``); signing out and the locale switch above forget it at once."""
    email = make_user(db, make_org(db), [Role.CLIENT_ADMIN], locale="en")
    _login(client, email)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        assert client.get("/home").status_code == 200
        first = [s for s in statements if "web_sessions" in s or "memberships" in s]
        statements.clear()
        assert client.get("/home").status_code == 200
        again = [s for s in statements if "web_sessions" in s or "memberships" in s]
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert len(first) == 2 and again == []
