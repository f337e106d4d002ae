"""The ``bpo`` command line: run the roles, migrate, onboard, seed the demo."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

import services.models  # noqa: F401  (every table; the SLA clocks observe task history)
from services.core.database import Database, is_sqlite
from services.core.errors import DomainError
from services.core.settings import Settings, get_settings

app = typer.Typer(help="BPO platform: intake, routing, SLA, metering and billing.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
org_app = typer.Typer(help="Organisations.", no_args_is_help=True)
client_app = typer.Typer(help="OAuth API clients.", no_args_is_help=True)
tasks_app = typer.Typer(help="Tasks.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
agent_app = typer.Typer(help="Agents of provider teams.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
app.add_typer(org_app, name="org")
app.add_typer(client_app, name="api-client")
app.add_typer(tasks_app, name="tasks")
billing_app = typer.Typer(help="Billing periods and invoices.", no_args_is_help=True)
app.add_typer(billing_app, name="billing")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _describe(error: DomainError) -> str:
    parts = [error.detail or error.title] + [f"{e.pointer.lstrip('/')}: {e.message}" for e in error.errors]
    return "; ".join(p for p in parts if p)


@contextmanager
def _platform_session() -> Iterator[Session]:
    """The operator's own unit of work: the command line acts for the platform."""
    from tenants.scoping import AccessScope, bind

    settings = get_settings()
    _ensure_schema(settings)
    database = Database.from_settings(settings)
    try:
        with database.session() as session:
            bind(session, AccessScope.everything())
            yield session
    except DomainError as error:
        raise _fail(_describe(error)) from None
    finally:
        database.engine.dispose()


def _ensure_schema(settings: Settings) -> None:
    """The embedded default migrates itself; production runs ``bpo db upgrade`` as the owner."""
    if is_sqlite(settings.resolved_database_url()):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        from services.migrations import upgrade

        upgrade(settings.resolved_migration_url())


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to REVISION (as the role that owns the tables)."""
    from services.migrations import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_migration_url(), revision)
    typer.echo(json.dumps({"revision": revision, "status": "upgraded"}))


@org_app.command("create")
def org_create(
    kind: Annotated[str, typer.Option(help="client, provider or operator")],
    name: Annotated[str, typer.Option()],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2, e.g. FR")],
    admin_email: Annotated[str | None, typer.Option()] = None,
    admin_password: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Onboard an organisation, optionally with its first administrator."""
    from services.identity import service as identity
    from tenants import service as tenancy
    from tenants.principal import OrgKind, Role

    try:
        org_kind = OrgKind(kind)
    except ValueError:
        raise _fail(f"--kind must be one of client, provider, operator (got {kind!r})") from None
    if bool(admin_email) != bool(admin_password):
        raise _fail("--admin-email and --admin-password go together")
    admin_role = {
        OrgKind.CLIENT: Role.CLIENT_ADMIN,
        OrgKind.PROVIDER: Role.PROVIDER_ADMIN,
        OrgKind.OPERATOR: Role.PLATFORM_ADMIN,
    }[org_kind]
    with _platform_session() as session:
        organization = tenancy.create_organization(session, kind=org_kind, name=name, country=country)
        result: dict[str, str] = {"id": str(organization.id)}
        if admin_email and admin_password:
            user = identity.create_user(
                session,
                organization,
                email=admin_email,
                password=admin_password,
                display_name=admin_email.split("@")[0],
                roles=[admin_role],
            )
            result["admin_user_id"] = str(user.id)
    typer.echo(json.dumps(result))


@client_app.command("create")
def api_client_create(
    org: Annotated[str, typer.Option(help="Organisation id")],
    scopes: Annotated[str | None, typer.Option(help="Space-separated; default: all")] = None,
    name: Annotated[str, typer.Option()] = "command line",
) -> None:
    """Create an OAuth client for an organisation; prints its id and secret once."""
    import uuid

    from services.identity import service as identity
    from tenants import service as tenancy

    try:
        org_id = uuid.UUID(org)
    except ValueError:
        raise _fail(f"--org must be an organisation id (a UUID), got {org!r}") from None
    with _platform_session() as session:
        organization = tenancy.get_organization(session, org_id)
        created = identity.create_api_client(session, organization.id, name, scopes)
    typer.echo(
        json.dumps(
            {
                "id": str(created.client.id),
                "client_id": created.client.client_id,
                "client_secret": created.client_secret,
                "scopes": created.client.scopes,
            }
        )
    )


