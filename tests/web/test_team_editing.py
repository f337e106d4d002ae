"""The team lead edits a team's and an agent's languages, skills, calendar and capacity on
a page; what the services refuse is said over the form, which keeps what was typed."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.core.database import Database
from services.identity.models import User
from tenants.principal import OrgKind, Role
from tenants.scoping import AccessScope, bind
from tests.factories import make_tenant, make_user
from tests.routing.world import Person, World, build


@pytest.fixture
def world(app: FastAPI, client: TestClient, db: Database) -> World:
    return build(app, client, db)


@pytest.fixture
def lead(app: FastAPI, db: Database, world: World) -> Person:
    return Person(app, make_user(db, world.provider.organization, [Role.TEAM_LEAD]))


def _post(person: Person, url: str, **fields: str) -> object:
    return person.http.post(
        url, data={"csrf_token": person.headers["X-CSRF-Token"], **fields}, follow_redirects=False
    )


def test_a_lead_edits_the_teams_languages_skills_and_calendar(
    client: TestClient, world: World, lead: Person
) -> None:
    board = lead.http.get("/teams")
    assert f'href="/teams/{world.team.id}/edit"' in board.text
    form = lead.http.get(f"/teams/{world.team.id}/edit")
    assert form.status_code == 200 and "fr C1" in form.text
    assert 'name="calendar_mon" value="00:00-24:00"' in form.text  # the stored calendar, as a grid
    assert ">luni</label>" in form.text  # the lead's Romanian weekdays
    saved = _post(
        lead,
        f"/teams/{world.team.id}/edit",
        languages="fr C1, ro native\nen C2",
        skills="claims 4, data entry 2",
        **_grid(mon="22:00-24:00", tue="00:00-06:00, 13:00\u201317:00", fri="22:00-06:00"),
        calendar_holidays="ro",
        calendar_closures="2026-12-24\n2026-12-28..2027-01-02",
    )
    assert saved.status_code == 303, saved.text
    team = client.get(f"/v1/teams/{world.team.id}", headers=world.as_provider).json()
    assert team["languages"] == [
        {"code": "fr", "level": "C1"},
        {"code": "ro", "level": "native"},
        {"code": "en", "level": "C2"},
    ]
    assert team["skills"] == [{"name": "claims", "level": 4}, {"name": "data entry", "level": 2}]
    calendar = team["calendar"]
    assert calendar["timezone"] == "Europe/Bucharest" and calendar["weekly"]["mon"] == [["22:00", "24:00"]]
    assert calendar["weekly"]["tue"] == [["00:00", "06:00"], ["13:00", "17:00"]]
    assert calendar["weekly"]["fri"] == [["22:00", "06:00"]] and calendar["weekly"]["wed"] == []
    assert calendar["holidays"] == {"country": "RO", "subdivision": None}
    assert calendar["closures"] == [["2026-12-24", "2026-12-24"], ["2026-12-28", "2027-01-02"]]
    again = lead.http.get(f"/teams/{world.team.id}/edit").text  # and shown back as typed
    assert 'value="00:00-06:00, 13:00-17:00"' in again and "2026-12-24, 2026-12-28..2027-01-02" in again


def _grid(**hours: str) -> dict[str, str]:
    """The calendar grid's fields: Bucharest's time zone, the hours given by weekday."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return {"calendar_timezone": "Europe/Bucharest"} | {f"calendar_{d}": hours.get(d, "") for d in days}


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [
        ("languages", "xx-not-a-tag C1", "/languages/0/code"),
        ("languages", "fr Z9", "/languages/0/level"),
        ("skills", "claims 6", "/skills/0/level"),
        ("skills", "claims", "are nevoie de un nume și o valoare"),  # in the lead's Romanian
        ("calendar_mon", "", "/calendar/weekly"),  # never open
        ("calendar_mon", "8-12", "nu este un interval orar"),
        ("calendar_timezone", "Europe/Atlantis", "/calendar/timezone"),
        ("calendar_holidays", "XX", "/calendar/holidays/country"),
        ("calendar_holidays", "Roumanie!", "nu este un cod de țară"),
        ("calendar_closures", "24 décembre", "nu este o dată"),
        ("calendar_openings", "[{not json", "nu sunt JSON valid"),
    ],
)
def test_bad_team_fields_are_said_over_the_form_and_kept(
    client: TestClient, world: World, lead: Person, field: str, typed: str, said: str
) -> None:
    fields = {"languages": "fr C1", "skills": "", **_grid(mon="08:00-17:00")} | {field: typed}
    refused = _post(lead, f"/teams/{world.team.id}/edit", **fields)
    assert refused.status_code == 422 and 'data-testid="problem"' in refused.text
    assert said in refused.text
    assert typed.replace('"', "&#34;") in refused.text or typed in refused.text  # what was typed stays
    team = client.get(f"/v1/teams/{world.team.id}", headers=world.as_provider).json()
    assert team["languages"] == [{"code": "en", "level": "C1"}, {"code": "fr", "level": "C1"}]  # unchanged


