"""PostgreSQL, real commits: twenty agents claim from one backlog of thousands of tasks at
once. Every task is assigned exactly once, none is lost, and a claim whose transaction
rolls back leaves its task queued for the next agent."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from services.core.database import Database
from services.core.time import utcnow
from services.demo_work import agent_principal
from services.routing import claim
from services.routing.models import TaskAssignment
from services.work import kinds, service
from services.work.bulk_insert import insert_created
from services.work.history import Actor
from services.work.lifecycle import Action
from services.work.models import Queue, Task, TaskStatus
from services.work.schemas import TaskCreate
from services.workforce import agents
from services.workforce.models import Presence
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import make_agent, make_engagement, make_queue, make_task, make_team, make_tenant

pytestmark = pytest.mark.postgres
AGENTS = 20
BACKLOG = 2000


class Abandoned(Exception):
    """A claim whose request failed after the task was taken: its transaction rolls back."""


def _backlog(db: Database, queues: list[Queue], size: int) -> None:
    """``size`` French tasks over ``queues``, written as bulk intake writes them."""
    for index, queue in enumerate(queues):
        with db.session() as session:
            bind(session, AccessScope.tenants({queue.tenant_id}))
            kind = kinds.require(session, queue.tenant_id, queue.task_kind)
            rows = []
            for n in range(index, size, len(queues)):
                data = TaskCreate(
                    queue_id=queue.id,
                    title=f"Ticket {n}",
                    payload={"description": "Bonjour"},
                    language="fr",
                    external_ref=f"C-{n}",
                    priority=("low", "normal", "high", "urgent")[n % 4],
                )
                values = service.task_values(queue, kind, data, detect_language=False, now=utcnow())
                values.update(id=uuid.uuid4(), created_by=None)
                rows.append(values)
            insert_created(session, Actor.system("test"), rows)


def test_twenty_agents_never_take_a_task_twice_and_lose_none(committed: Database) -> None:
    client = make_tenant(committed, OrgKind.CLIENT, country="FR")
    provider = make_tenant(committed, OrgKind.PROVIDER, country="RO")
    team = make_team(committed, provider.organization, country="RO")
    queues = [make_queue(committed, client.organization, languages=["fr"]) for _ in range(2)]
    for queue in queues:
        make_engagement(committed, queue, team)
    _backlog(committed, queues, BACKLOG)
    # Room under capacity for what each agent holds: one claim in two is worked to its end
    # at once, so transitions run among the claims and the claims race each other.
    capacity = {"*": 100}
    emails = [
        make_agent(committed, provider.organization, team, capacity=capacity).email for _ in range(AGENTS)
    ]
    # The agents' own engine: twenty connections, closed afterwards (the suite's pool stays as it was).
    pool = Database(committed.url, pool_size=AGENTS, max_overflow=0)
    taken: Counter[str] = Counter()
    abandoned: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(AGENTS)

    def work(email: str) -> None:
        try:
            with pool.session() as session:
                agents.set_presence(session, agent_principal(session, email), Presence.ONLINE, 3600)
            start.wait()
            n = 0
            while True:
                n += 1
                try:
                    with pool.session() as session:
                        principal = agent_principal(session, email)
                        got = claim.next_task(session, principal)
                        if got.task is None:
                            return
                        if n % 25 == 0:  # the request dies after taking the task
                            abandoned.append(str(got.task.id))
                            raise Abandoned()
                        taken[str(got.task.id)] += 1
                        if n % 2 == 0:
                            for action in (Action.START, Action.RESOLVE):
                                service.transition(session, principal, got.task.id, action)
                except Abandoned:
                    continue
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(email,)) for email in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    pool.engine.dispose()
    assert not errors, errors[:3]
    assert abandoned, "no claim was rolled back: the test proves less than it says"
    assert len(taken) == BACKLOG and set(taken.values()) == {1}
    with committed.session() as session:
        bind(session, AccessScope.everything())
        tenant = client.organization.id
        per_task = session.execute(
            select(TaskAssignment.task_id, func.count())
            .where(TaskAssignment.tenant_id == tenant)
            .group_by(TaskAssignment.task_id)
        ).all()
        assert len(per_task) == BACKLOG and {count for _task, count in per_task} == {1}
        left = session.scalar(
            select(func.count()).where(Task.tenant_id == tenant, Task.status == TaskStatus.QUEUED)
        )
        assert left == 0


def test_a_claim_probes_past_heads_other_transactions_hold(committed: Database) -> None:
    """The language detection locks its batch of the oldest tasks; a claim meanwhile takes
    the first task nobody holds (the deeper probe), not "nothing queued"."""
    client = make_tenant(committed, OrgKind.CLIENT, country="FR")
    provider = make_tenant(committed, OrgKind.PROVIDER, country="RO")
    team = make_team(committed, provider.organization, country="RO")
    queue = make_queue(committed, client.organization, languages=["fr"])
    make_engagement(committed, queue, team)
    tasks = [make_task(committed, queue, language="fr", external_ref=f"H-{n}") for n in range(80)]
    email = make_agent(committed, provider.organization, team).email
    with committed.session() as session:
        agents.set_presence(session, agent_principal(session, email), Presence.ONLINE, 3600)
    holder = Database(committed.url, pool_size=1, max_overflow=0)
    try:
        with holder.session() as held:
            bind(held, AccessScope.everything())
            ranked = select(Task.id).where(Task.queue_id == queue.id, Task.status == TaskStatus.QUEUED)
            locked = held.scalars(ranked.order_by(Task.rank_at, Task.id).limit(70).with_for_update()).all()
            with committed.session() as session:
                got = claim.next_task(session, agent_principal(session, email))
                assert got.task is not None and got.task.id not in set(locked)
                assert got.task.id in {task.id for task in tasks}
            held.rollback()
    finally:
        holder.engine.dispose()


def test_a_claim_racing_the_agents_removal_takes_nothing_and_fails_cleanly(committed: Database) -> None:
    """The removal locks the agent first; a claim by that agent waits for it, then finds
    no agent (404), and the task stays queued: nothing is left with someone who left."""
    from services.core.errors import NotFound
    from services.routing import departures
    from tests.factories import principal_of

    client = make_tenant(committed, OrgKind.CLIENT, country="FR")
    provider = make_tenant(committed, OrgKind.PROVIDER, country="RO")
    team = make_team(committed, provider.organization, country="RO")
    queue = make_queue(committed, client.organization, languages=["fr"])
    make_engagement(committed, queue, team)
    _backlog(committed, [queue], 3)
    email = make_agent(committed, provider.organization, team).email
    with committed.session() as session:
        principal = agent_principal(session, email)
        agents.set_presence(session, principal, Presence.ONLINE, 3600)
        agent_id = principal.agent_id
    assert agent_id is not None
    pool = Database(committed.url, pool_size=2, max_overflow=0)
    outcome: list[BaseException | str] = []
    removing = pool.session()
    with removing as lead_session:
        from tenants.grants import acting

        lead = acting(lead_session, principal_of(provider.organization))
        assert departures.remove_agent(lead_session, lead, agent_id) == 0  # locked, not committed yet

        def claim_meanwhile() -> None:
            try:
                with pool.session() as session:
                    got = claim.next_task(session, agent_principal(session, email))
                    outcome.append(str(got.task.id) if got.task else "nothing")
            except BaseException as exc:
                outcome.append(exc)

        claimant = threading.Thread(target=claim_meanwhile)
        claimant.start()
        claimant.join(timeout=1)
        assert claimant.is_alive(), outcome  # waiting for the removal
    claimant.join(timeout=30)  # the removal committed
    pool.engine.dispose()
    assert len(outcome) == 1 and isinstance(outcome[0], NotFound), outcome
    with committed.session() as session:
        bind(session, AccessScope.everything())
        waiting = session.scalar(
            select(func.count()).where(Task.queue_id == queue.id, Task.status == TaskStatus.QUEUED)
        )
        assert waiting == 3