@tasks_app.command("import")
def tasks_import(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or NDJSON file")
    ],
    queue: Annotated[str, typer.Option(help="Queue id")],
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv or ndjson; else from the name")
    ] = None,
    delimiter: Annotated[str, typer.Option(help="CSV delimiter: , ; tab or |")] = ",",
    all_or_nothing: Annotated[bool, typer.Option(help="Import nothing if a row is bad")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the per-row report (CSV) here")] = None,
) -> None:
    """Import tasks from a file, as the platform; prints the counts and the rejected rows as JSON."""
    import uuid

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from services.work import bulk, imports, kinds
    from services.work.history import Actor
    from services.work.queues import get_queue
    from tenants.scoping import AccessScope, bind

    try:
        queue_id = uuid.UUID(queue)
    except ValueError:
        raise _fail(f"--queue must be a queue id (a UUID), got {queue!r}") from None
    chosen = file_format or {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}.get(file.suffix.lower())
    if chosen not in {"csv", "ndjson"}:
        raise _fail("give --format csv or --format ndjson (the file name does not tell)")
    if delimiter == "tab":
        delimiter = "\t"
    if delimiter not in bulk.DELIMITERS:
        raise _fail(f"--delimiter must be one of , ; tab |, got {delimiter!r}")
    with (
        _platform_session() as session,
        file.open("rb") as source,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress,
    ):
        target = get_queue(session, queue_id)
        bind(session, AccessScope.tenants({target.tenant_id}))
        kind = kinds.require(session, target.tenant_id, target.task_kind)
        bar = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
        summary = bulk.import_records(
            session,
            Actor.system("command line import"),
            target,
            bulk.records(source, bulk.FileFormat(chosen), kind, delimiter),
            bulk.FileFormat(chosen),
            detect_language=True,
            all_or_nothing=all_or_nothing,
            on_batch=lambda _session, _summary: progress.update(bar, completed=source.tell()),
        )
        if all_or_nothing and summary.rejected:
            session.rollback()
    rows = [row.as_json() for row in summary.rows]
    if report is not None:
        report.write_text("".join(imports.report_csv(rows)), encoding="utf-8")
    imported = 0 if all_or_nothing and summary.rejected else summary.accepted
    rejected_rows = [row for row in rows if row["status"] == "rejected"]
    typer.echo(
        json.dumps({"accepted": imported, "rejected": summary.rejected, "rejected_rows": rejected_rows})
    )
    if imported == 0 and summary.rejected:
        raise typer.Exit(code=1)


@demo_app.command("seed")
def demo_seed(as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False) -> None:
    """Create the demo organisations and users (idempotent) and print the logins."""
    from services import demo

    with _platform_session() as session:
        described = demo.seed(session)
    if as_json:
        typer.echo(json.dumps(described))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Demo logins (password: {demo.DEMO_PASSWORD})")
    for column in ("email", "organization", "roles"):
        table.add_column(column)
    for login in described["logins"]:  # type: ignore[attr-defined]
        table.add_row(login["email"], login["organization"], login["roles"])
    Console().print(table)
    typer.echo(json.dumps({"organizations": described["organizations"]}))


@demo_app.command("simulate")
def demo_simulate(
    rounds: Annotated[
        int, typer.Option("--rounds", "--minutes", min=1, max=10_000, help="Rounds of work")
    ] = 10,
) -> None:
    """Play the demo agents: each round every agent goes online, takes their next task and
    works it (some go to the client with a question first); prints what was done."""
    from rich.progress import Progress

    from services import demo_work

    settings = get_settings()
    _ensure_schema(settings)
    database = Database.from_settings(settings)
    try:
        with Progress() as progress:
            bar = progress.add_task("agents at work", total=rounds)
            played = demo_work.simulate(database, rounds, lambda: progress.advance(bar))
    except DomainError as error:
        raise _fail(_describe(error)) from None
    finally:
        database.engine.dispose()
    typer.echo(json.dumps(played.__dict__))


@agent_app.command("create")
def agent_create(
    email: Annotated[str, typer.Option(help="A user of the team's provider who holds the agent role")],
    team: Annotated[str, typer.Option(help="Team id")],
    capacity: Annotated[int, typer.Option(min=0, max=100, help="Open tasks at once, any kind")] = 1,
) -> None:
    """Make a provider's user an agent of one of its teams."""
    import uuid

    from sqlalchemy import select

    from services.demo_work import platform_principal
    from services.identity.models import User
    from services.workforce import agents, teams
    from services.workforce.schemas import AgentCreate

    try:
        team_id = uuid.UUID(team)
    except ValueError:
        raise _fail(f"--team must be a team id (a UUID), got {team!r}") from None
    with _platform_session() as session:
        user_id = session.scalar(select(User.id).where(User.email == email.strip().lower()))
        if user_id is None:
            raise _fail(f"no user {email}")
        found = teams.get_team(session, platform_principal(team_id), team_id)
        created = agents.create_agent(
            session,
            platform_principal(found.tenant_id),
            AgentCreate(user_id=user_id, team_id=found.id, capacity={"*": capacity}),
        )
        result = {"id": str(created.id), "user_id": str(user_id), "team_id": str(found.id)}
    typer.echo(json.dumps(result))


