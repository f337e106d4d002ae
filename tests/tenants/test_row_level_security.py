"""PostgreSQL's row-level security, the second layer: raw SQL through the
application role sees only the tenants of its settings, and nothing without."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text

from services.core.database import Database
from tests.factories import make_tenant

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres_only(is_postgres: bool) -> None:
    # CI runs the suite a second time on PostgreSQL, where these run.
    if not is_postgres:
        pytest.skip("row-level security needs PostgreSQL (set BPO_TEST_DATABASE_URL)")


def _tenant_tables(connection: Connection) -> dict[str, str]:
    """Every table with a tenant key, and that key (organizations are keyed by id)."""
    rows = connection.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'tenant_id'"
        )
    ).all()
    tables = {name: column for name, column in rows}
    tables["organizations"] = "id"
    return tables


def _set(
    connection: Connection, tenant_ids: str, all_tenants: str = "off", authenticating: str = "off"
) -> None:
    connection.execute(
        text(
            "SELECT set_config('bpo.tenant_ids', :ids, true), set_config('bpo.all_tenants', :all, true),"
            " set_config('bpo.authenticating', :auth, true)"
        ),
        {"ids": tenant_ids, "all": all_tenants, "auth": authenticating},
    )


def test_the_application_role_cannot_bypass_rls_or_own_tables(connection: Connection) -> None:
    role = connection.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    assert role == (False, False)
    owned = connection.execute(
        text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user")
    ).scalar_one()
    assert owned == 0


def test_every_tenant_table_has_forced_rls(connection: Connection) -> None:
    tables = _tenant_tables(connection)
    assert {"users", "api_clients", "access_tokens", "memberships", "web_sessions"} <= set(tables)
    unprotected = (
        connection.execute(
            text(
                "SELECT relname FROM pg_class WHERE relname = ANY(:names) "
                "AND NOT (relrowsecurity AND relforcerowsecurity)"
            ),
            {"names": list(tables)},
        )
        .scalars()
        .all()
    )
    assert unprotected == []


def test_raw_sql_with_tenant_a_settings_sees_no_row_of_tenant_b(connection: Connection, db: Database) -> None:
    a, b = make_tenant(db), make_tenant(db)
    tables = _tenant_tables(connection)
    _set(connection, str(a.organization.id))
    seen_a = 0
    for table, key in tables.items():
        keys = connection.execute(text(f"SELECT {key} FROM {table}")).scalars().all()  # noqa: S608
        assert b.organization.id not in keys, f"{table} shows tenant B's rows"
        assert set(keys) <= {a.organization.id}, f"{table} shows rows of other tenants"
        seen_a += len(keys)
    assert seen_a >= 4  # A's organisation, user, membership and api client are visible to A


def test_raw_sql_without_settings_returns_no_rows(connection: Connection, db: Database) -> None:
    make_tenant(db)
    _set(connection, "")
    for table in _tenant_tables(connection):
        count = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
        assert count == 0, f"{table} answers {count} rows without tenant settings"


def test_writes_for_another_tenant_are_refused(connection: Connection, db: Database) -> None:
    a, b = make_tenant(db), make_tenant(db)
    _set(connection, str(a.organization.id))
    with pytest.raises(Exception, match="row-level security"), connection.begin_nested():
        connection.execute(
            text(
                "INSERT INTO portfolio_assignments (id, tenant_id, account_manager_id, created_at) "
                "SELECT gen_random_uuid(), :b, id, now() FROM users LIMIT 1"
            ),
            {"b": b.organization.id},
        )


def test_authentication_settings_open_identity_tables_only(connection: Connection, db: Database) -> None:
    make_tenant(db)
    _set(connection, "", authenticating="on")
    assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() > 0


def _set_grants(connection: Connection, tenant_ids: str, grant_tenants: str, grant_queues: str) -> None:
    _set(connection, tenant_ids)
    connection.execute(
        text(
            "SELECT set_config('bpo.grant_tenant_ids', :t, true), set_config('bpo.grant_queue_ids', :q, true)"
        ),
        {"t": grant_tenants, "q": grant_queues},
    )


# What a provider's grants reach of a client; every other table with a tenant key stays the client's.
# (and its own engagements, rows of the client shared with the provider they name).
GRANTED_TABLES = {
    "queues",
    "tasks",
    "task_events",
    "task_comments",
    "attachments",
    "task_assignments",
    "engagements",
}


def test_a_providers_grants_read_its_queues_tasks_and_nothing_else_of_the_client(
    connection: Connection, db: Database
) -> None:
    from datetime import timedelta

    from services.core.time import utcnow
    from services.sla import sweep
    from tenants.principal import OrgKind
    from tenants.scoping import AccessScope, bind
    from tests.factories import (
        make_contract,
        make_engagement,
        make_issuing_entity,
        make_policy,
        make_queue,
        make_task,
        make_team,
        make_webhook_endpoint,
        record_usage,
    )

    client = make_tenant(db)
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    make_policy(db, client.organization)
    make_webhook_endpoint(db, client.organization, url="https://hooks.lumiere.example/in")
    make_issuing_entity(db)
    make_contract(db, client.organization, client_vat_number="FR40303265045")
    record_usage(db, client.organization, "task_completed", 1, utcnow())
    served, other = make_queue(db, client.organization), make_queue(db, client.organization)
    make_engagement(db, served, make_team(db, provider.organization))
    granted = make_task(db, served, external_ref="served")
    hidden = make_task(db, other, external_ref="other")
    with db.session() as session:  # a breach: escalations and outbox events of the client
        bind(session, AccessScope.everything())
        sweep.sweep(session, now=utcnow() + timedelta(days=30))
    client_id, provider_id = client.organization.id, provider.organization.id
    _set(connection, str(client_id))  # the client reads its rows: the loop below checks real ones
    owned = {
        table
        for table, key in _tenant_tables(connection).items()
        if client_id in set(connection.execute(text(f"SELECT {key} FROM {table}")).scalars())  # noqa: S608
    }
    assert {"contracts", "contract_versions", "sla_policies", "webhook_endpoints", "usage_events",
            "sla_clocks", "outbox_events"} <= owned, owned  # fmt: skip
    _set_grants(connection, str(provider_id), str(client_id), str(served.id))
    tasks = set(connection.execute(text("SELECT id FROM tasks")).scalars())
    assert granted.id in tasks and hidden.id not in tasks
    events = set(connection.execute(text("SELECT task_id FROM task_events")).scalars())
    assert events == {granted.id}
    for table, key in _tenant_tables(connection).items():
        if table in GRANTED_TABLES:
            continue
        keys = set(connection.execute(text(f"SELECT {key} FROM {table}")).scalars())  # noqa: S608
        assert client_id not in keys, f"{table}: a provider's grants read the client's rows"
    # Its change to a granted task may emit the client's event, which it still cannot read.
    connection.execute(
        text(
            "INSERT INTO outbox_events (id, tenant_id, type, subject_id, data, created_at)"
            " VALUES (gen_random_uuid(), :t, 'task.updated', :s, '{}', now())"
        ),
        {"t": client_id, "s": granted.id},
    )
    assert connection.execute(text("SELECT count(*) FROM outbox_events")).scalar_one() == 0


def test_a_revoked_engagements_team_reads_and_works_only_the_tasks_it_holds(
    connection: Connection, db: Database
) -> None:
    """The database says what the scoping hook says: in a queue whose engagement was
    revoked, the team's held task (and its history) stays readable and writable; the
    queue's other task is neither."""
    from tenants.principal import OrgKind
    from tests.factories import make_engagement, make_queue, make_task, make_team

    client = make_tenant(db)
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    queue = make_queue(db, client.organization)
    team = make_team(db, provider.organization)
    make_engagement(db, queue, team)
    held, other = make_task(db, queue, external_ref="held"), make_task(db, queue, external_ref="other")
    connection.execute(
        text("UPDATE tasks SET assigned_team_id = :team, status = 'in_progress' WHERE id = :id"),
        {"team": team.id, "id": held.id},
    )
    _set_grants(connection, str(provider.organization.id), str(client.organization.id), "")
    connection.execute(
        text("SELECT set_config('bpo.held_queue_ids', :q, true), set_config('bpo.held_team_ids', :t, true)"),
        {"q": str(queue.id), "t": str(team.id)},
    )
    assert set(connection.execute(text("SELECT id FROM tasks")).scalars()) == {held.id}
    assert set(connection.execute(text("SELECT DISTINCT task_id FROM task_events")).scalars()) == {held.id}
    assert connection.execute(text("SELECT count(*) FROM queues")).scalar_one() == 1  # its name, for the task
    for task, changed in ((held, 1), (other, 0)):
        update = connection.execute(text("UPDATE tasks SET title = 'x' WHERE id = :id"), {"id": task.id})
        assert update.rowcount == changed
    connection.execute(
        text("SELECT set_config('bpo.held_team_ids', :t, true)"),
        {"t": str(make_team(db, provider.organization).id)},
    )
    assert list(connection.execute(text("SELECT id FROM tasks")).scalars()) == []  # another team's: not held


