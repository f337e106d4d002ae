"""Row-level security reads the access scope once per statement, not once per row

The policies called ``bpo_tenant_visible(tenant_id)``, which PostgreSQL inlines: every
row parsed the transaction's tenant list again (``string_to_array(...)::uuid[]``). The
policies now compare with ``(SELECT bpo_tenant_ids())``, an uncorrelated sub-select that
PostgreSQL evaluates once per statement (an InitPlan), and that can serve as an index
condition. Same rule, same settings; a bulk import's inserts check three rows a task.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:00:00
"""

from __future__ import annotations

from services.migrations import rls

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not rls.is_postgres():
        return
    rls.create_functions()
    for table, key, identity in rls.protected_tables():
        rls.replace_policies(table, key, identity, once=True)


def downgrade() -> None:
    if not rls.is_postgres():
        return
    for table, key, identity in rls.protected_tables():
        rls.replace_policies(table, key, identity, once=False)
