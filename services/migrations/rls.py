"""Row-level security for tenant-owned tables (PostgreSQL only).

The policies read transaction-local settings set by ``tenants.scoping`` at the
start of every transaction. ``FORCE`` makes them apply to the owning role too,
so a deployment that (wrongly) connects as the owner still cannot leak.
"""

from __future__ import annotations

from alembic import op

FUNCTIONS = """
CREATE OR REPLACE FUNCTION bpo_tenant_visible(tenant uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('bpo.all_tenants', true), '') = 'on'
      OR tenant = ANY (string_to_array(nullif(current_setting('bpo.tenant_ids', true), ''), ',')::uuid[])
$$;
CREATE OR REPLACE FUNCTION bpo_authenticating() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('bpo.authenticating', true), '') = 'on'
$$;
"""


def is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def create_functions() -> None:
    if is_postgres():
        op.execute(FUNCTIONS)


def drop_functions() -> None:
    if is_postgres():
        op.execute(
            "DROP FUNCTION IF EXISTS bpo_tenant_visible(uuid); DROP FUNCTION IF EXISTS bpo_authenticating();"
        )


def protect(table: str, *, key: str = "tenant_id", identity: bool = False) -> None:
    """Enable and force RLS on ``table``; identity tables are also readable while authenticating."""
    if not is_postgres():
        return
    visible = f"bpo_tenant_visible({key})"
    readable = f"{visible} OR bpo_authenticating()" if identity else visible
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_read ON {table} FOR SELECT USING ({readable})")
    op.execute(f"CREATE POLICY tenant_insert ON {table} FOR INSERT WITH CHECK ({visible})")
    op.execute(f"CREATE POLICY tenant_update ON {table} FOR UPDATE USING ({visible}) WITH CHECK ({visible})")
    op.execute(f"CREATE POLICY tenant_delete ON {table} FOR DELETE USING ({visible})")
