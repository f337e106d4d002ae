"""An agent's assignments, indexed by agent and time

A claim reads the cases of the agent's last few assignments (stickiness in pull): the
index on ``agent_id`` alone made it read and sort all of an agent's assignments.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_task_assignments_agent_id", table_name="task_assignments")
    op.create_index(
        "ix_task_assignments_agent_id_assigned_at", "task_assignments", ["agent_id", "assigned_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_task_assignments_agent_id_assigned_at", table_name="task_assignments")
    op.create_index("ix_task_assignments_agent_id", "task_assignments", ["agent_id"])
