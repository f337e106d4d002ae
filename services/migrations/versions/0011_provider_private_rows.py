"""Rows private to one provider among those engaged on a queue

Two providers may serve one client queue. Each reads the queue's tasks, their history,
the conversation with the client and the attachments; neither reads the other's
assignments and offers, internal notes and internal history entries, nor the names of the
other's people. History entries and comments name the provider organisation of the person
who wrote them (``provider_id``; backfilled from the users and API clients), and the
policies of the four tables a grant reaches check it (``TenantOwned.grant_private_to``).
A provider reads its own assignments as it reads its teams (``shared_with``: counting them
is how fairness between tenants is kept, and needs no look at the task).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.migrations import rls

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# (table, reach, writes, private, shared with) as ``TenantOwned.granted_by``,
# ``grant_private_to`` and ``shared_with`` say.
PRIVATE = (
    ("task_events", "task", ("insert",), ("provider_id", "NOT internal"), None),
    ("task_comments", "task", ("insert",), ("provider_id", "visibility = 'client'"), None),
    ("task_assignments", "task", ("insert", "update"), ("provider_id", "false"), "provider_id"),
    ("offers", "task", ("update",), ("provider_id", "false"), None),
)


def upgrade() -> None:
    for table in ("task_events", "task_comments"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("provider_id", sa.Uuid(), nullable=True))
    if rls.is_postgres():  # the backfill reads and writes every tenant's rows
        op.execute("SELECT set_config('bpo.all_tenants', 'on', true)")
    for table, side, kind, person in (
        ("task_events", "actor_side", "actor_kind", "actor_id"),
        ("task_comments", "author_side", "author_kind", "author_id"),
    ):
        for accounts, account_kind in (("users", "user"), ("api_clients", "api_client")):
            op.execute(
                f"UPDATE {table} SET provider_id = (SELECT tenant_id FROM {accounts}"  # noqa: S608
                f" WHERE {accounts}.id = {table}.{person})"
                f" WHERE {side} = 'provider' AND {kind} = '{account_kind}'"
            )
    if rls.is_postgres():
        op.execute("SELECT set_config('bpo.all_tenants', 'off', true)")
        for table, reach, writes, private, shared_with in PRIVATE:
            rls.protect_granted(table, reach, writes, private, shared_with)


def downgrade() -> None:
    if rls.is_postgres():
        for table, reach, writes, _private, _shared in PRIVATE:
            rls.protect_granted(table, reach, writes)
    for table in ("task_events", "task_comments"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("provider_id")
