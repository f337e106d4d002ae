"""The SLA sweep on PostgreSQL, as a ratio against a bare indexed SELECT in the same run.

1,000,000 open clocks (500,000 tasks, first response and resolution), of which 1% are
past their due time. One sweep pass (``sla.sweep``: batches that claim the due clocks
with ``FOR UPDATE SKIP LOCKED``, mark them breached, write one outbox event each and
commit) against ``SELECT <the same columns> FROM sla_clocks WHERE <running, unbreached>
AND due_at <= now()`` of the same rows through the same index. Targets: ratio <= 3 and
a pass under one second. Each is measured several times (marks undone between runs);
the medians are compared.

Needs a local PostgreSQL reachable as ``postgres`` on 127.0.0.1 (as in CI); it
(re)creates the database ``bpo_bench``. Run: ``.venv/bin/python bench/sla_sweep.py [--clocks N]``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.intake import APP_URL, DATABASE, fresh_database  # noqa: E402
from services.core.database import Database  # noqa: E402
from services.core.ids import new_id  # noqa: E402
from services.sla import sweep  # noqa: E402
from tenants.principal import OrgKind  # noqa: E402
from tenants.scoping import AccessScope, bind  # noqa: E402
from tests.factories import make_org, make_policy, make_queue  # noqa: E402

OWNER = f"postgresql://bpo_owner:bpo_owner@127.0.0.1:5432/{DATABASE}"
# COPY is refused under row-level security: the fixture rows are written as the superuser.
SUPERUSER = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
RUNS = 5
# The columns the sweep returns for each clock it marks.
BARE = (
    "SELECT id, tenant_id, task_id, queue_id, metric, cycle, priority, policy_version_id, "
    "target_seconds, due_at, warn_at FROM sla_clocks "
    "WHERE state = 'running' AND breached_at IS NULL AND due_at <= now()"
)
TASK_COLUMNS = [
    "id", "tenant_id", "queue_id", "title", "payload", "kind_name", "kind_version",
    "priority", "status", "revision", "created_at", "updated_at",
]  # fmt: skip
CLOCK_COLUMNS = [
    "id", "tenant_id", "task_id", "queue_id", "metric", "cycle", "priority", "policy_version_id",
    "calendar_version_id", "target_seconds", "warn_seconds", "state", "started_at", "running_since",
    "elapsed_seconds", "paused_client_seconds", "paused_third_party_seconds", "due_at", "warn_at",
    "warned_at",
]  # fmt: skip


def _copy(connection: psycopg.Connection, table: str, columns: list[str], rows: io.StringIO) -> None:
    rows.seek(0)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        while chunk := rows.read(1 << 20):
            copy.write(chunk)


def populate(clocks: int, due_share: float, layout: str) -> tuple[int, int]:
    """Tasks and their open clocks, written with COPY. With the ``arrival`` layout the due
    clocks are those of the oldest tasks, as when tasks arrive over time and are due in
    arrival order (they sit together in the table); ``scattered`` spreads them evenly,
    one in a hundred rows, the worst case for the pages an UPDATE touches."""
    db = Database(APP_URL)
    client = make_org(db, OrgKind.CLIENT)
    make_policy(db, client)
    queue = make_queue(db, client)
    with db.session() as session:
        bind(session, AccessScope.everything())
        from services.sla.models import SlaPolicyVersion

        version_id = session.query(SlaPolicyVersion.id).filter_by(tenant_id=client.id).scalar()
    now = datetime.now(UTC)
    tasks_count = clocks // 2
    due_every = round(1 / due_share)
    tasks, rows = io.StringIO(), io.StringIO()
    due = 0
    for n in range(tasks_count):
        task_id = new_id()
        created = now - timedelta(minutes=30)
        task_row = (task_id, client.id, queue.id, f"Task {n}", "{}", "support_ticket", 1, "normal", "queued")
        tasks.write("\t".join(map(str, (*task_row, 1, created, created))) + "\n")
        for metric, target in (("first_response", 3600), ("resolution", 28800)):
            index = 2 * n + (metric == "resolution")
            is_due = index % due_every == 0 if layout == "scattered" else index < clocks * due_share
            due += is_due
            due_at = now - timedelta(seconds=index % 600 + 1) if is_due else now + timedelta(seconds=target)
            warned = due_at if is_due else "\\N"  # a due clock warned long ago
            clock = (new_id(), client.id, task_id, queue.id, metric, 0, "normal", version_id, "\\N")
            timing = (target, target * 3 // 4, "running", created, created, 0, 0, 0, due_at, due_at, warned)
            rows.write("\t".join(map(str, (*clock, *timing))) + "\n")
    with psycopg.connect(SUPERUSER) as connection:
        _copy(connection, "tasks", TASK_COLUMNS, tasks)
        _copy(connection, "sla_clocks", CLOCK_COLUMNS, rows)
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE sla_clocks")
        connection.execute("VACUUM ANALYZE tasks")
    return clocks, due


def bare_select() -> tuple[float, int]:
    with psycopg.connect(OWNER) as connection:
        connection.execute("SET bpo.all_tenants = 'on'")
        started = time.perf_counter()
        found = connection.execute(BARE).fetchall()  # a constant query: nothing interpolated
        return time.perf_counter() - started, len(found)


def sweep_pass(db: Database) -> tuple[float, int]:
    """What the ``sla.sweep`` job does: batches until none comes back full."""
    started = time.perf_counter()
    fired = 0
    while True:
        with db.session() as session:
            bind(session, AccessScope.everything())
            batch = sweep.sweep(session)
        fired += batch.breaches + batch.warnings
        if max(batch.breaches, batch.warnings) < sweep.BATCH:
            return time.perf_counter() - started, fired


def undo_marks() -> None:
    with psycopg.connect(OWNER) as connection:
        connection.execute("SET bpo.all_tenants = 'on'")
        connection.execute(
            "UPDATE sla_clocks SET breached_at = NULL, outcome = NULL, settled_at = NULL "
            "WHERE breached_at IS NOT NULL"
        )
        connection.execute("DELETE FROM outbox_events WHERE type LIKE 'sla.%'")
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE sla_clocks")
        connection.execute("VACUUM outbox_events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, default=1_000_000)
    parser.add_argument("--due", type=float, default=0.01, help="share of clocks past due")
    parser.add_argument("--layout", choices=["arrival", "scattered"], default="arrival")
    arguments = parser.parse_args()
    fresh_database()
    started = time.perf_counter()
    total, due = populate(arguments.clocks, arguments.due, arguments.layout)
    print(
        f"{total:,} open clocks, {due:,} past due, {arguments.layout} layout "
        f"(written in {time.perf_counter() - started:.1f} s)"
    )
    db = Database(APP_URL)
    bare_select()  # warm the index and the plan cache
    bare, sweeps = [], []
    for _run in range(RUNS):
        seconds, found = bare_select()
        bare.append(seconds)
        assert found == due, (found, due)
        seconds, fired = sweep_pass(db)
        sweeps.append(seconds)
        assert fired == due, (fired, due)
        undo_marks()
    baseline, ours = statistics.median(bare), statistics.median(sweeps)
    print(f"bare indexed SELECT of the {due:,} due clocks: {baseline * 1000:.0f} ms (median of {RUNS})")
    print(f"sweep pass (claim, mark, outbox event each, commit): {ours * 1000:.0f} ms (median of {RUNS})")
    ratio = ours / baseline
    print(
        f"ratio sweep/bare: {ratio:.2f} (target <= 3: {'met' if ratio <= 3 else 'NOT met'}); "
        f"under one second: {'yes' if ours < 1 else 'NO'}"
    )


if __name__ == "__main__":
    main()