def test_a_grant_writes_no_task_of_a_queue_it_does_not_serve(connection: Connection, db: Database) -> None:
    from tenants.principal import OrgKind
    from tests.factories import make_engagement, make_queue, make_task, make_team

    client = make_tenant(db)
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    served, other = make_queue(db, client.organization), make_queue(db, client.organization)
    make_engagement(db, served, make_team(db, provider.organization))
    mine, hidden = make_task(db, served), make_task(db, other)
    _set_grants(connection, str(provider.organization.id), str(client.organization.id), str(served.id))
    changed = connection.execute(text("UPDATE tasks SET title = 'x' WHERE id = :id"), {"id": hidden.id})
    assert changed.rowcount == 0
    with pytest.raises(Exception, match="row-level security"), connection.begin_nested():
        connection.execute(
            text("UPDATE tasks SET queue_id = :other WHERE id = :id"), {"other": other.id, "id": mine.id}
        )
    with pytest.raises(Exception, match="row-level security"), connection.begin_nested():
        connection.execute(
            text(
                "INSERT INTO task_events (id, tenant_id, task_id, at, kind, actor_kind, actor_name, changes,"
                " internal)"
                " VALUES (gen_random_uuid(), :t, :task, now(), 'commented', 'user', '', '{}', false)"
            ),
            {"t": client.organization.id, "task": hidden.id},
        )


