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