@agent_app.command("remove")
def agent_remove(
    email: Annotated[str, typer.Option(help="The agent's user: who leaves their team")],
) -> None:
    """Remove an agent from their team: tasks given and not started go back to their queues,
    offers are withdrawn; refused while they work a task (hand it over first)."""
    from sqlalchemy import select

    from services.demo_work import platform_principal
    from services.identity.models import User
    from services.routing import departures
    from services.workforce.models import Agent

    with _platform_session() as session:
        found = session.execute(
            select(Agent.id, Agent.tenant_id)
            .join(User, User.id == Agent.user_id)
            .where(User.email == email.strip().lower())
        ).first()
        if found is None:
            raise _fail(f"no agent {email}")
        returned = departures.remove_agent(session, platform_principal(found.tenant_id), found.id)
    typer.echo(json.dumps({"id": str(found.id), "tasks_returned": returned}))


@billing_app.command("close")
def billing_close(
    period: Annotated[str, typer.Option(help="The month to close, YYYY-MM")],
    tenant: Annotated[
        str | None, typer.Option(help="One client's id; default: every client with a contract")
    ] = None,
    finalise: Annotated[
        bool, typer.Option(help="Finalise at once instead of after the grace period")
    ] = False,
) -> None:
    """Close a period by hand: one invoice per client (a draft, or final with --finalise);
    closing again changes nothing that is final. Prints the invoices' ids."""
    import re
    import uuid
    from datetime import timedelta

    from rich.progress import Progress
    from sqlalchemy import select

    from services.billing import periods
    from services.billing.models import Contract
    from services.core.time import PERIOD_PATTERN
    from tenants.scoping import AccessScope, bind

    if not re.match(PERIOD_PATTERN, period):
        raise _fail(f"--period must be a month as YYYY-MM, got {period!r}")
    try:
        wanted = uuid.UUID(tenant) if tenant else None
    except ValueError:
        raise _fail(f"--tenant must be an organisation id (a UUID), got {tenant!r}") from None
    settings = get_settings()
    _ensure_schema(settings)
    database = Database.from_settings(settings)
    try:
        with database.session() as session:
            bind(session, AccessScope.everything())
            clients = [t for t in session.scalars(select(Contract.tenant_id)) if wanted in (None, t)]
        if wanted is not None and not clients:
            raise _fail(f"no contract for client {wanted}")
        started = time.perf_counter()
        with Progress() as progress:
            bar = progress.add_task(f"closing {period}", total=len(clients))
            closed = periods.close_all(
                database,
                [(client, period) for client in clients],
                timedelta(hours=settings.invoice_grace_hours),
                finalise=finalise,
                progress=lambda: progress.advance(bar),
            )
    except DomainError as error:
        raise _fail(_describe(error)) from None
    finally:
        database.engine.dispose()
    for client, why in closed.failures:
        typer.echo(f"error: client {client}: {why}", err=True)
    took = round(time.perf_counter() - started, 3)
    invoices = [str(i) for i in closed.invoices]
    typer.echo(json.dumps({"period": period, "clients": len(clients), "seconds": took, "invoices": invoices}))
    if closed.failures:
        raise typer.Exit(code=1)


def _uvicorn(host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    uvicorn.run(
        "services.api:create_app", factory=True, host=host, port=port, proxy_headers=True, workers=workers
    )


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "services.worker:celery_app", *args]


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when ``bpo serve`` dies, however it dies
    (uvicorn re-raises the signal that stopped it, so a ``finally`` may never run)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run api, worker and beat together (the embedded default needs nothing else)."""
    settings = get_settings()
    _ensure_schema(settings)
    children = [
        subprocess.Popen(
            _celery("worker", "--pool=solo", "--loglevel=INFO", "--hostname=embedded@%h"),
            preexec_fn=_die_with_parent,
        ),
        subprocess.Popen(_celery("beat", "--loglevel=INFO"), preexec_fn=_die_with_parent),
    ]

    def stop_children(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    def watch_children() -> None:
        """A dead worker or beat must not go unnoticed: stop everything, loudly."""
        while all(child.poll() is None for child in children):
            time.sleep(1)
        typer.echo("error: the worker or beat process exited; stopping", err=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_children, daemon=True).start()
    try:
        _uvicorn(host, port)
    finally:
        stop_children()


@app.command()
def api(
    host: str = "0.0.0.0",  # noqa: S104  (a container's api listens on all interfaces)
    port: int = 8000,
    workers: Annotated[int, typer.Option(envvar="WEB_CONCURRENCY", min=1, help="processes; one a core")] = 1,
) -> None:
    """Run the api role only."""
    _uvicorn(host, port, workers)


@app.command()
def worker(concurrency: int = 2) -> None:
    """Run the worker role only."""
    os.execv(sys.executable, _celery("worker", f"--concurrency={concurrency}", "--loglevel=INFO"))


@app.command()
def beat() -> None:
    """Run the beat role only (exactly one per deployment)."""
    os.execv(sys.executable, _celery("beat", "--loglevel=INFO"))


if __name__ == "__main__":
    app()
