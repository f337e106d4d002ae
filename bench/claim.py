"""Pull routing under load on PostgreSQL, as a ratio against pgqueuer in the same run.

A backlog of ``--backlog`` queued tasks over 20 queues of 5 client tenants, engaged on 5
teams of several languages; ``--agents`` agents claim through the real pull path
(``routing.claim.next_task``: the signed-in agent's scope with its grants, as the
workspace resolves it from the session cookie, eligibility, tenant
fairness, ``FOR UPDATE SKIP LOCKED``, the assignment, its history, outbox event and trace)
and resolve each claim at once (start, resolve). The baseline is pgqueuer dequeuing and
acknowledging the same number of jobs, one at a time, with as many concurrent workers,
from a backlog of the same size in the same database. Both sides run ``--processes``
processes. Printed: claims per second, p50 and p99 claim latency, double assignments
(must be 0), the ratio; the same agents again at a working pace (each task worked about
``--work-seconds`` before it is resolved: the load real agents put on the claim, where
its latency is the claim's own, not a queue of 25 threads for one core); the cost of
``GET /v1/tasks/{id}/routing`` (the explanation of a queued task, through the API's
service); and of a push offer round (one sweep of a queue turned to push mode, per task
offered).

Needs PostgreSQL as in CI; (re)creates the database ``bpo_bench``, and pgqueuer
(``pip install pgqueuer asyncpg``). Run: ``.venv/bin/python bench/claim.py [--backlog 1000000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.intake import APP_URL, fresh_database  # noqa: E402
from services.core.database import Database  # noqa: E402

LANGUAGES = ("fr", "de", "es", "en", "pl")
TENANTS, QUEUES_PER_TENANT, TEAMS = 5, 4, 5


def build(backlog: int, agents: int) -> tuple[list[str], list[uuid.UUID]]:
    """The workforce and the backlog; the agents' emails and the queues."""
    import services.models  # noqa: F401
    from services.core.time import utcnow
    from services.work import kinds
    from services.work.bulk_insert import insert_created
    from services.work.history import Actor
    from services.work.schemas import TaskCreate
    from services.work.service import task_values
    from tenants.principal import OrgKind
    from tenants.scoping import AccessScope, bind
    from tests.factories import make_agent, make_engagement, make_org, make_queue, make_team

    database = Database(APP_URL, pool_size=4)
    clients = [make_org(database, OrgKind.CLIENT, name=f"Client {n}", country="FR") for n in range(TENANTS)]
    providers = [make_org(database, OrgKind.PROVIDER, name=f"Provider {n}", country="RO") for n in range(2)]
    teams = []
    for n in range(TEAMS):  # each team speaks two neighbouring languages of the five, and English
        spoken = {LANGUAGES[n], LANGUAGES[(n + 1) % 5], "en"}
        teams.append(
            make_team(
                database,
                providers[n % 2],
                name=f"Team {n}",
                country="RO",
                languages=[{"code": code, "level": "C1"} for code in sorted(spoken)],
            )
        )
    queues = []
    for t, client in enumerate(clients):
        for q in range(QUEUES_PER_TENANT):
            language = LANGUAGES[(t + q) % 5]
            queue = make_queue(database, client, languages=[language])
            queues.append((queue, language))
            for team in teams:
                if any(entry["code"] == language for entry in team.languages):
                    make_engagement(database, queue, team, share=1 + t % 2)
    emails = [make_agent(database, providers[n % TEAMS % 2], teams[n % TEAMS]).email for n in range(agents)]
    actor = Actor.system("bench")
    started = time.perf_counter()
    per_queue = backlog // len(queues)
    for queue, language in queues:
        with database.session() as session:
            bind(session, AccessScope.tenants({queue.tenant_id}))
            kind = kinds.require(session, queue.tenant_id, queue.task_kind)
            for first in range(0, per_queue, 5000):
                rows = []
                for n in range(first, min(first + 5000, per_queue)):
                    data = TaskCreate(
                        queue_id=queue.id,
                        title=f"Ticket {n}",
                        payload={"description": "x"},
                        language=language,
                        priority=("low", "normal", "high", "urgent")[n % 4],
                    )
                    values = task_values(queue, kind, data, detect_language=False, now=utcnow())
                    values.update(id=uuid.uuid4(), created_by=None)
                    rows.append(values)
                insert_created(session, actor, rows)
    print(f"backlog of {per_queue * len(queues):,} tasks in {time.perf_counter() - started:.0f} s")
    database.engine.dispose()
    return emails, [queue.id for queue, _language in queues]


def _agents_of_last_run() -> list[str]:
    from sqlalchemy import select

    from services.identity.models import User
    from services.workforce.models import Agent
    from tenants.scoping import AccessScope, bind

    database = Database(APP_URL, pool_size=1)
    with database.session() as session:
        bind(session, AccessScope.everything())
        emails = list(session.scalars(select(User.email).join(Agent, Agent.user_id == User.id)))
    database.engine.dispose()
    return emails


