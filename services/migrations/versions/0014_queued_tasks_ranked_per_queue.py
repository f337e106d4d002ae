"""Queued tasks are ranked per queue: the claim probes each queue the agent serves

``ix_tasks_queued_rank`` becomes ``(queue_id, rank_at, id)`` where queued. Ranked across
all queues, an agent whose queues rank late walked past every other queue's tasks to find
its own (about 196,000 rows for one claim in a backlog of 1,000,000); ranked per queue, the
claim reads the first few entries of each queue it serves, whatever the backlog. The push
sweep reads per queue too.

The index is built inside the migrations' one transaction (``env.py``), not
``CONCURRENTLY``: on a backlog of 1,000,000 it takes a few seconds, during which intake
waits.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.drop_index("ix_tasks_queued_rank", table_name="tasks")
    op.create_index(
        "ix_tasks_queued_rank",
        "tasks",
        ["queue_id", "rank_at", "id"],
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_queued_rank", table_name="tasks")
    op.create_index(
        "ix_tasks_queued_rank", "tasks", ["rank_at", "id"], postgresql_where=_QUEUED, sqlite_where=_QUEUED
    )