def test_a_grant_neither_creates_tasks_nor_changes_the_queue(connection: Connection, db: Database) -> None:
    from tenants.principal import OrgKind
    from tests.factories import make_engagement, make_queue, make_team

    client = make_tenant(db)
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    served = make_queue(db, client.organization)
    make_engagement(db, served, make_team(db, provider.organization))
    _set_grants(connection, str(provider.organization.id), str(client.organization.id), str(served.id))
    assert (
        connection.execute(
            text("UPDATE queues SET name = 'taken over' WHERE id = :id"), {"id": served.id}
        ).rowcount
        == 0
    )
    with pytest.raises(Exception, match="row-level security"), connection.begin_nested():
        connection.execute(
            text(
                "INSERT INTO tasks (id, tenant_id, queue_id, title, payload, kind_name, kind_version,"
                " priority, status, revision, created_at, updated_at) VALUES (gen_random_uuid(), :t, :q,"
                " 'x', '{}', 'support_ticket', 1, 'normal', 'queued', 1, now(), now())"
            ),
            {"t": client.organization.id, "q": served.id},
        )


def test_an_agents_settings_read_the_waiting_tasks_and_their_own_never_a_colleagues(
    connection: Connection, db: Database
) -> None:
    """The database says what ``Task.agent_rows`` says: with an agent's id in the settings,
    a served queue's waiting task, the agent's own and the one offered to them are read
    (with their history); a colleague's task in progress is not, nor its history; the
    agent's own offer is read after the task went to the colleague; a lead's settings (no
    agent id) read them all."""
    from tenants.principal import OrgKind
    from tests.factories import make_agent, make_engagement, make_queue, make_task, make_team

    client = make_tenant(db)
    provider = make_tenant(db, OrgKind.PROVIDER, country="RO")
    queue = make_queue(db, client.organization)
    team = make_team(db, provider.organization)
    make_engagement(db, queue, team)
    me, colleague = make_agent(db, provider.organization, team), make_agent(db, provider.organization, team)
    waiting, mine, offered, theirs = (make_task(db, queue, external_ref=ref) for ref in "wmot")
    for task, holder in ((mine, me), (theirs, colleague)):
        connection.execute(
            text(
                "UPDATE tasks SET assignee_id = :agent, assigned_team_id = :team, status = 'in_progress'"
                " WHERE id = :id"
            ),
            {"agent": holder.id, "team": team.id, "id": task.id},
        )
    connection.execute(
        text("UPDATE tasks SET offered_to_id = :agent, status = 'offered' WHERE id = :id"),
        {"agent": me.id, "id": offered.id},
    )
    connection.execute(  # my offer of the task my colleague took since
        text(
            "INSERT INTO offers (id, tenant_id, task_id, agent_id, team_id, provider_id, status, offered_at,"
            " expires_at) VALUES (gen_random_uuid(), :t, :task, :agent, :team, :p, 'rejected', now(), now())"
        ),
        {"t": client.organization.id, "task": theirs.id, "agent": me.id, "team": team.id,
         "p": provider.organization.id},
    )  # fmt: skip
    _set_grants(connection, str(provider.organization.id), str(client.organization.id), str(queue.id))
    connection.execute(text("SELECT set_config('bpo.agent_id', :a, true)"), {"a": str(me.id)})
    reached = {waiting.id, mine.id, offered.id}
    assert set(connection.execute(text("SELECT id FROM tasks")).scalars()) == reached
    assert set(connection.execute(text("SELECT DISTINCT task_id FROM task_events")).scalars()) == reached
    assert set(connection.execute(text("SELECT task_id FROM offers")).scalars()) == {theirs.id}
    assert (
        connection.execute(text("UPDATE tasks SET title = 'x' WHERE id = :id"), {"id": theirs.id}).rowcount
        == 0
    )
    with pytest.raises(Exception, match="row-level security"), connection.begin_nested():
        connection.execute(
            text(
                "INSERT INTO task_events (id, tenant_id, task_id, at, kind, actor_kind, actor_name, changes,"
                " internal)"
                " VALUES (gen_random_uuid(), :t, :task, now(), 'commented', 'user', '', '{}', false)"
            ),
            {"t": client.organization.id, "task": theirs.id},
        )
    connection.execute(text("SELECT set_config('bpo.agent_id', '', true)"))  # a team lead's
    assert set(connection.execute(text("SELECT id FROM tasks")).scalars()) == reached | {theirs.id}
