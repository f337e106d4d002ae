"""Relaxation steps in time and at risk, and the soft score with a queue's weights."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from services.core.database import Database
from services.core.time import utcnow
from services.routing import offers, relaxation, scoring
from services.work.models import Task
from services.work.schemas import ScoringWeights
from services.workforce.models import EngagementRank
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import make_agent, make_engagement, make_policy, make_team, make_tenant
from tests.routing.world import Person, World, build

STEPS = [
    {"name": "primary, billing 4", "ranks": ["primary"], "min_skill_level": 4},
    {
        "name": "after 10 minutes",
        "after_seconds": 600,
        "ranks": ["primary", "secondary"],
        "min_skill_level": 2,
    },
    {"name": "at risk", "slack_below_seconds": 7200, "ranks": ["primary", "secondary", "overflow"]},
]
BILLING = [{"name": "billing", "level": 5}]
EIGHT_HOURS = [
    {"metric": metric, "minutes": 480, "business_time": False} for metric in ("first_response", "resolution")
]


@pytest.fixture
def world(app: FastAPI, client: TestClient, db: Database) -> World:
    world = build(app, client, db, skills=[{"name": "billing", "min_level": 2}], routing={"steps": STEPS})
    # The Bucharest team and its agent are experts; a Kraków team serves as secondary.
    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(
            update(type(world.team)).where(type(world.team).id == world.team.id).values(skills=BILLING)
        )
    return world


def _person_of(app: FastAPI, db: Database, world: World, rank: str, skills: list[dict[str, Any]]) -> Person:
    provider = make_tenant(db, OrgKind.PROVIDER, country="PL")
    team = make_team(db, provider.organization, name=f"Kraków {rank}", country="PL", skills=skills)
    make_engagement(db, world.queue, team, rank=rank)
    person = Person(app, make_agent(db, provider.organization, team).email)
    person.put("/v1/agents/me/presence", json={"presence": "online"})
    return person


def _waited(db: Database, task_id: str, minutes: int) -> None:
    with db.session() as session:
        bind(session, AccessScope.everything())
        task_id = uuid.UUID(task_id)  # type: ignore[assignment]
        session.execute(
            update(Task).where(Task.id == task_id).values(created_at=utcnow() - timedelta(minutes=minutes))
        )


def test_a_secondary_team_takes_the_task_only_once_it_has_waited_ten_minutes(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    secondary = _person_of(app, db, world, "secondary", [{"name": "billing", "level": 3}])
    task = world.submit(client)
    assert secondary.post("/v1/agents/me/next-task").status_code == 204
    why = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert why["step"] == "primary, billing 4"
    kraków = next(
        c for c in why["decisions"][-1]["candidates"] if "agent_id" not in c and c["country"] == "PL"
    )
    assert kraków["failed"] == "engagement" and kraków["not_before"] == "after 10 minutes"  # its rank
    _waited(db, task["id"], 11)
    taken = secondary.post("/v1/agents/me/next-task")
    assert taken.status_code == 200 and taken.json()["id"] == task["id"]
    trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert trace["step"] == "after 10 minutes" and trace["decisions"][-1]["kind"] == "pull"


def test_a_primary_team_below_the_first_steps_skill_level_waits_for_the_second(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    junior = _person_of(app, db, world, "primary", [{"name": "billing", "level": 3}])
    task = world.submit(client)
    assert junior.post("/v1/agents/me/next-task").status_code == 204
    why = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    line = next(c for c in why["decisions"][-1]["candidates"] if "agent_id" not in c and c["country"] == "PL")
    assert line["failed"] == "skill" and line["not_before"] == "after 10 minutes"
    _waited(db, task["id"], 11)
    assert junior.post("/v1/agents/me/next-task").json()["id"] == task["id"]


def test_an_overflow_team_is_let_in_when_the_sla_time_left_falls_under_two_hours(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    make_policy(db, world.client.organization, targets=EIGHT_HOURS)
    overflow = _person_of(app, db, world, "overflow", BILLING)
    task = world.submit(client)
    assert overflow.post("/v1/agents/me/next-task").status_code == 204
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert relaxation.mark_at_risk(session, utcnow()) == 0  # 8 hours left
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert relaxation.mark_at_risk(session, utcnow() + timedelta(hours=6, minutes=1)) == 1
    taken = overflow.post("/v1/agents/me/next-task")
    assert taken.status_code == 200 and taken.json()["id"] == task["id"]
    trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert trace["step"] == "at risk"


def test_a_reopened_task_at_risk_stays_at_risk(
    app: FastAPI, client: TestClient, db: Database, world: World
) -> None:
    """Reopening resumes the resolution clock where it stopped: the task is still short of
    time, so the overflow team the risk let in may take it again at once."""
    make_policy(db, world.client.organization, targets=EIGHT_HOURS)
    overflow = _person_of(app, db, world, "overflow", BILLING)
    task = world.submit(client)
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert relaxation.mark_at_risk(session, utcnow() + timedelta(hours=6, minutes=1)) == 1
    assert overflow.post("/v1/agents/me/next-task").json()["id"] == task["id"]
    url = f"/v1/tasks/{task['id']}/transitions"
    for action in ("start", "resolve"):
        assert overflow.post(url, json={"action": action}).status_code == 200
    overflow.put("/v1/agents/me/presence", json={"presence": "offline"})
    assert client.post(url, headers=world.as_client, json={"action": "reopen"}).json()["status"] == "queued"
    overflow.put("/v1/agents/me/presence", json={"presence": "online"})
    assert overflow.post("/v1/agents/me/next-task").json()["id"] == task["id"]
    trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert trace["step"] == "at risk"


def test_an_at_risk_task_goes_before_older_work(client: TestClient, db: Database, world: World) -> None:
    make_policy(db, world.client.organization, targets=EIGHT_HOURS)
    older = world.submit(client, external_ref="older")
    _waited(db, older["id"], 30)
    urgent = world.submit(client, external_ref="at-risk")
    with db.session() as session:
        bind(session, AccessScope.everything())
        from services.sla.models import SlaClock

        session.execute(
            update(SlaClock)
            .where(SlaClock.task_id == uuid.UUID(urgent["id"]))
            .values(due_at=utcnow() + timedelta(minutes=5))
        )
        assert relaxation.mark_at_risk(session) == 1
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").json()["id"] == urgent["id"]


def test_residency_holds_at_every_step(app: FastAPI, client: TestClient, db: Database, world: World) -> None:
    """Manila was engaged as overflow before the client restricted the queue to the EU."""
    client.patch(f"/v1/queues/{world.queue.id}", headers=world.as_client, json={"residency": {"allow": []}})
    provider = make_tenant(db, OrgKind.PROVIDER, country="PH")
    manila = make_team(db, provider.organization, name="Manila", country="PH", skills=BILLING)
    make_engagement(db, world.queue, manila, rank="overflow")
    person = Person(app, make_agent(db, provider.organization, manila).email)
    person.put("/v1/agents/me/presence", json={"presence": "online"})
    client.patch(
        f"/v1/queues/{world.queue.id}", headers=world.as_client, json={"residency": {"allow": ["EU"]}}
    )
    task = world.submit(client)
    with db.session() as session:
        bind(session, AccessScope.everything())
        session.execute(update(Task).where(Task.id == uuid.UUID(task["id"])).values(overflow_since=utcnow()))
    _waited(db, task["id"], 600)
    assert person.post("/v1/agents/me/next-task").status_code == 204
    why = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    assert why["step"] == "at risk"
    line = next(
        c for c in why["decisions"][-1]["candidates"] if c.get("country") == "PH" and "agent_id" not in c
    )
    assert line["failed"] == "residency"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"name": "late", "after_seconds": 60}], "in force at once"),
        ([{"name": "a"}, {"name": "b"}], "needs after_seconds"),
        ([{"name": "a"}, {"name": "b", "after_seconds": 60, "ranks": ["secondary"]}], "at least the ranks"),
        (
            [{"name": "a", "min_skill_level": 2}, {"name": "b", "after_seconds": 9, "min_skill_level": 3}],
            "levels",
        ),
        (
            [{"name": "a"}, {"name": "b", "after_seconds": 90}, {"name": "c", "after_seconds": 30}],
            "in the order",
        ),
        (
            [
                {"name": "a"},
                {"name": "b", "after_seconds": 900},
                {"name": "c", "slack_below_seconds": 3600},
                {"name": "d", "after_seconds": 300},
            ],
            "in the order",
        ),
        ([{"name": "a", "ranks": ["chief"]}], None),
    ],
)
def test_a_policy_whose_steps_do_not_widen_is_422(
    client: TestClient, world: World, steps: list[dict[str, Any]], message: str | None
) -> None:
    answer = client.patch(
        f"/v1/queues/{world.queue.id}", headers=world.as_client, json={"routing": {"steps": steps}}
    )
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert all(error["pointer"].startswith("/routing") for error in errors)
    assert message is None or message in answer.text


def test_the_weights_choose_the_cheaper_team_or_the_agent_who_knows_the_case() -> None:
    now = datetime(2026, 12, 3, 9, tzinfo=UTC)

    def facts(cost: int, worked: bool = False) -> scoring.Facts:
        return scoring.Facts(EngagementRank.PRIMARY, now - timedelta(hours=1), 0, 1, (cost, "EUR"), worked)

    cost_first = ScoringWeights(rank=0, idle=0, load=0, cost=1, sticky=0)
    assert scoring.scores(cost_first, [facts(2000), facts(1200)], now) == [0.0, 0.4]
    sticky_first = ScoringWeights(cost=1, sticky=2)
    expensive_but_known, cheap = scoring.scores(sticky_first, [facts(2000, worked=True), facts(1200)], now)
    assert expensive_but_known > cheap
    mixed = scoring.scores(
        cost_first,
        [facts(2000), scoring.Facts(EngagementRank.PRIMARY, None, 0, 1, (9000, "PLN"), False)],
        now,
    )
    assert mixed == [0.5, 0.5]  # a złoty cost is not compared with a euro one


def test_a_push_offer_goes_to_the_best_score_and_the_trace_shows_the_scores(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    weights = {"rank": 0, "idle": 0, "load": 0, "cost": 5, "sticky": 0}
    world = build(app, client, db, mode="push", routing={"weights": weights})
    cheap_team = make_team(
        db,
        world.provider.organization,
        name="Iași",
        country="RO",
        hourly_cost={"amount": 900, "currency": "EUR"},
    )
    make_engagement(db, world.queue, cheap_team, rank="secondary")
    cheap = Person(app, make_agent(db, world.provider.organization, cheap_team).email)
    for person in (world.person, cheap):
        person.put("/v1/agents/me/presence", json={"presence": "online"})
    task = world.submit(client)
    with db.session() as session:
        bind(session, AccessScope.everything())
        assert offers.sweep(session)["offered"] == 1
    assert [o["task"]["id"] for o in cheap.get("/v1/offers").json()["items"]] == [task["id"]]
    trace = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_operator).json()
    scored = {c["team_id"]: c["score"] for c in trace["decisions"][0]["candidates"] if "score" in c}
    assert scored[str(cheap_team.id)] > scored[str(world.team.id)]
    seen = client.get(f"/v1/tasks/{task['id']}/routing", headers=world.as_client)
    assert "score" not in seen.text  # a score would tell the client the teams' costs
    lines = {c["team_id"]: c for c in seen.json()["decisions"][0]["candidates"]}
    assert lines[str(cheap_team.id)]["eligible"] is True
