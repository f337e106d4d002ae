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
-- The policies read these through scalar sub-selects, which PostgreSQL runs once per
-- statement (an InitPlan) instead of once per row (revision 0005).
CREATE OR REPLACE FUNCTION bpo_all_tenants() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('bpo.all_tenants', true), '') = 'on'
$$;
CREATE OR REPLACE FUNCTION bpo_tenant_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT string_to_array(nullif(current_setting('bpo.tenant_ids', true), ''), ',')::uuid[]
$$;
"""

# Revision 0008: a provider's grants, the (client tenant, queue) pairs it is engaged on.
GRANT_FUNCTIONS = """
CREATE OR REPLACE FUNCTION bpo_grant_tenant_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT string_to_array(nullif(current_setting('bpo.grant_tenant_ids', true), ''), ',')::uuid[]
$$;
CREATE OR REPLACE FUNCTION bpo_grant_queue_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT string_to_array(nullif(current_setting('bpo.grant_queue_ids', true), ''), ',')::uuid[]
$$;
"""

# Revision 0018: the queues of a provider's revoked engagements, and their teams, which keep
# the tasks they hold there.
HELD_FUNCTIONS = """
CREATE OR REPLACE FUNCTION bpo_held_queue_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT string_to_array(nullif(current_setting('bpo.held_queue_ids', true), ''), ',')::uuid[]
$$;
CREATE OR REPLACE FUNCTION bpo_held_team_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT string_to_array(nullif(current_setting('bpo.held_team_ids', true), ''), ',')::uuid[]
$$;
"""
_HELD_QUEUE = "= ANY ((SELECT bpo_held_queue_ids())::uuid[])"

# Revision 0019: an agent's settings carry the agent's id; of a granted queue's tasks, they
# reach those waiting, offered to the agent, or the agent's (``Task.agent_rows``).
AGENT_FUNCTIONS = """
CREATE OR REPLACE FUNCTION bpo_agent_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('bpo.agent_id', true), '')::uuid
$$;
"""
# The tasks an agent's settings reach, over the columns of a task (``{task}``: its alias and
# a dot, or nothing); every task when the settings are not an agent's.
AGENT_TASKS = (
    "((SELECT bpo_agent_id()) IS NULL OR {task}status = 'queued'"
    " OR {task}assignee_id = (SELECT bpo_agent_id()) OR {task}offered_to_id = (SELECT bpo_agent_id()))"
)
_HELD_TEAM = "= ANY ((SELECT bpo_held_team_ids())::uuid[])"


def is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def create_functions() -> None:
    if is_postgres():
        op.execute(FUNCTIONS)


def drop_functions() -> None:
    if is_postgres():
        op.execute(
            "DROP FUNCTION IF EXISTS bpo_tenant_visible(uuid); DROP FUNCTION IF EXISTS bpo_authenticating();"
            " DROP FUNCTION IF EXISTS bpo_all_tenants(); DROP FUNCTION IF EXISTS bpo_tenant_ids();"
        )


def protect(table: str, *, key: str = "tenant_id", identity: bool = False) -> None:
    """Enable and force RLS on ``table``; identity tables are also readable while authenticating."""
    if not is_postgres():
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    _create_policies(table, visible_once(key), identity, "(SELECT bpo_authenticating())")


def visible_once(key: str) -> str:
    """The scope read once per statement: each row then costs one array lookup."""
    return f"((SELECT bpo_all_tenants()) OR {key} = ANY ((SELECT bpo_tenant_ids())::uuid[]))"


def visible_per_row(key: str) -> str:
    """Before revision 0005: the settings parsed again for every row."""
    return f"bpo_tenant_visible({key})"


def protected_tables() -> list[tuple[str, str, bool]]:
    """(table, tenant key, identity table) of every table with tenant policies."""
    rows = op.get_bind().exec_driver_sql(
        "SELECT tablename, qual FROM pg_policies WHERE schemaname = current_schema()"
        " AND policyname = 'tenant_read' ORDER BY tablename"
    )
    return [
        (table, "id" if table == "organizations" else "tenant_id", "bpo_authenticating" in qual)
        for table, qual in rows
    ]


def replace_policies(table: str, key: str, identity: bool, *, once: bool) -> None:
    for name in ("tenant_read", "tenant_insert", "tenant_update", "tenant_delete"):
        op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
    if once:
        _create_policies(table, visible_once(key), identity, "(SELECT bpo_authenticating())")
    else:
        _create_policies(table, visible_per_row(key), identity, "bpo_authenticating()")


def _create_policies(table: str, visible: str, identity: bool, authenticating: str) -> None:
    readable = f"{visible} OR {authenticating}" if identity else visible
    op.execute(f"CREATE POLICY tenant_read ON {table} FOR SELECT USING ({readable})")
    op.execute(f"CREATE POLICY tenant_insert ON {table} FOR INSERT WITH CHECK ({visible})")
    op.execute(f"CREATE POLICY tenant_update ON {table} FOR UPDATE USING ({visible}) WITH CHECK ({visible})")
    op.execute(f"CREATE POLICY tenant_delete ON {table} FOR DELETE USING ({visible})")


def granted(
    table: str,
    reach: str,
    private: tuple[str, str] | None = None,
    *,
    writing: bool = False,
    held: bool = False,
    held_by: str | None = None,
    agent_tasks: str | None = None,
    agent_own: str | None = None,
) -> str:
    """The rows of ``table`` a provider's grants reach (see ``TenantOwned.granted_by``);
    ``private``: (the column naming the provider a reached row is private to, the SQL of
    the rows every grant reads anyway), as ``TenantOwned.grant_private_to`` says. Written
    (``writing``), a row names the writing provider or none: never another provider.
    ``held`` (from revision 0018): the queues of revoked engagements are reached too, for
    the rows their team holds (``held_by``, as ``TenantOwned.held_by``: the column naming
    the team; None, every row of those queues; a task's rows follow the task).
    ``agent_tasks`` (from revision 0019, ``AGENT_TASKS``): the tasks an agent reaches,
    for the tasks themselves and the rows that follow a task; ``agent_own``: the rows of a
    granted tenant an agent reads although their task is not the agent's (their offers)."""
    in_granted_tenant = "tenant_id = ANY ((SELECT bpo_grant_tenant_ids())::uuid[])"
    if reach.startswith("queue:"):
        column = reach.removeprefix("queue:")
        queues = f"{column} = ANY ((SELECT bpo_grant_queue_ids())::uuid[])"
        if held:
            team = f" AND {held_by} {_HELD_TEAM}" if held_by else ""
            queues = f"({queues} OR ({column} {_HELD_QUEUE}{team}))"
        if agent_tasks:
            queues = f"{queues} AND {agent_tasks.format(task='')}"
        reached = f"({in_granted_tenant} AND {queues})"
    elif reach == "task":  # table names are our migrations' own, never input
        queues = "granted_task.queue_id = ANY ((SELECT bpo_grant_queue_ids())::uuid[])"
        if held:
            queues = (
                f"({queues} OR (granted_task.queue_id {_HELD_QUEUE}"
                f" AND granted_task.assigned_team_id {_HELD_TEAM}))"
            )

        def of_tasks(where: str) -> str:
            return (
                f"({in_granted_tenant} AND EXISTS (SELECT 1 FROM tasks AS granted_task"  # noqa: S608
                f" WHERE granted_task.tenant_id = {table}.tenant_id AND granted_task.id = {table}.task_id"
                f" AND {where}))"
            )

        reached = of_tasks(queues)
        if agent_tasks:
            agents = of_tasks(f"{queues} AND {agent_tasks.format(task='granted_task.')}")
            # The task's own policy applies within this sub-select: a row of a task the agent
            # does not reach can only be read by what it says itself (``agent_own``).
            reached = f"({agents} OR ({in_granted_tenant} AND {agent_own}))" if agent_own else agents
    elif reach == "write":
        return f"({in_granted_tenant})"
    else:
        raise ValueError(reach)
    if private is None:
        return reached
    owner, shared = private
    if writing:
        return f"({reached} AND ({owner} IS NULL OR {visible_once(owner)}))"
    return f"({reached} AND ({owner} IS NULL OR {visible_once(owner)} OR {shared}))"


def protect_granted(
    table: str,
    reach: str,
    writes: tuple[str, ...] = ("insert", "update"),
    private: tuple[str, str] | None = None,
    shared_with: str | None = None,
    held: bool = False,
    held_by: str | None = None,
    agent_tasks: str | None = None,
    agent_own: str | None = None,
) -> None:
    """Policies of a table that a provider's grants reach: the rows reached are read, and
    written with ``writes`` ("write": inserted only, never read); deleted never. With
    ``shared_with`` (the column ``private`` names), the provider reads the rows naming it,
    and writes those of the tasks it is granted."""
    for name in ("tenant_read", "tenant_insert", "tenant_update", "tenant_delete"):
        op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
    visible = visible_once("tenant_id")

    def reached(writing: bool) -> str:
        return granted(
            table,
            reach,
            private,
            writing=writing,
            held=held,
            held_by=held_by,
            agent_tasks=agent_tasks,
            agent_own=agent_own,
        )

    writable = f"{visible} OR {reached(True)}"
    if reach == "write":
        readable = visible
    elif shared_with is not None:
        readable = f"{visible} OR {visible_once(shared_with)}"
    else:
        readable = f"{visible} OR {reached(False)}"
    insertable = writable if "insert" in writes else visible
    updatable = writable if "update" in writes else visible
    op.execute(f"CREATE POLICY tenant_read ON {table} FOR SELECT USING ({readable})")
    op.execute(f"CREATE POLICY tenant_insert ON {table} FOR INSERT WITH CHECK ({insertable})")
    op.execute(
        f"CREATE POLICY tenant_update ON {table} FOR UPDATE USING ({updatable}) WITH CHECK ({updatable})"
    )
    op.execute(f"CREATE POLICY tenant_delete ON {table} FOR DELETE USING ({visible})")


def protect_shared(table: str, column: str, *, identity: bool) -> None:
    """Policies of a table whose rows another organisation named in ``column`` reads too
    (an engagement: the client's row, read by the engaged provider)."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    visible = visible_once("tenant_id")
    readable = f"{visible} OR {visible_once(column)}"
    if identity:
        readable += " OR (SELECT bpo_authenticating())"
    op.execute(f"CREATE POLICY tenant_read ON {table} FOR SELECT USING ({readable})")
    op.execute(f"CREATE POLICY tenant_insert ON {table} FOR INSERT WITH CHECK ({visible})")
    op.execute(f"CREATE POLICY tenant_update ON {table} FOR UPDATE USING ({visible}) WITH CHECK ({visible})")
    op.execute(f"CREATE POLICY tenant_delete ON {table} FOR DELETE USING ({visible})")
