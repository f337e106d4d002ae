"""Tenant fairness under backlog, ageing that keeps low priority from starving, and the
least SLA slack first."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from services.core.database import Database
from services.routing import fairness, offers
from services.work.models import Priority
from services.work.ranking import DUE_LEAD, PRIORITY_LEAD, rank_at, starvation_bound
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import (
    make_agent,
    make_engagement,
    make_policy,
    make_queue,
    make_task,
    make_team,
    make_tenant,
)
from tests.routing.world import Person, build


def test_two_clients_with_shares_2_to_1_are_drained_2_to_1(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    team = make_team(db, provider.organization, name="Bucharest", country="RO")
    tenants = {}
    for name, share in (("big", 2), ("small", 1)):
        tenant = make_tenant(db, OrgKind.CLIENT, country="FR")
        queue = make_queue(db, tenant.organization, languages=["fr"])
        make_engagement(db, queue, team, share=share)
        for n in range(40):
            make_task(db, queue, language="fr", external_ref=f"{name}-{n}")
        tenants[tenant.organization.id] = name
    agent = make_agent(db, provider.organization, team, capacity={"*": 100})
    person = Person(app, agent.email)
    person.put("/v1/agents/me/presence", json={"presence": "online"})
    taken: Counter[str] = Counter()
    for _ in range(30):
        answer = person.post("/v1/agents/me/next-task")
        assert answer.status_code == 200, answer.text
        taken[answer.json()["external_ref"].split("-")[0]] += 1
    assert abs(taken["big"] - 20) <= 1 and abs(taken["small"] - 10) <= 1, taken


def test_a_low_task_waiting_past_the_bound_goes_before_fresh_high_ones(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    from services.work.models import Task
    from tenants.scoping import AccessScope, bind

    tenant = make_tenant(db, OrgKind.CLIENT, country="FR")
    queue = make_queue(db, tenant.organization, languages=["fr"])
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    team = make_team(db, provider.organization, country="RO")
    make_engagement(db, queue, team)
    low = make_task(db, queue, language="fr", priority="low", external_ref="low")
    with db.session() as session:  # it arrived just over the bound ago
        bind(session, AccessScope.everything())
        row = session.get(Task, low.id)
        assert row is not None
        waited = starvation_bound(Priority.LOW, Priority.HIGH) + timedelta(minutes=1)
        row.created_at -= waited
        row.rank_at = rank_at(row.created_at, Priority.LOW)
    for n in range(5):
        make_task(db, queue, language="fr", priority="high", external_ref=f"high-{n}")
    agent = make_agent(db, provider.organization, team)
    person = Person(app, agent.email)
    person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert person.post("/v1/agents/me/next-task").json()["external_ref"] == "low"


@given(
    st.sampled_from(list(Priority)),
    st.sampled_from(list(Priority)),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=1, max_value=10**7),
)
def test_no_task_waits_behind_work_that_arrived_after_the_bound(
    low: Priority, high: Priority, arrived: int, later: int
) -> None:
    """Whatever the priorities, a task is ranked before any task that arrived more than
    the bound after it: ageing bounds the wait."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = start + timedelta(seconds=arrived)
    second = first + max(starvation_bound(low, high), timedelta(0)) + timedelta(seconds=later)
    assert rank_at(first, low) < rank_at(second, high)


@given(
    st.sampled_from(list(Priority)),
    st.sampled_from(list(Priority)),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=1, max_value=10**7),
    st.none() | st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=10**7),
)
def test_no_task_waits_behind_work_due_at_once_that_arrived_after_the_urgent_bound(
    low: Priority, high: Priority, arrived: int, later: int, first_due: int | None, second_due: int
) -> None:
    """An SLA moves a task up as far as an urgent one, never further: whatever either's
    due time, a task goes before any that arrived more than the urgent bound after it."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = start + timedelta(seconds=arrived)
    second = first + starvation_bound(low, Priority.URGENT) + timedelta(seconds=later)
    due = None if first_due is None else first + timedelta(seconds=first_due)
    due_second = second + timedelta(seconds=second_due)
    assert rank_at(first, low, None, due) < rank_at(second, high, None, due_second)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Priority)),
            st.integers(min_value=0, max_value=10**6),  # arrival, seconds
            st.floats(min_value=0, max_value=1),  # how far into its priority's own deadline it is due
        ),
        min_size=2,
        max_size=8,
    )
)
def test_tasks_due_before_their_prioritys_deadline_go_least_slack_first(
    tasks: list[tuple[Priority, int, float]],
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ranked = []
    for priority, arrived, fraction in tasks:
        created = start + timedelta(seconds=arrived)
        own_deadline = DUE_LEAD - PRIORITY_LEAD[priority]
        due = created + timedelta(seconds=int(own_deadline.total_seconds() * fraction))
        ranked.append((rank_at(created, priority, None, due), due))
    in_rank_order = [due for _rank, due in sorted(ranked, key=lambda entry: entry[0])]
    assert in_rank_order == sorted(due for _rank, due in ranked)


@pytest.mark.parametrize("sample", [fairness.SAMPLE, 6])
def test_two_clients_pushed_to_one_team_with_shares_2_to_1_are_offered_its_places_2_to_1(
    app: FastAPI, client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch, sample: int
) -> None:
    """The sweep offers by turns: with three places on the team and both backlogs longer,
    each round's places go by the shares, not to whichever queue the sweep read first;
    also once the team's recent work is more than the sample read (6 here)."""
    monkeypatch.setattr(fairness, "SAMPLE", sample)
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    team = make_team(db, provider.organization, name="Bucharest", country="RO")
    for name, share in (("big", 2), ("small", 1)):
        tenant = make_tenant(db, OrgKind.CLIENT, country="FR")
        queue = make_queue(db, tenant.organization, languages=["fr"], mode="push")
        make_engagement(db, queue, team, share=share)
        for n in range(40):
            make_task(db, queue, language="fr", external_ref=f"{name}-{n}")
    people = [Person(app, make_agent(db, provider.organization, team).email) for _ in range(3)]
    for person in people:
        person.put("/v1/agents/me/presence", json={"presence": "online"})
    taken: Counter[str] = Counter()
    for _ in range(10):
        with db.session() as session:
            bind(session, AccessScope.everything())
            assert offers.sweep(session)["offered"] == 3  # one place an agent
        for person in people:
            [offer] = person.get("/v1/offers").json()["items"]
            task = person.post(f"/v1/offers/{offer['id']}/accept").json()
            taken[task["external_ref"].split("-")[0]] += 1
            for action in ("start", "resolve"):
                assert person.post(f"/v1/tasks/{task['id']}/transitions", json={"action": action}).is_success
    assert abs(taken["big"] - 20) <= 1 and abs(taken["small"] - 10) <= 1, taken