def _our_worker(emails: list[str], claims: int, work_seconds: float, results: Any) -> None:
    from services.core.settings import Settings
    from services.demo_work import agent_principal
    from services.identity import service as identity
    from services.routing import claim
    from services.work import service
    from services.work.lifecycle import Action
    from services.workforce import agents
    from services.workforce.models import Presence

    database = Database(APP_URL, pool_size=len(emails), max_overflow=0)
    latencies: list[float] = []
    taken: list[str] = []
    lock = threading.Lock()
    quota = iter(range(claims))

    settings = Settings()

    def agent(email: str) -> None:
        with database.session() as session:  # signed in, online, as in the workspace
            principal = agent_principal(session, email)
            agents.set_presence(session, principal, Presence.ONLINE, 3600)
            cookie = identity.open_web_session(session, settings, principal, "bench")

        def signed_in(session: Any) -> Any:  # each request's principal, as the pages resolve it
            return identity.principal_for_web_session(session, cookie, settings.token_cache_seconds)

        time.sleep(random.uniform(0, work_seconds))  # agents start their day at different moments
        while True:
            with lock:
                if next(quota, None) is None:
                    return
            began = time.perf_counter()
            with database.session() as session:
                got = claim.next_task(session, signed_in(session))
            elapsed = time.perf_counter() - began
            if got.task is None:
                continue
            if work_seconds:  # the agent works the task a while, as agents do
                time.sleep(random.uniform(0.5, 1.5) * work_seconds)
            with database.session() as session:  # worked at once
                principal = signed_in(session)
                for action in (Action.START, Action.RESOLVE):
                    service.transition(session, principal, got.task.id, action)
            with lock:
                latencies.append(elapsed)
                taken.append(str(got.task.id))

    threads = [threading.Thread(target=agent, args=(email,)) for email in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((latencies, taken))
    database.engine.dispose()


def run_ours(
    emails: list[str], claims: int, processes: int, work_seconds: float = 0.0
) -> tuple[float, list[float], int]:
    results: Any = multiprocessing.Queue()
    chunks = [emails[n::processes] for n in range(processes)]
    workers = [
        multiprocessing.Process(target=_our_worker, args=(chunk, claims // processes, work_seconds, results))
        for chunk in chunks
    ]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    gathered = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    latencies = [latency for part, _taken in gathered for latency in part]
    taken = [task for _part, part in gathered for task in part]
    return len(taken) / seconds, latencies, len(taken) - len(set(taken))


PGQ_URL = "postgresql://bpo_owner:bpo_owner@127.0.0.1:5432/bpo_bench"


async def _pgqueuer_fill(backlog: int) -> None:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    connection = await asyncpg.connect(PGQ_URL)
    queries = Queries(AsyncpgDriver(connection))
    if await connection.fetchval("SELECT to_regclass('pgqueuer')") is not None:  # --reuse
        waiting = await connection.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
        backlog = max(0, backlog - waiting)
    else:
        await queries.install()
    for first in range(0, backlog, 10_000):
        count = min(10_000, backlog - first)
        await queries.enqueue(["claim"] * count, [b"x"] * count, [n % 4 for n in range(count)])
    await connection.close()


async def _pgqueuer_work(workers: int, jobs: int) -> tuple[list[float], list[int]]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries
    from pgqueuer.domain.types import QueueManagerId
    from pgqueuer.ports.repository import EntrypointExecutionParameter

    latencies: list[float] = []
    taken: list[int] = []
    remaining = [jobs]

    async def worker() -> None:
        connection = await asyncpg.connect(PGQ_URL)
        queries = Queries(AsyncpgDriver(connection))
        entrypoints = {"claim": EntrypointExecutionParameter(concurrency_limit=0)}
        manager = QueueManagerId(uuid.uuid4())
        from datetime import timedelta

        while remaining[0] > 0:
            remaining[0] -= 1
            began = time.perf_counter()
            batch = await queries.dequeue(1, entrypoints, manager, None, timedelta(seconds=30))
            latencies.append(time.perf_counter() - began)
            if batch:
                await queries.log_jobs([(job, "successful", None) for job in batch])
                taken.extend(job.id for job in batch)
        await connection.close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies, taken


def _pgqueuer_process(workers: int, jobs: int, results: Any) -> None:
    results.put(asyncio.run(_pgqueuer_work(workers, jobs)))


def run_pgqueuer(workers: int, jobs: int, processes: int) -> tuple[float, list[float], int]:
    results: Any = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=_pgqueuer_process, args=(workers // processes, jobs // processes, results)
        )
        for _ in range(processes)
    ]
    began = time.perf_counter()
    for proc in procs:
        proc.start()
    gathered = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    seconds = time.perf_counter() - began
    latencies = [latency for part, _t in gathered for latency in part]
    taken = [job for _l, part in gathered for job in part]
    return len(taken) / seconds, latencies, len(taken) - len(set(taken))


def routing_cost(repeat: int = 200) -> float:
    """Microseconds of one explanation of a queued task, as the operator asks it."""
    from sqlalchemy import select

    from services.routing import traces
    from services.work.models import Task, TaskStatus
    from tenants.scoping import AccessScope, bind
    from tests.factories import OPERATOR

    database = Database(APP_URL, pool_size=1)
    with database.session() as session:
        bind(session, AccessScope.everything())
        task_id = session.scalars(select(Task.id).where(Task.status == TaskStatus.QUEUED).limit(1)).one()
        began = time.perf_counter()
        for _ in range(repeat):
            traces.routing_of(session, OPERATOR, task_id)
        cost = (time.perf_counter() - began) / repeat * 1e6
    database.engine.dispose()
    return cost


def offer_cost() -> tuple[float, int, int]:
    """Milliseconds of one push sweep over a queue turned to push mode (rolled back), the
    waiting tasks it weighed (each one's candidates read and scored) and those it offered
    (traced): the agents' capacity bounds those."""
    from sqlalchemy import select

    from services.routing import offers
    from services.work.models import Queue, QueueMode, Task, TaskStatus
    from tenants.scoping import AccessScope, bind

    database = Database(APP_URL, pool_size=1)
    with database.session() as session:
        bind(session, AccessScope.everything())
        queue = session.scalars(select(Queue).order_by(Queue.id).limit(1)).one()
        queue.mode = QueueMode.PUSH
        session.flush()
        waiting = session.scalars(
            select(Task.id)
            .where(Task.queue_id == queue.id, Task.status == TaskStatus.QUEUED)
            .limit(offers.SWEEP_BATCH)
        ).all()
        began = time.perf_counter()
        done = offers.sweep(session)
        cost = (time.perf_counter() - began) * 1000
        session.rollback()
    database.engine.dispose()
    return cost, len(waiting), done["offered"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--claims", type=int, default=5_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--paced-claims", type=int, default=1_000)
    parser.add_argument("--work-seconds", type=float, default=2.0, help="each task's mean work time, paced")
    parser.add_argument("--reuse", action="store_true", help="measure again on the last run's database")
    options = parser.parse_args()
    if options.reuse:
        emails = _agents_of_last_run()
    else:
        fresh_database()
        emails, _queues = build(options.backlog, options.agents)
    asyncio.run(_pgqueuer_fill(options.backlog))
    print(f"pgqueuer backlog of {options.backlog:,} jobs")
    # Fresh tables have no statistics yet (autovacuum comes later): without them the claim's
    # planner took a bitmap of every granted queue and sorted it, 2 s a claim at 1,000,000.
    analyse = ["psql", "-q", "-U", "postgres", "-h", "127.0.0.1", "-d", "bpo_bench", "-c", "ANALYZE"]
    subprocess.run(analyse, check=True)
    ours_rate, ours_latency, doubles = run_ours(emails, options.claims, options.processes)
    theirs_rate, theirs_latency, theirs_doubles = run_pgqueuer(
        options.agents, options.claims, options.processes
    )
    print(
        f"ours:     {ours_rate:8.1f} claims/s  p50 {percentile(ours_latency, 0.5):6.1f} ms"
        f"  p99 {percentile(ours_latency, 0.99):6.1f} ms  doubles {doubles}  ({len(ours_latency)} claims)"
    )
    print(
        f"pgqueuer: {theirs_rate:8.1f} jobs/s    p50 {percentile(theirs_latency, 0.5):6.1f} ms"
        f"  p99 {percentile(theirs_latency, 0.99):6.1f} ms  doubles {theirs_doubles}"
    )
    print(f"ratio (ours / pgqueuer): {ours_rate / theirs_rate:.2f}  (target >= 1.0, p99 < 20 ms, 0 doubles)")
    paced_rate, paced_latency, paced_doubles = run_ours(
        emails, options.paced_claims, options.processes, options.work_seconds
    )
    print(
        f"ours, each task worked ~{options.work_seconds:g} s: {paced_rate:6.1f} claims/s"
        f"  p50 {percentile(paced_latency, 0.5):6.1f} ms  p99 {percentile(paced_latency, 0.99):6.1f} ms"
        f"  doubles {paced_doubles}"
    )
    print(f"GET /v1/tasks/{{id}}/routing of a queued task: {routing_cost():.0f} us (with its explanation)")
    sweep_ms, weighed, offered = offer_cost()
    print(
        f"push offer round: {sweep_ms:.0f} ms for a sweep weighing {weighed} waiting tasks"
        f" ({sweep_ms / max(weighed, 1):.1f} ms a task), {offered} offered (the agents' capacity)"
    )
    print(f"median claim {statistics.median(ours_latency) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
