"""The SLA pages: the account manager's risk board over their portfolio, its alerts and
attainment chart, and a client's SLA page in the client's language."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from babel.numbers import format_percent
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.core.database import Database
from services.core.time import utcnow
from services.identity.models import User
from services.sla import sweep
from services.sla.models import SlaEscalation
from services.work.models import Task
from tenants import service as tenancy
from tenants.models import Organization
from tenants.principal import OrgKind, Role
from tenants.scoping import AccessScope, bind
from tests.factories import PASSWORD, advance, make_org, make_policy, make_queue, make_task, make_user

HTML = {"Accept": "text/html"}
# One minute to answer: a sweep a little later finds the clock breached.
FAST = [
    {"metric": "first_response", "minutes": 1, "business_time": False},
    {"metric": "resolution", "minutes": 480, "business_time": False},
]
NOTIFY_ON_BREACH = [{"on": "breach", "action": "notify_account_manager"}]


class Browser:
    """A signed-in person: gets pages and posts forms with the CSRF token."""

    def __init__(self, client: TestClient, email: str) -> None:
        self.client = client
        client.cookies.clear()
        login_page = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
        assert token
        login = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert login.status_code == 303, login.text
        self.csrf = client.cookies["bpo_csrf"]

    def get(self, url: str, **params: Any) -> Any:
        return self.client.get(url, headers=HTML, params=params, follow_redirects=False)

    def post(self, url: str, data: dict[str, Any] | None = None) -> Any:
        return self.client.post(
            url, data={"csrf_token": self.csrf, **(data or {})}, headers=HTML, follow_redirects=False
        )


def _sweep(db: Database, after: timedelta = timedelta(minutes=10)) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        sweep.sweep(session, now=utcnow() + after)


def _account_manager(db: Database, operator: Organization, *clients: Organization) -> str:
    email = make_user(db, operator, [Role.ACCOUNT_MANAGER], locale="en")
    with db.session() as session:
        bind(session, AccessScope.everything())
        manager_id = session.scalars(select(User.id).where(User.email == email)).one()
        for client in clients:
            tenancy.assign_account_manager(session, client, manager_id)
    return email


def _alert_of(db: Database, task: Task) -> uuid.UUID:
    with db.session() as session:
        bind(session, AccessScope.everything())
        return session.scalars(select(SlaEscalation.id).where(SlaEscalation.task_id == task.id)).one()


@dataclass
class Portfolio:
    manager: str
    mine_a: Organization
    mine_b: Organization
    foreign: Organization
    overdue: Task  # tenant A, first response breached
    due_soon: Task  # tenant B, first response due in an hour
    hidden: Task  # another account manager's client, breached


@pytest.fixture
def portfolio(db: Database) -> Portfolio:
    operator = make_org(db, OrgKind.OPERATOR, country="IE")
    mine_a = make_org(db, OrgKind.CLIENT, name="Assurances Alpha")
    mine_b = make_org(db, OrgKind.CLIENT, name="Banque Beta", country="DE")
    foreign = make_org(db, OrgKind.CLIENT, name="Hidden Gamma", country="ES")
    make_policy(db, mine_a, targets=FAST, escalations=NOTIFY_ON_BREACH)
    make_policy(db, mine_b)  # one hour to answer
    make_policy(db, foreign, targets=FAST, escalations=NOTIFY_ON_BREACH)
    due_soon = make_task(db, make_queue(db, mine_b), title="Invoice query due soon")
    overdue = make_task(db, make_queue(db, mine_a), title="Refund request overdue")
    hidden = make_task(db, make_queue(db, foreign), title="Hidden claim of another portfolio")
    _sweep(db)
    manager = _account_manager(db, operator, mine_a, mine_b)
    _account_manager(db, operator, foreign)
    return Portfolio(manager, mine_a, mine_b, foreign, overdue, due_soon, hidden)


# ---------------------------------------------------------------- the risk board


def test_the_board_shows_the_portfolio_by_time_left_overdue_first(
    client: TestClient, portfolio: Portfolio
) -> None:
    page = Browser(client, portfolio.manager).get("/sla")
    assert page.status_code == 200, page.text
    table = page.text.split('data-testid="risk-table"')[1].split("</table>")[0]
    assert table.index("Refund request overdue") < table.index("Invoice query due soon")
    first_row = table.split('data-testid="risk-row"')[1]
    assert "Refund request overdue" in first_row and "overdue" in first_row.split("</td>")[0]
    assert "Hidden claim" not in page.text and "Hidden Gamma" not in page.text


def test_the_board_refreshes_its_table_from_a_fragment_every_15_seconds(
    client: TestClient, portfolio: Portfolio
) -> None:
    browser = Browser(client, portfolio.manager)
    page = browser.get("/sla").text
    assert 'hx-get="/sla/risk"' in page and 'hx-trigger="every 15s"' in page
    fragment = browser.get("/sla/risk")
    assert fragment.status_code == 200 and fragment.headers["cache-control"] == "no-store"
    assert 'data-testid="risk-table"' in fragment.text and "<html" not in fragment.text
    assert "Invoice query due soon" in fragment.text and "Hidden claim" not in fragment.text


def test_a_signed_out_refresh_sends_the_page_to_the_login(client: TestClient) -> None:
    answer = client.get("/sla/risk", headers={**HTML, "HX-Request": "true"}, follow_redirects=False)
    assert answer.status_code == 204 and answer.headers["hx-redirect"] == "/login?next=/sla"


def test_one_tenant_of_the_portfolio_may_be_chosen(client: TestClient, portfolio: Portfolio) -> None:
    browser = Browser(client, portfolio.manager)
    page = browser.get("/sla", tenant=str(portfolio.mine_b.id)).text
    assert "Invoice query due soon" in page and "Refund request overdue" not in page
    assert f'hx-get="/sla/risk?tenant={portfolio.mine_b.id}"' in page


def test_a_tenant_outside_the_portfolio_is_not_found_on_the_board(
    client: TestClient, portfolio: Portfolio
) -> None:
    browser = Browser(client, portfolio.manager)
    for url in ("/sla", "/sla/risk"):
        assert browser.get(url, tenant=str(portfolio.foreign.id)).status_code == 404, url


def test_acknowledging_an_alert_hides_it(client: TestClient, db: Database, portfolio: Portfolio) -> None:
    browser = Browser(client, portfolio.manager)
    alert = _alert_of(db, portfolio.overdue)
    assert f'id="alert-{alert}"' in browser.get("/sla").text
    answer = browser.post(f"/sla/alerts/{alert}/acknowledge")
    assert answer.status_code == 303
    page = browser.get("/sla").text
    assert f'id="alert-{alert}"' not in page and 'data-testid="no-alerts"' in page


def test_acknowledging_another_portfolios_alert_is_not_found(
    client: TestClient, db: Database, portfolio: Portfolio
) -> None:
    browser = Browser(client, portfolio.manager)
    answer = browser.post(f"/sla/alerts/{_alert_of(db, portfolio.hidden)}/acknowledge")
    assert answer.status_code == 404
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert session.scalars(select(SlaEscalation.acknowledged_at)).all() == [None, None]


# ---------------------------------------------------------------- the attainment chart


def _series(page: str) -> list[str]:
    svg = page.split('data-testid="attainment-chart"')[1].split("</svg>")[0]
    return re.findall(r'<g class="series [^"]*" data-metric="([a-z_]+)"', svg)


def test_the_chart_draws_one_series_per_metric(
    client: TestClient, db: Database, portfolio: Portfolio
) -> None:
    answered = make_task(db, make_queue(db, portfolio.mine_a), title="Answered and resolved")
    advance(db, answered, "assign", "start", "resolve")  # first response and resolution met
    browser = Browser(client, portfolio.manager)
    for granularity in ("month", "week"):
        page = browser.get("/sla", granularity=granularity).text
        assert "<svg" in page
        assert _series(page) == ["first_response", "resolution"], granularity
        assert 'data-testid="attainment-table"' in page  # the same numbers, for screen readers


# ---------------------------------------------------------------- a client's SLA page


def _french_client_with_a_third_met(db: Database) -> tuple[str, Organization, list[Task]]:
    client_org = make_org(db, OrgKind.CLIENT, name="Mutuelle Lumière", country="FR")
    make_policy(db, client_org, targets=FAST)
    queue = make_queue(db, client_org)
    answered, *late = [make_task(db, queue, title=f"Dossier {n}") for n in range(3)]
    advance(db, answered, "assign", "start")
    _sweep(db)
    return make_user(db, client_org, [Role.CLIENT_VIEWER], locale="fr"), client_org, late


def test_the_client_page_speaks_the_clients_language(client: TestClient, db: Database) -> None:
    email, _org, _late = _french_client_with_a_third_met(db)
    page = Browser(client, email).get("/portal/sla")
    assert page.status_code == 200, page.text
    assert 'lang="fr"' in page.text and "Première réponse" in page.text
    # One first response met out of three: Babel's French percentage (a no-break space before %).
    assert format_percent(1 / 3, "#,##0.0\u00a0%", locale="fr") in page.text


def test_the_client_page_lists_only_its_own_breaches_with_links_to_them(
    client: TestClient, db: Database
) -> None:
    email, _org, late = _french_client_with_a_third_met(db)
    other = make_org(db, OrgKind.CLIENT, name="Autre Client")
    make_policy(db, other, targets=FAST)
    make_task(db, make_queue(db, other), title="Retard chez un autre client")
    _sweep(db)
    page = Browser(client, email).get("/portal/sla").text
    breaches = page.split('data-testid="breaches"')[1].split("</table>")[0]
    assert breaches.count('data-testid="breach"') == 2
    for task in late:
        assert f'href="/portal/tasks/{task.id}"' in breaches
    assert "Retard chez un autre client" not in page


def test_the_client_page_shows_the_targets_in_force(client: TestClient, db: Database) -> None:
    email, _org, _late = _french_client_with_a_third_met(db)
    page = Browser(client, email).get("/portal/sla").text
    targets = page.split('data-testid="targets"')[1].split("</table>")[0]
    assert "Première réponse" in targets and "Résolution" in targets


# ---------------------------------------------------------------- who may see them


def test_a_provider_agent_may_not_see_the_sla_pages(
    client: TestClient, db: Database, portfolio: Portfolio
) -> None:
    provider = make_org(db, OrgKind.PROVIDER, country="RO")
    browser = Browser(client, make_user(db, provider, [Role.AGENT], locale="en"))
    for url in ("/sla", "/sla/risk", "/portal/sla"):
        assert browser.get(url).status_code == 403, url
    assert browser.post(f"/sla/alerts/{_alert_of(db, portfolio.overdue)}/acknowledge").status_code in (
        403,
        404,
    )


def test_a_client_is_sent_from_the_board_to_its_own_page(client: TestClient, db: Database) -> None:
    email, _org, _late = _french_client_with_a_third_met(db)
    answer = Browser(client, email).get("/sla")
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/sla"