def test_a_lead_gives_an_agent_own_languages_and_capacity_per_kind_and_back_to_the_teams(
    client: TestClient, world: World, lead: Person
) -> None:
    url = f"/teams/agents/{world.agent.id}/edit"
    assert lead.http.get(url).status_code == 200
    saved = _post(lead, url, languages="de B2", skills="claims 5", capacity="* 2, claim 1")
    assert saved.status_code == 303, saved.text
    agent = client.get(f"/v1/agents/{world.agent.id}", headers=world.as_provider).json()
    assert agent["languages"] == [{"code": "de", "level": "B2"}] and agent["capacity"] == {"*": 2, "claim": 1}
    assert _post(lead, url, languages="", skills="", capacity="* 2").status_code == 303
    agent = client.get(f"/v1/agents/{world.agent.id}", headers=world.as_provider).json()
    assert agent.get("languages") is None and agent["capacity"] == {"*": 2}  # the team's languages again
    refused = _post(lead, url, languages="", skills="", capacity="* many")
    assert refused.status_code == 422 and "nu este un număr întreg" in refused.text


def test_another_providers_lead_gets_404_and_an_agent_is_no_lead(
    app: FastAPI, db: Database, world: World
) -> None:
    rival = make_tenant(db, OrgKind.PROVIDER, country="PL")
    stranger = Person(app, make_user(db, rival.organization, [Role.TEAM_LEAD]))
    for url in (f"/teams/{world.team.id}/edit", f"/teams/agents/{world.agent.id}/edit"):
        assert stranger.http.get(url).status_code == 404
        assert _post(stranger, url, languages="fr C1").status_code == 404
    assert world.person.http.get(f"/teams/{world.team.id}/edit").status_code == 403


def test_a_lead_creates_a_team_in_their_locale_and_adds_an_agent_to_it(
    app: FastAPI, db: Database, client: TestClient, world: World, lead: Person
) -> None:
    form = lead.http.get("/teams/new")
    assert form.status_code == 200 and "Echipă nouă" in form.text  # the lead's Romanian
    assert 'name="calendar_mon" value="09:00-17:00"' in form.text  # office hours to start from
    fields = {
        "name": "Cluj claims",
        "country": "ro",
        "cost": "1.234,50",  # as Romanian writes 1234.50
        "currency": "ron",
        "languages": "ro native, en C1",
        "skills": "claims 4",
        "calendar_timezone": "Europe/Bucharest",
        "calendar_mon": "08:00-16:00",
        "calendar_holidays": "RO",
    }
    assert _post(lead, "/teams/new", **fields).status_code == 303
    made = [
        t
        for t in client.get("/v1/teams", headers=world.as_provider).json()["items"]
        if t["name"] == "Cluj claims"
    ]
    assert len(made) == 1, made
    team = made[0]
    assert (team["country"], team["timezone"], team["hourly_cost"]) == (
        "RO",
        "Europe/Bucharest",
        {"amount": 123450, "currency": "RON"},
    )
    weekly = team["calendar"]["weekly"]
    assert weekly["mon"] == [["08:00", "16:00"]] and not any(weekly[day] for day in weekly if day != "mon")
    edit = lead.http.get(f"/teams/{team['id']}/edit").text
    assert 'value="1.234,50"' in edit and 'value="Cluj claims"' in edit  # the cost as it was typed

    newcomer = make_user(db, world.provider.organization, [Role.AGENT], email="ana.newcomer@carpati.example")
    url = f"/teams/{team['id']}/agents/new"
    page = lead.http.get(url)
    assert page.status_code == 200 and "ana.newcomer@carpati.example" in page.text
    assert world.agent.email not in page.text  # an agent already: not offered again
    with db.session() as session:
        bind(session, AccessScope.everything())
        user_id = session.scalars(select(User.id).where(User.email == newcomer)).one()
    added = _post(lead, url, user_id=str(user_id), capacity="* 2", public_name="Ana")
    assert added.status_code == 303, added.text
    staffed = client.get(f"/v1/agents?team_id={team['id']}", headers=world.as_provider).json()["items"]
    assert [(a["user_id"], a["capacity"], a["public_name"]) for a in staffed] == [
        (str(user_id), {"*": 2}, "Ana")
    ]
    assert "nobody-to-add" in lead.http.get(url).text  # nobody left to add


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"cost": "paisprezece"}, "„paisprezece” nu este o sumă"),
        ({"cost": "14.50"}, "„14.50” nu este o sumă"),  # the English way, in Bucharest: not 1450
        ({"cost": "1e20"}, "„1e20” nu este o sumă"),
        ({"currency": "XYZ"}, "„XYZ” nu este un cod de monedă"),
        ({"country": "RO", "calendar_mon": "", "calendar_tue": ""}, "/calendar"),  # never open
        ({"languages": "klingon C1"}, "/languages"),
    ],
)
def test_a_new_team_the_services_refuse_is_said_over_the_form_which_keeps_what_was_typed(
    client: TestClient, world: World, lead: Person, fields: dict[str, str], said: str
) -> None:
    typed = {
        "name": "Iași support",
        "country": "RO",
        "cost": "14,50",
        "currency": "EUR",
        "languages": "ro native",
        "calendar_timezone": "Europe/Bucharest",
        "calendar_mon": "08:00-16:00",
        **fields,
    }
    refused = _post(lead, "/teams/new", **typed)
    assert refused.status_code == 422 and 'data-testid="problem"' in refused.text, refused.text
    assert said in refused.text and 'value="Iași support"' in refused.text
    assert 'name="country" value="RO"' in refused.text  # what was typed stays
    names = {t["name"] for t in client.get("/v1/teams", headers=world.as_provider).json()["items"]}
    assert "Iași support" not in names


