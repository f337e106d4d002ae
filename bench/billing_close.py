"""Closing a billing period on PostgreSQL, against a bare ``GROUP BY`` over the same rows.

``--tenants`` clients (1,000) with a contract each and ``--events`` usage events
(10,000,000) in last month, spread over them and over three metrics. The baseline is
the one statement any billing system must at least run: ``SELECT tenant_id, metric,
sum(quantity), count(*) ... GROUP BY tenant_id, metric`` over the period, as the
application role. The close is ``bpo billing close --period P --finalise`` in its own
process, as an operator runs it: per client, usage aggregated by the database, rated,
taxed, numbered and stored. Printed: both times, the ratio (target <= 2) and the close
process's peak RSS, which must not grow with the events (it streams; nothing holds the
period in memory).

Needs PostgreSQL as in CI; (re)creates the database ``bpo_bench_billing``. Run:
``.venv/bin/python bench/billing_close.py [--events 10000000] [--tenants 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.intake import database_urls, fresh_database  # noqa: E402
from services.core.database import Database  # noqa: E402

DATABASE = "bpo_bench_billing"
APP_URL, OWNER_URL = database_urls(DATABASE)
METRICS = (("task_completed", "support_ticket"), ("handle_minutes", "support_ticket"), ("sla_met", None))
CARD = {
    "prices": [
        {
            "metric": "task_completed",
            "task_kind": "support_ticket",
            "tiers": [
                {"first": "0", "up_to": "5000", "unit_price": "2.35"},
                {"first": "5000", "up_to": None, "unit_price": "1.95"},
            ],
        },
        {"metric": "handle_minutes", "unit_price": "0.4125"},
    ],
    "minimum": "100",
}


def build(tenants: int) -> tuple[list[uuid.UUID], str]:
    """The clients, the issuing entity and a contract each; their ids and last month."""
    import services.models  # noqa: F401
    from services.billing import contracts, periods
    from services.billing.schemas import ContractCreate, ContractVersionIn, IssuingEntityIn
    from services.core.time import utcnow
    from services.demo_work import platform_principal
    from tenants import service as tenancy
    from tenants.principal import OrgKind
    from tenants.scoping import AccessScope, bind

    database = Database(APP_URL, pool_size=2)
    operator = platform_principal(uuid.UUID(int=0))
    ids = []
    with database.session() as session:
        bind(session, AccessScope.everything())
        contracts.create_issuing_entity(
            session,
            operator,
            IssuingEntityIn(
                code="IE", name="Bench Ltd", country="IE", vat_number="IE6388047V", address="Dublin"
            ),
        )
        for n in range(tenants):
            client = tenancy.create_organization(
                session, kind=OrgKind.CLIENT, name=f"Client {n}", country="FR"
            )
            version = ContractVersionIn(
                issuing_entity="IE", currency="EUR", effective_from="2026-01-01", rate_card=CARD
            )
            contracts.create_contract(
                session, operator, ContractCreate(tenant_id=client.id, name=f"Contract {n}", version=version)
            )
            ids.append(client.id)
    database.engine.dispose()
    return ids, periods.previous_period(utcnow(), "Europe/Paris")


def load_usage(tenants: list[uuid.UUID], period: str, events: int) -> float:
    """The events, made by the database itself (``generate_series``) as the superuser,
    which row security does not stop: seconds taken."""
    import psycopg

    from services.core.time import month_bounds

    start, end = month_bounds(period, "Europe/Paris")
    started = time.perf_counter()
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DATABASE}") as connection:
        connection.execute(
            """
            INSERT INTO usage_events (id, tenant_id, metric, quantity, occurred_at, recorded_at, task_kind,
                                      out_of_hours, source, idempotency_key, body_hash)
            SELECT gen_random_uuid(), t.ids[1 + n %% array_length(t.ids, 1)],
                   (ARRAY['task_completed', 'handle_minutes', 'sla_met'])[1 + n %% 3],
                   CASE WHEN n %% 3 = 1 THEN 4250000 ELSE 1000000 END,
                   %(start)s + (%(end)s - %(start)s) * ((n * 7919) %% %(events)s) / %(events)s,
                   %(start)s + (%(end)s - %(start)s) * ((n * 7919) %% %(events)s) / %(events)s,
                   CASE WHEN n %% 3 = 2 THEN NULL ELSE 'support_ticket' END,
                   false, 'bench', 'b' || n, 'x'
            FROM generate_series(0::bigint, %(events)s - 1) AS n, (SELECT %(ids)s::uuid[] AS ids) AS t
            """,
            {"start": start, "end": end - timedelta(seconds=1), "events": events, "ids": tenants},
        )
        connection.execute("ANALYZE usage_events")
    return time.perf_counter() - started


def baseline(period: str) -> float:
    import psycopg

    from services.core.time import month_bounds

    start, end = month_bounds(period, "Europe/Paris")
    with psycopg.connect(APP_URL.replace("postgresql+psycopg", "postgresql")) as connection:
        connection.execute("SET bpo.all_tenants = 'on'")
        started = time.perf_counter()
        rows = connection.execute(
            "SELECT tenant_id, metric, sum(quantity), count(*) FROM usage_events"
            " WHERE occurred_at >= %s AND occurred_at < %s GROUP BY tenant_id, metric",
            (start, end),
        ).fetchall()
        took = time.perf_counter() - started
    assert rows, "the baseline found no usage"
    return took


def close(period: str) -> tuple[float, float, float, int]:
    """``bpo billing close`` in its own process: the close's own seconds (its JSON line),
    the whole command's, its peak RSS in MiB, and the invoices it made."""
    env = {**os.environ, "BPO_DATABASE_URL": APP_URL, "BPO_MIGRATION_DATABASE_URL": OWNER_URL}
    started = time.perf_counter()
    done = subprocess.run(
        [str(ROOT / ".venv/bin/bpo"), "billing", "close", "--period", period, "--finalise"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    whole = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["seconds"], whole, peak, len(answer["invoices"])


def reusable(tenants: int) -> bool:
    """Whether ``bpo_bench_billing`` already holds a run's clients and events (``--reuse``)."""
    import psycopg

    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DATABASE}") as connection:
            found = connection.execute("SELECT count(*) FROM contracts").fetchone()
            if not found or found[0] != tenants:
                return False
            connection.execute("DELETE FROM invoice_lines")
            connection.execute("DELETE FROM invoices")
            connection.execute("DELETE FROM invoice_number_counters")
            return True
    except psycopg.Error:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--reuse", action="store_true", help="keep the clients and events of the last run")
    arguments = parser.parse_args()
    from services.billing import periods
    from services.core.time import utcnow

    period = periods.previous_period(utcnow(), "Europe/Paris")
    if not (arguments.reuse and reusable(arguments.tenants)):
        fresh_database(DATABASE)
        tenants, period = build(arguments.tenants)
        made = load_usage(tenants, period, arguments.events)
        print(
            f"{arguments.events:,} usage events of {arguments.tenants:,} clients in {period} ({made:.0f} s)"
        )
    group_by = min(baseline(period) for _ in range(3))
    took, whole, peak_mib, invoices = close(period)
    print(f"bare GROUP BY tenant, metric: {group_by:.2f} s (best of 3)")
    print(f"bpo billing close --finalise: {took:.2f} s for {invoices:,} invoices ({whole:.2f} s with the")
    print(f"  interpreter's start and imports), peak RSS {peak_mib:.0f} MiB")
    print(
        f"ratio close / GROUP BY: {took / group_by:.2f} (target <= 2); whole command: {whole / group_by:.2f}"
    )


if __name__ == "__main__":
    main()
