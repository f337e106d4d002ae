"""Usage ingest on PostgreSQL, as a ratio against a bare ``COPY`` measured in the same run.

``POST /v1/usage-events`` in batches of 1,000 events (the operator's API client; each
event validated, its tenant and metric checked, hashed, and recorded unless its
idempotency key is taken, answered event by event) served by uvicorn (``--workers``
processes, one a core by default, as ``WEB_CONCURRENCY`` gives ``bpo api``) to
``--clients`` concurrent HTTP clients, against ``COPY`` of rows of the same shape (other
idempotency keys), parsed from JSON bodies like the API's, straight into ``usage_events``
as the superuser (no row-level security, but the same unique key, indexes, trigger and
foreign key). The two take turns (``ROUNDS``) on the same growing table, so that the
shared machine's drift and the table's growth hit both alike. Then some batches are sent
again: every event answers ``duplicate`` and nothing is recorded twice.
Targets: >= 10,000 events/s and a ratio >= 0.3.

Needs a local PostgreSQL reachable as ``postgres`` on 127.0.0.1 (as in CI); it
(re)creates the database ``bpo_bench_usage``, apart from the other benchmarks' so that
they may run at the same time. Run: ``.venv/bin/python bench/usage_ingest.py [--events 100000]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.intake import database_urls, fresh_database, serve  # noqa: E402
from services.core.database import Database  # noqa: E402
from tenants.principal import OrgKind  # noqa: E402
from tests.factories import make_api_client, make_org  # noqa: E402
from tests.live import free_port  # noqa: E402

DATABASE = "bpo_bench_usage"
APP_URL, OWNER_URL = database_urls(DATABASE)
SUPERUSER_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
BATCH = 1000
TENANTS = 10
REPLAYED_BATCHES = 20
ROUNDS = 3  # COPY and the API take turns, so that a drift of the shared machine hits both alike
METRICS = ("task_completed", "handle_minutes", "sla_met", "sla_breached")
COLUMNS = (
    "id, tenant_id, metric, quantity, occurred_at, recorded_at, queue_id, task_kind, language, out_of_hours,"
    " task_id, source, reason, idempotency_key, body_hash, reverses_id, unit_price, currency, created_by"
)


def bodies(events: int, tenants: list[uuid.UUID], prefix: str) -> list[bytes]:
    """The request bodies, encoded beforehand: what the clients send is not what is timed.
    Their idempotency keys are ``<prefix>-<n>``."""
    now = datetime.now(UTC)
    queues = [uuid.uuid4() for _ in range(3)]
    out = []
    for start in range(0, events, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, events)):
            metric = METRICS[n % len(METRICS)]
            batch.append(
                {
                    "tenant_id": str(tenants[n % len(tenants)]),
                    "metric": metric,
                    "quantity": f"{n % 600 / 10:.1f}" if metric == "handle_minutes" else "1",
                    "occurred_at": (now - timedelta(seconds=n % 36_000)).isoformat(),
                    "idempotency_key": f"{prefix}-{n}",
                    "queue_id": str(queues[n % len(queues)]),
                    "task_kind": "support_ticket",
                }
            )
        out.append(orjson.dumps({"events": batch}))
    return out


def post_all(
    url: str, headers: dict[str, str], sent: list[bytes], clients: int
) -> tuple[float, dict[str, int]]:
    """``sent`` posted by ``clients`` threads taking the next body in turn: seconds, and
    the events answered accepted, duplicate and rejected (or lost to a failed request)."""
    counts = {"accepted": 0, "duplicates": 0, "rejected": 0, "failed requests": 0}
    lock = threading.Lock()
    todo = iter(sent)

    def client() -> None:
        with httpx.Client(headers={**headers, "content-type": "application/json"}, timeout=120) as http:
            while True:
                with lock:
                    body = next(todo, None)
                if body is None:
                    return
                answer = http.post(url, content=body)
                with lock:
                    if answer.status_code != 200:
                        counts["failed requests"] += 1
                        continue
                    found = answer.json()
                    for name in ("accepted", "duplicates", "rejected"):
                        counts[name] += found[name]

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, counts


def copy_baseline(sent: list[bytes], created_by: uuid.UUID) -> float:
    """Seconds to ``COPY`` the rows of ``sent`` into ``usage_events``, parsing the bodies
    (timed, as the API parses them)."""
    superuser = Database(SUPERUSER_URL)
    raw = superuser.engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        with cursor.copy(f"COPY usage_events ({COLUMNS}) FROM STDIN") as copy:
            for body in sent:
                recorded_at = datetime.now(UTC)
                for event in orjson.loads(body)["events"]:
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            event["tenant_id"],
                            event["metric"],
                            int(Decimal(event["quantity"]).scaleb(6)),
                            event["occurred_at"],
                            recorded_at,
                            event["queue_id"],
                            event["task_kind"],
                            None,
                            False,
                            None,
                            "api",
                            None,
                            event["idempotency_key"],
                            hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest(),
                            None,
                            None,
                            None,
                            created_by,
                        )
                    )
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()
        superuser.engine.dispose()


def recorded(prefix: str) -> int:
    """Events whose idempotency key starts with ``prefix``, counted without row-level security."""
    superuser = Database(SUPERUSER_URL)
    with superuser.engine.connect() as connection:
        count = connection.exec_driver_sql(
            "SELECT count(*) FROM usage_events WHERE idempotency_key LIKE %(prefix)s",
            {"prefix": f"{prefix}-%"},
        ).scalar_one()
    superuser.engine.dispose()
    return int(count)


def bench(events: int, clients: int, workers: int, tmp: Path) -> None:
    db = Database(APP_URL)
    tenants = [make_org(db, OrgKind.CLIENT, name=f"Client {n}").id for n in range(TENANTS)]
    operator = make_org(db, OrgKind.OPERATOR, name="Operator")
    client_id, secret = make_api_client(db, operator)
    db.engine.dispose()
    sent, copied = bodies(events, tenants, "api"), bodies(events, tenants, "copy")

    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    env.update({"BPO_DATABASE_URL": APP_URL, "BPO_DATA_DIR": str(tmp / "var"), "BPO_SECRET_KEY": "bench"})
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--workers", str(workers)]
    server = serve(
        [*uvicorn, "--factory", "services.api:create_app", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/healthz",
    )
    ours_s = copy_s = 0.0
    try:
        answer = httpx.post(
            f"http://127.0.0.1:{port}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        url = f"http://127.0.0.1:{port}/v1/usage-events"
        post_all(url, headers, bodies(BATCH * workers, tenants, "warm"), workers)  # each worker's imports
        share = -(-len(sent) // ROUNDS)
        for turn in range(ROUNDS):  # the two take turns on the same growing table
            part = slice(turn * share, (turn + 1) * share)
            size = sum(len(orjson.loads(body)["events"]) for body in sent[part])
            copy_round = copy_baseline(copied[part], operator.id)
            ours_round, counts = post_all(url, headers, sent[part], clients)
            assert counts == {"accepted": size, "duplicates": 0, "rejected": 0, "failed requests": 0}, counts
            print(
                f"round {turn + 1}: COPY {size / copy_round:8.0f} events/s,"
                f" POST {size / ours_round:8.0f} events/s"
            )
            copy_s, ours_s = copy_s + copy_round, ours_s + ours_round
        assert recorded("api") == recorded("copy") == events
        replay = sent[:REPLAYED_BATCHES]
        replay_s, again = post_all(url, headers, replay, clients)
        replayed = sum(len(orjson.loads(body)["events"]) for body in replay)
        assert again["duplicates"] == replayed and again["accepted"] == again["rejected"] == 0, again
        assert recorded("api") == events, "a replay records nothing"
    finally:
        server.terminate()
        server.wait()
    print(f"uvicorn workers, clients    : {workers}, {clients}; {events} events in batches of {BATCH}")
    print(f"COPY into usage_events      : {copy_s:6.2f} s ({events / copy_s:8.0f} events/s)")
    print(
        f"POST /v1/usage-events       : {ours_s:6.2f} s ({events / ours_s:8.0f} events/s)  (target >= 10000)"
    )
    print(
        f"replay of {replayed} events    : {replay_s:6.2f} s ({replayed / replay_s:8.0f} events/s),"
        " each answered duplicate"
    )
    print(f"ratio POST / COPY           : {copy_s / ours_s:.2f}  (target >= 0.3)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn processes, as WEB_CONCURRENCY gives `bpo api` (default: one a core)",
    )
    arguments = parser.parse_args()
    fresh_database(DATABASE)
    with tempfile.TemporaryDirectory() as tmp:
        bench(arguments.events, arguments.clients, arguments.workers, Path(tmp))


if __name__ == "__main__":
    main()