def test_a_lead_cannot_add_another_organisations_user_nor_staff_another_providers_team(
    app: FastAPI, db: Database, world: World, lead: Person
) -> None:
    rival = make_tenant(db, OrgKind.PROVIDER, country="PL")
    outsider = make_user(db, rival.organization, [Role.AGENT])
    with db.session() as session:
        bind(session, AccessScope.everything())
        outsider_id = session.scalars(select(User.id).where(User.email == outsider)).one()
    url = f"/teams/{world.team.id}/agents/new"
    assert outsider not in lead.http.get(url).text
    refused = _post(lead, url, user_id=str(outsider_id), capacity="* 1")
    assert refused.status_code == 422 and "/user_id" in refused.text, refused.text
    stranger = Person(app, make_user(db, rival.organization, [Role.TEAM_LEAD]))
    assert stranger.http.get(url).status_code == 404
    assert _post(stranger, url, user_id=str(outsider_id)).status_code == 404


def test_a_teams_new_currency_needs_its_cost_and_an_amount_too_large_is_refused(
    client: TestClient, world: World, lead: Person
) -> None:
    url = f"/teams/{world.team.id}/edit"
    before = client.get(f"/v1/teams/{world.team.id}", headers=world.as_provider).json()["hourly_cost"]
    refused = _post(lead, url, cost="", currency="RON")
    assert refused.status_code == 422 and "RON" in refused.text and 'data-testid="problem"' in refused.text
    assert client.get(f"/v1/teams/{world.team.id}", headers=world.as_provider).json()["hourly_cost"] == before
    assert _post(lead, url, cost="70,00", currency="RON").status_code == 303
    after = client.get(f"/v1/teams/{world.team.id}", headers=world.as_provider).json()["hourly_cost"]
    assert after == {"amount": 7000, "currency": "RON"}
    huge = client.patch(
        f"/v1/teams/{world.team.id}",
        headers=world.as_provider,
        json={"hourly_cost": {"amount": 10**16, "currency": "EUR"}},
    )
    assert huge.status_code == 422 and huge.json()["errors"][0]["pointer"] == "/hourly_cost/amount", huge.text


def test_an_operator_makes_a_team_for_the_provider_they_name(
    app: FastAPI, db: Database, client: TestClient, world: World
) -> None:
    operator = make_tenant(db, OrgKind.OPERATOR, country="IE")
    admin = Person(app, make_user(db, operator.organization, [Role.PLATFORM_ADMIN]))
    form = admin.http.get("/teams/new")
    assert form.status_code == 200 and f'value="{world.provider.organization.id}"' in form.text
    fields = {
        "provider_id": str(world.provider.organization.id),
        "name": "Timișoara claims",
        "country": "RO",
        "cost": "15.00",  # the operator's English
        "currency": "EUR",
        "calendar_timezone": "Europe/Bucharest",
        "calendar_mon": "08:00-16:00",
    }
    assert _post(admin, "/teams/new", **fields).status_code == 303
    made = [
        t
        for t in client.get("/v1/teams", headers=world.as_provider).json()["items"]
        if t["name"] == fields["name"]
    ]
    assert [t["hourly_cost"] for t in made] == [{"amount": 1500, "currency": "EUR"}]
    unnamed = _post(admin, "/teams/new", **{**fields, "provider_id": "", "name": "Nobody's"})
    assert unnamed.status_code == 422 and "provider_id" in unnamed.text
