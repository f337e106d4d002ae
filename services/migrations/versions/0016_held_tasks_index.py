"""The tasks an agent holds, indexed by agent and kind

Every claim counts the open tasks its agent holds per kind (capacity). The index on
``assignee_id`` also kept every task the agent ever resolved, so an agent's thousandth
resolved task made each claim walk the thousand; this one keeps only the held tasks
(assigned, in progress, waiting on the client or a third party).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 17:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_HELD = sa.text("status IN ('assigned', 'in_progress', 'waiting_on_client', 'waiting_on_third_party')")
_ASSIGNED = sa.text("assignee_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_tasks_assignee_id", table_name="tasks")
    op.create_index(
        "ix_tasks_held", "tasks", ["assignee_id", "kind_name"], postgresql_where=_HELD, sqlite_where=_HELD
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_held", table_name="tasks")
    op.create_index(
        "ix_tasks_assignee_id", "tasks", ["assignee_id"], postgresql_where=_ASSIGNED, sqlite_where=_ASSIGNED
    )
