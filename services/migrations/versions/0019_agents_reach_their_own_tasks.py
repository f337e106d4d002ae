"""An agent reaches the waiting tasks of their team's queues and their own, not a colleague's

Before, an agent's grants reached every task of the queues their team serves, a colleague's
task in progress included. Now an agent's settings carry the agent's id (``bpo.agent_id``;
team leads, provider admins and integrations carry none), and of a granted queue's tasks
they reach those queued, offered to the agent (``tasks.offered_to_id``, new: set while the
task is offered) or whose assignee is the agent (held, or worked to an end). The rows
that follow a task (history, conversation, attachments, assignments, offers) follow it, as
``tenants.scoping`` does (``Task.agent_rows``); an agent also reads their own offers of a
task given to another agent since (``Offer.agent_rows``), so that a late accept is told the
offer expired.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.migrations import rls

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# (table, reach, writes, private, shared with, held by) as revision 0018 left them.
GRANTED = (
    ("queues", "queue:id", (), None, None, None),
    ("tasks", "queue:queue_id", ("update",), None, None, "assigned_team_id"),
    ("task_events", "task", ("insert",), ("provider_id", "NOT internal"), None, None),
    ("task_comments", "task", ("insert",), ("provider_id", "visibility = 'client'"), None, None),
    ("attachments", "task", ("insert",), None, None, None),
    ("task_assignments", "task", ("insert", "update"), ("provider_id", "false"), "provider_id", None),
    ("offers", "task", ("update",), ("provider_id", "false"), None, None),
)


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.add_column(sa.Column("offered_to_id", sa.Uuid(), nullable=True))
    if rls.is_postgres():  # the backfill reads and writes every tenant's rows
        op.execute("SELECT set_config('bpo.all_tenants', 'on', true)")
    op.execute(
        "UPDATE tasks SET offered_to_id = (SELECT agent_id FROM offers WHERE offers.tenant_id = tasks.tenant_id"
        " AND offers.task_id = tasks.id AND offers.status = 'pending') WHERE status = 'offered'"
    )
    if rls.is_postgres():
        op.execute("SELECT set_config('bpo.all_tenants', 'off', true)")
        op.execute(rls.AGENT_FUNCTIONS)
        for table, reach, writes, private, shared_with, held_by in GRANTED:
            rls.protect_granted(
                table,
                reach,
                writes,
                private,
                shared_with,
                held=True,
                held_by=held_by,
                agent_tasks=None if table == "queues" else rls.AGENT_TASKS,
                agent_own="agent_id = (SELECT bpo_agent_id())" if table == "offers" else None,
            )


def downgrade() -> None:
    if rls.is_postgres():
        for table, reach, writes, private, shared_with, held_by in GRANTED:
            rls.protect_granted(table, reach, writes, private, shared_with, held=True, held_by=held_by)
        op.execute("DROP FUNCTION IF EXISTS bpo_agent_id();")
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_column("offered_to_id")
