"""Property tests: over random workforces, queues (pull and push), residency rules,
calendars, relaxation steps and tasks of any age, no assignment the pull path makes and no
offer the push sweep makes ever breaks a hard constraint, at any step; nor lets in a rank or
a skill level the step in force does not."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.core.database import Database
from services.core.time import utcnow
from services.demo_work import agent_principal
from services.routing import claim, offers
from services.routing.models import Offer
from services.sla.calendars import BusinessCalendar
from services.work.models import Task
from services.work.proficiency import LanguageLevel
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import (
    OPEN_ALWAYS,
    make_agent,
    make_engagement,
    make_org,
    make_queue,
    make_task,
    make_team,
    set_online,
)

COUNTRIES = ("RO", "PL", "PH", "IN", "FR", "DE")
EU = {"RO", "PL", "FR", "DE"}
LANGUAGES = ("fr", "de", "en", "es")
LEVELS = [level.value for level in LanguageLevel]
CLOSED = {
    "timezone": "UTC",
    "weekly": {},
    "openings": [{"from": "2030-01-07", "to": "2030-01-07", "hours": [["08:00", "09:00"]]}],
}
ORDER = {level: n for n, level in enumerate(LEVELS)}
# Relaxation policies: (name, after seconds, at risk sets it off, ranks, skill level).
STEPS = [
    [("default", None, False, ("primary", "secondary", "overflow"), 1)],
    [
        ("primary, level 4", None, False, ("primary",), 4),
        ("after 10 min", 600, False, ("primary", "secondary"), 2),
        ("at risk", None, True, ("primary", "secondary", "overflow"), 1),
    ],
    [("primary", None, False, ("primary",), 5), ("after 1 h", 3600, False, ("primary", "secondary"), 3)],
]
AGES = (0, 700, 4000)  # seconds a task has waited


def _routing(level: str, steps: list[tuple[Any, ...]]) -> dict[str, Any]:
    return {
        "min_language_level": level,
        "steps": [
            {"name": name, "after_seconds": after, "ranks": list(ranks), "min_skill_level": skill}
            | ({"slack_below_seconds": 7200} if at_risk else {})
            for name, after, at_risk, ranks, skill in steps
        ],
    }


def _in_force(steps: list[tuple[Any, ...]], age: int, at_risk: bool) -> tuple[Any, ...]:
    """The step in force, written out again."""
    found = steps[0]
    for step in steps[1:]:
        if (step[1] is not None and age >= step[1]) or (step[2] and at_risk):
            found = step
    return found


teams_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "country": st.sampled_from(COUNTRIES),
            "languages": st.dictionaries(
                st.sampled_from(LANGUAGES), st.sampled_from(LEVELS), min_size=1, max_size=3
            ),
            "skill": st.integers(min_value=0, max_value=5),
            "open": st.booleans(),
            "rank": st.sampled_from(["primary", "secondary", "overflow"]),
        }
    ),
    min_size=1,
    max_size=4,
)
queues_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "residency": st.sampled_from([[], ["EU"], ["PH", "IN"], ["RO"]]),
            "language": st.sampled_from(LANGUAGES),
            "skill": st.integers(min_value=0, max_value=5),
            "level": st.sampled_from(["B1", "B2", "C1"]),
            "out_of_hours": st.booleans(),
            # the rule the client sets after the engagements: routing must honour it at once
            "later_residency": st.sampled_from([None, [], ["EU"], ["PH", "IN"], ["RO"]]),
            "steps": st.sampled_from(STEPS),
            "mode": st.sampled_from(["pull", "push"]),
        }
    ),
    min_size=1,
    max_size=3,
)


def _allowed(rule: list[str], country: str) -> bool:
    """Residency written out again, independently of the code under test."""
    if not rule:
        return True
    return any(country == code or (code == "EU" and country in EU) for code in rule)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    teams=teams_strategy,
    queues=queues_strategy,
    tasks=st.lists(
        st.tuples(st.sampled_from(LANGUAGES), st.sampled_from(AGES), st.booleans()), min_size=1, max_size=6
    ),
)
def test_no_assignment_breaks_a_hard_constraint(
    db: Database,
    teams: list[dict[str, Any]],
    queues: list[dict[str, Any]],
    tasks: list[tuple[str, int, bool]],
) -> None:
    client = make_org(db, OrgKind.CLIENT, country="FR")
    made_queues = []
    for spec in queues:
        skills = [{"name": "claims", "min_level": spec["skill"]}] if spec["skill"] else []
        queue = make_queue(
            db,
            client,
            languages=[spec["language"]],
            skills=skills,
            out_of_hours=spec["out_of_hours"],
            residency={"allow": spec["residency"]},
            routing=_routing(spec["level"], spec["steps"]),
            mode=spec["mode"],
        )
        made_queues.append((queue, spec))
    emails, by_agent = {}, {}
    for spec in teams:
        provider = make_org(db, OrgKind.PROVIDER, country=spec["country"])
        team = make_team(
            db,
            provider,
            country=spec["country"],
            calendar=OPEN_ALWAYS if spec["open"] else CLOSED,
            languages=[{"code": c, "level": lvl} for c, lvl in spec["languages"].items()],
            skills=[{"name": "claims", "level": spec["skill"]}] if spec["skill"] else [],
        )
        for queue, queue_spec in made_queues:
            if _allowed(queue_spec["residency"], spec["country"]):
                make_engagement(db, queue, team, rank=spec["rank"])
        agent = make_agent(db, provider, team, capacity={"*": 50})
        set_online(db, agent)
        emails[agent.email] = (team, spec)
        by_agent[agent.id] = spec
    for queue, queue_spec in made_queues:
        if queue_spec["later_residency"] is not None:
            _set_residency(db, client, queue, queue_spec["later_residency"])
            queue_spec["residency"] = queue_spec["later_residency"]
    ages = {}
    for n, (language, age, at_risk) in enumerate(tasks):
        task = make_task(db, made_queues[n % len(made_queues)][0], language=language)
        _waited(db, task.id, age, at_risk)
        ages[task.id] = (age, at_risk)
    by_queue = {queue.id: spec for queue, spec in made_queues}
    for email, (_team, spec) in emails.items():
        while True:
            with db.session() as session:
                taken = claim.next_task(session, agent_principal(session, email)).task
            if taken is None:
                break
            assert by_queue[taken.queue_id]["mode"] == "pull", "a push queue's task pulled"
            _holds(spec, by_queue[taken.queue_id], taken.language, ages[taken.id])
    with db.session() as session:  # the push sweep offers the push queues' tasks
        bind(session, AccessScope.everything())
        offers.sweep(session, utcnow())
        offered = select(Offer.agent_id, Task.queue_id, Task.language, Task.id).join(
            Task, Task.id == Offer.task_id
        )
        made = session.execute(offered.where(Task.queue_id.in_(by_queue))).all()  # this example's
    for agent_id, queue_id, language, task_id in made:
        assert by_queue[queue_id]["mode"] == "push", "a pull queue's task offered"
        _holds(by_agent[agent_id], by_queue[queue_id], language, ages[task_id])


def _holds(team: dict[str, Any], queue: dict[str, Any], language: str, age: tuple[int, bool]) -> None:
    """Every hard constraint, and the step in force, written out again for one assignment."""
    assert _allowed(queue["residency"], team["country"]), "residency broken"
    level = team["languages"].get(language)
    assert level is not None and ORDER[level] >= ORDER[queue["level"]], "language broken"
    assert team["skill"] >= queue["skill"], "skill broken"
    calendar = BusinessCalendar.from_spec(OPEN_ALWAYS if team["open"] else CLOSED)
    assert queue["out_of_hours"] or calendar.is_open(utcnow()), "calendar broken"
    step = _in_force(queue["steps"], *age)
    assert team["rank"] in step[3], "a rank the step in force does not let in"
    assert team["skill"] >= (step[4] if queue["skill"] else 0), "a skill level below the step's"


def _waited(db: Database, task_id: Any, age: int, at_risk: bool) -> None:
    """The task arrived ``age`` seconds ago; stamped at risk if so (as the sweep does)."""
    from datetime import timedelta

    from sqlalchemy import update

    from services.work.models import Task
    from tenants.scoping import AccessScope, bind

    now = utcnow()
    with db.session() as session:
        bind(session, AccessScope.everything())
        values: dict[str, Any] = {"created_at": now - timedelta(seconds=age)}
        if at_risk:
            values["overflow_since"] = now
        session.execute(update(Task).where(Task.id == task_id).values(**values))


def _set_residency(db: Database, client: Any, queue: Any, allow: list[str]) -> None:
    from services.work import queues
    from services.work.schemas import QueueUpdate
    from tenants.scoping import bind
    from tests.factories import principal_of

    principal = principal_of(client)
    with db.session() as session:
        bind(session, principal.access)
        queues.update_queue(
            session, principal, queue.id, QueueUpdate.model_validate({"residency": {"allow": allow}})
        )
