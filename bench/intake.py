"""Intake throughput on PostgreSQL, as ratios against baselines measured in the same run.

1. ``POST /v1/tasks`` (OAuth bearer, queue lookup, JSON Schema validation, duplicate
   check, history entry, outbox row) served by uvicorn, against a bare FastAPI
   endpoint in the same process model (``--workers`` uvicorn processes each, one a
   core by default, as ``WEB_CONCURRENCY`` gives ``bpo api``) that inserts one row
   with the same driver. Both servers run throughout and take turns under load, so
   that the shared machine's drift hits both alike. Target: ratio >= 0.5.
2. A bulk NDJSON import of N rows (the worker's code path: parse, validate, tasks,
   history, outbox, per-row results) against PostgreSQL ``COPY`` of the same rows
   into a table of the same shape, timed before and after the import and averaged.
   Target: ratio >= 0.25.
3. The proof the issue asks for: a CSV of N rows with 1% bad rows imports every
   good row and reports each bad one with its row number.

Needs a local PostgreSQL reachable as ``postgres`` on 127.0.0.1 (as in CI); it
(re)creates the database ``bpo_bench``. Run: ``.venv/bin/python bench/intake.py [--rows 100000]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.core.database import Database  # noqa: E402
from services.core.settings import Settings  # noqa: E402
from services.migrations import upgrade  # noqa: E402
from services.work import bulk, imports  # noqa: E402
from services.work.storage import blob_store  # noqa: E402
from tenants.principal import OrgKind  # noqa: E402
from tenants.scoping import AccessScope, bind  # noqa: E402
from tests.factories import make_api_client, make_org, make_queue, principal_of  # noqa: E402
from tests.live import free_port  # noqa: E402

DATABASE = "bpo_bench"
APP_URL = f"postgresql+psycopg://bpo_app:bpo_app@127.0.0.1:5432/{DATABASE}"
OWNER_URL = f"postgresql+psycopg://bpo_owner:bpo_owner@127.0.0.1:5432/{DATABASE}"
CLIENTS = 8  # concurrent HTTP clients
DESCRIPTIONS = [
    "Le client signale un double prélèvement sur sa facture de septembre.",
    "Der Kunde bittet um eine Kopie seines Vertrags und der letzten Rechnung.",
    "El cliente no ha recibido el reembolso de su pedido devuelto.",
    "Klient prosi o zmianę adresu dostawy dla zamówienia.",
]


def database_urls(database: str) -> tuple[str, str]:
    """The application's and the owner's URL of a benchmark database."""
    return APP_URL.replace(DATABASE, database), OWNER_URL.replace(DATABASE, database)


def fresh_database(database: str = DATABASE) -> None:
    """Drop and create ``database`` with the roles of infra/postgres/roles.sql, migrated."""
    psql = ["psql", "-q", "-U", "postgres", "-h", "127.0.0.1", "-v", "ON_ERROR_STOP=1"]
    subprocess.run([*psql, "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=True)
    variables = ["owner=bpo_owner", "owner_password=bpo_owner", "app=bpo_app", "app_password=bpo_app"]
    subprocess.run(
        [
            *psql,
            *[a for v in variables for a in ("-v", v)],
            "-v",
            f"database={database}",
            "-f",
            str(ROOT / "infra/postgres/roles.sql"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    upgrade(database_urls(database)[1])


def serve(command: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"{command} did not start")


def load(url: str, headers: dict[str, str], body_of: Any, seconds: float) -> tuple[int, int]:
    """Requests per run from CLIENTS threads for ``seconds``; (successes, failures)."""
    stop_at = time.perf_counter() + seconds
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(headers=headers, timeout=30) as http:
            sequence = 0
            while time.perf_counter() < stop_at:
                sequence += 1
                answer = http.post(url, json=body_of(index, sequence))
                with lock:
                    counts["ok" if answer.status_code in (200, 201) else "failed"] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["ok"], counts["failed"]


BARE_APP = textwrap.dedent(
    """
    import uuid
    from fastapi import FastAPI
    from sqlalchemy import create_engine, text
    engine = create_engine("{url}", pool_size=10)
    app = FastAPI()
    @app.get("/healthz")
    def health():
        return {{}}
    @app.post("/rows", status_code=201)
    def insert(body: dict):
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO bench_rows (id, body) VALUES (:id, CAST(:body AS jsonb))"),
                {{"id": uuid.uuid4(), "body": __import__("json").dumps(body)}},
            )
        return {{"ok": True}}
    """
)


ROUNDS = 3  # the two apps take turns, so that a drift of the shared machine hits both alike


def bench_api(seconds: float, workers: int, tmp: Path) -> None:
    db = Database(APP_URL)
    organization = make_org(db, OrgKind.CLIENT, name=f"Bench {uuid.uuid4().hex[:6]}")
    queue = make_queue(db, organization)
    client_id, secret = make_api_client(db, organization)
    db.engine.dispose()
    owner = Database(OWNER_URL)
    with owner.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_rows (id uuid PRIMARY KEY, body jsonb)")
        connection.exec_driver_sql("GRANT SELECT, INSERT ON bench_rows TO bpo_app")
    owner.engine.dispose()

    env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
    (tmp / "bare.py").write_text(BARE_APP.format(url=APP_URL))
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--workers", str(workers)]
    bare_port, ours_port = free_port(), free_port()
    bare = serve(
        [*uvicorn, "bare:app", "--app-dir", str(tmp), "--port", str(bare_port)],
        env,
        f"http://127.0.0.1:{bare_port}/healthz",
    )
    env.update({"BPO_DATABASE_URL": APP_URL, "BPO_DATA_DIR": str(tmp / "var"), "BPO_SECRET_KEY": "bench"})
    ours = serve(
        [*uvicorn, "--factory", "services.api:create_app", "--port", str(ours_port)],
        env,
        f"http://127.0.0.1:{ours_port}/healthz",
    )
    try:
        answer = httpx.post(
            f"http://127.0.0.1:{ours_port}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        counts = {"bare": [0, 0], "ours": [0, 0]}
        for turn in range(ROUNDS):

            def task(i: int, n: int, turn: int = turn) -> dict[str, Any]:
                return {
                    "queue_id": str(queue.id),
                    "external_ref": f"API-{turn}-{i}-{n}",
                    "title": f"Ticket {n}",
                    "payload": {"description": DESCRIPTIONS[n % len(DESCRIPTIONS)], "channel": "email"},
                    "priority": "normal",
                }

            for name, url, sent, body_of in (
                (
                    "bare",
                    f"http://127.0.0.1:{bare_port}/rows",
                    {},
                    lambda i, n: {"title": "x", "n": n, "c": i},
                ),
                ("ours", f"http://127.0.0.1:{ours_port}/v1/tasks", headers, task),
            ):
                ok, failed = load(url, sent, body_of, seconds / ROUNDS)
                counts[name][0] += ok
                counts[name][1] += failed
    finally:
        for process in (bare, ours):
            process.terminate()
            process.wait()
    bare_rps, ours_rps = counts["bare"][0] / seconds, counts["ours"][0] / seconds
    print(
        f"uvicorn workers per app  : {workers}, {ROUNDS} alternating rounds of {seconds / ROUNDS:.0f} s each"
    )
    print(f"bare FastAPI insert      : {bare_rps:8.0f} req/s ({counts['bare'][1]} failed)")
    print(f"POST /v1/tasks           : {ours_rps:8.0f} req/s ({counts['ours'][1]} failed)")
    print(f"ratio POST /v1/tasks     : {ours_rps / bare_rps:.2f}  (target >= 0.5)")


def ndjson(rows: int) -> bytes:
    lines = [
        json.dumps(
            {
                "external_ref": f"N-{n}",
                "title": f"Ticket {n}",
                "priority": "normal",
                "language": "fr",
                "payload": {"description": DESCRIPTIONS[n % len(DESCRIPTIONS)], "channel": "email"},
            }
        )
        for n in range(1, rows + 1)
    ]
    return ("\n".join(lines) + "\n").encode()


def csv_with_bad_rows(rows: int) -> tuple[bytes, list[int]]:
    out, bad = ["title,description,external_ref,language"], []
    for n in range(1, rows + 1):
        if n % 100 == 0:  # 1%: the required description is missing
            bad.append(n)
            out.append(f"Ticket {n},,C-{n},fr")
        else:
            out.append(f"Ticket {n},{DESCRIPTIONS[n % len(DESCRIPTIONS)]},C-{n},fr")
    return ("\n".join(out) + "\n").encode(), bad


def run_import(
    db: Database, settings: Settings, queue: Any, content: bytes, file_format: bulk.FileFormat
) -> Any:
    store = blob_store(settings)
    with db.session() as session:
        bind(session, AccessScope.everything())
        principal = principal_of(queue_owner(session, queue))
        bind(session, principal.access)
        order = imports.BulkRequest(queue.id, file_format, False, ",")
        job = imports.start_job(session, principal, order, io.BytesIO(content), len(content), store)
    started = time.perf_counter()
    imports.run_job(db, store, job.id)
    elapsed = time.perf_counter() - started
    with db.session() as session:
        bind(session, AccessScope.everything())
        return elapsed, imports.get_job(session, principal_of(queue_owner(session, queue)), job.id), store


def queue_owner(session: Any, queue: Any) -> Any:
    from tenants import service as tenancy

    return tenancy.get_organization(session, queue.tenant_id)


def copy_baseline(content: bytes, queue: Any) -> tuple[float, float]:
    """COPY the same rows, as the owner (no RLS), into two tables: a bare one (only a
    primary key), and one made ``LIKE tasks`` with its indexes and constraints (the
    same rows into the same table shape). Seconds for each."""
    owner = Database(OWNER_URL)
    with owner.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS bench_bare (id uuid PRIMARY KEY, external_ref text, title text, "
            "priority text, language text, payload jsonb, created_at timestamptz DEFAULT now())"
        )
        connection.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS bench_shaped (LIKE tasks INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING INDEXES)"
        )
        connection.exec_driver_sql("TRUNCATE bench_bare, bench_shaped")
    lines = content.splitlines()
    now = datetime.now(UTC)
    bare = _copy(
        owner,
        "COPY bench_bare (id, external_ref, title, priority, language, payload) FROM STDIN",
        (
            (
                uuid.uuid4(),
                r["external_ref"],
                r["title"],
                r["priority"],
                r["language"],
                json.dumps(r["payload"]),
            )
            for r in map(json.loads, lines)  # parsing is timed too, as it is in the import
        ),
    )
    shaped = _copy(
        owner,
        "COPY bench_shaped (id, tenant_id, queue_id, external_ref, title, payload, kind_name, kind_version,"
        " priority, status, language, revision, created_at, updated_at) FROM STDIN",
        (
            (uuid.uuid4(), queue.tenant_id, queue.id, r["external_ref"], r["title"], json.dumps(r["payload"]),
             "support_ticket", 1, r["priority"], "queued", r["language"], 1, now, now)
            for r in map(json.loads, lines)
        ),
    )  # fmt: skip
    owner.engine.dispose()
    return bare, shaped


def _copy(owner: Database, statement: str, values: Any) -> float:
    raw = owner.engine.raw_connection()
    try:
        started = time.perf_counter()
        cursor = raw.cursor()
        with cursor.copy(statement) as copy:  # type: ignore[attr-defined]
            for row in values:
                copy.write_row(row)
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def bench_bulk(rows: int, tmp: Path) -> None:
    settings = Settings(data_dir=tmp / "var", database_url=APP_URL, secret_key="bench")
    db = Database(APP_URL)
    organization = make_org(db, OrgKind.CLIENT, name=f"Bulk {uuid.uuid4().hex[:6]}")
    queue = make_queue(db, organization)
    content = ndjson(rows)
    # The baselines run before and after the import and are averaged: on a shared machine
    # one COPY alone was seen to take from 2.1 to 3.7 s within the same hour.
    before = copy_baseline(content, queue)
    ours_s, job, _store = run_import(db, settings, queue, content, bulk.FileFormat.NDJSON)
    assert (job.status.value, job.accepted, job.rejected) == ("succeeded", rows, 0), job.error
    after = copy_baseline(content, queue)
    bare_s, shaped_s = ((b + a) / 2 for b, a in zip(before, after, strict=True))
    print(f"COPY into LIKE tasks before / after  : {before[1]:.2f} / {after[1]:.2f} s")
    print(f"COPY {rows} rows, bare table      : {bare_s:6.2f} s ({rows / bare_s:8.0f} rows/s)")
    print(f"COPY {rows} rows, LIKE tasks      : {shaped_s:6.2f} s ({rows / shaped_s:8.0f} rows/s)")
    print(f"NDJSON import {rows} rows         : {ours_s:6.2f} s ({rows / ours_s:8.0f} rows/s)"
          " (tasks + history + outbox, validated)")  # fmt: skip
    print(f"ratio import / COPY into LIKE tasks: {shaped_s / ours_s:.2f}  (target >= 0.25)")
    print(f"ratio import / COPY into bare table: {bare_s / ours_s:.2f}")

    csv_content, bad = csv_with_bad_rows(rows)
    csv_s, job, store = run_import(db, settings, queue, csv_content, bulk.FileFormat.CSV)
    rejected = [r["row"] for r in imports.result_rows(store, job, only_rejected=True)]
    assert (job.accepted, job.rejected) == (rows - len(bad), len(bad)), (job.accepted, job.rejected)
    assert rejected == bad, "every bad row is reported, with its number"
    print(
        f"CSV {rows} rows, 1% bad    : {csv_s:6.2f} s, {job.accepted} accepted, {job.rejected} rejected, "
        "each reported"
    )
    db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="load duration per API run")
    parser.add_argument("--only", choices=["api", "bulk"])
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn processes of each app, as WEB_CONCURRENCY gives `bpo api` (default: one a core)",
    )
    arguments = parser.parse_args()
    fresh_database()
    with tempfile.TemporaryDirectory() as tmp:
        if arguments.only in (None, "api"):
            bench_api(arguments.seconds, arguments.workers, Path(tmp))
        if arguments.only in (None, "bulk"):
            bench_bulk(arguments.rows, Path(tmp))


if __name__ == "__main__":
    main()