def test_the_task_due_soonest_is_taken_first_whether_submitted_alone_or_in_bulk(
    app: FastAPI, client: TestClient, db: Database
) -> None:
    """The contract gives the urgent-contracts queue 30 minutes to first response, the
    support queue 8 hours: its tasks go first, though the support ticket came before them."""
    world = build(app, client, db)
    fast = make_queue(db, world.client.organization, name="Urgent contracts", languages=["fr"])
    make_engagement(db, fast, world.team)
    make_policy(
        db,
        world.client.organization,
        targets=[
            {"metric": "first_response", "minutes": 480, "business_time": False},
            {"metric": "first_response", "minutes": 30, "queue_id": str(fast.id), "business_time": False},
        ],
    )
    world.submit(client, external_ref="support")
    bulk = client.post(
        "/v1/tasks/bulk",
        params={"queue_id": str(fast.id)},
        headers={**world.as_client, "Content-Type": "text/csv"},
        content=b"title,description,language,external_ref\nContrat A,urgent,fr,bulk\n",
    )
    assert bulk.status_code in (200, 201, 202) and bulk.json()["accepted"] == 1, bulk.text
    world.submit(client, fast, external_ref="alone")
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    taken = []
    for _ in range(3):
        task = world.person.post("/v1/agents/me/next-task").json()
        taken.append(task["external_ref"])
        for action in ("start", "resolve"):
            url = f"/v1/tasks/{task['id']}/transitions"
            assert world.person.post(url, json={"action": action}).status_code == 200
    assert taken == ["bulk", "alone", "support"]


def test_a_tasks_place_follows_its_running_clocks(app: FastAPI, client: TestClient, db: Database) -> None:
    """Due in 30 minutes for a first response, the task ranks by that; once answered, by
    its resolution, 8 hours out (its priority's deadline then): the place it keeps if it
    goes back to the queue."""
    from sqlalchemy import select

    from services.sla.models import ClockState, SlaClock
    from services.work.models import Task

    world = build(app, client, db)
    make_policy(
        db,
        world.client.organization,
        targets=[
            {"metric": "first_response", "minutes": 30, "business_time": False},
            {"metric": "resolution", "minutes": 480, "business_time": False},
        ],
    )
    submitted = world.submit(client)

    def place() -> tuple[datetime, datetime, list[datetime]]:
        with db.session() as session:
            bind(session, AccessScope.everything())
            task = session.get(Task, uuid.UUID(submitted["id"]))
            assert task is not None and task.rank_at is not None
            running = session.scalars(
                select(SlaClock.due_at).where(
                    SlaClock.task_id == task.id, SlaClock.state == ClockState.RUNNING
                )
            ).all()
            return task.rank_at, task.created_at, [due for due in running if due is not None]

    ranked, created, due = place()
    assert ranked == rank_at(created, Priority.NORMAL, None, min(due)) < created  # 30 min: ahead
    world.person.put("/v1/agents/me/presence", json={"presence": "online"})
    assert world.person.post("/v1/agents/me/next-task").status_code == 200
    url = f"/v1/tasks/{submitted['id']}/transitions"
    assert world.person.post(url, json={"action": "start"}).status_code == 200  # first response given
    ranked, created, due = place()
    assert len(due) == 1 and ranked == rank_at(created, Priority.NORMAL, None, due[0]) == created
