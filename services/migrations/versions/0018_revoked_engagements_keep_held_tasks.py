"""A revoked engagement leaves its team the tasks it holds

Revoking an engagement takes the queue's tasks away from the provider at once, except
those its team holds (``tasks.assigned_team_id``): the agent finishes what they started,
and the history, conversation and attachments of those tasks stay readable. The provider's
settings name the queues of its revoked engagements and their teams
(``bpo.held_queue_ids``, ``bpo.held_team_ids``), and the policies of the tables a grant
reaches read them, as ``tenants.scoping`` does (``AccessScope.held_queues``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 20:20:00
"""

from __future__ import annotations

from alembic import op

from services.migrations import rls

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# (table, reach, writes, private, shared with, held by) as the models say today (0008, 0011).
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
    if rls.is_postgres():
        op.execute(rls.HELD_FUNCTIONS)
        for table, reach, writes, private, shared_with, held_by in GRANTED:
            rls.protect_granted(table, reach, writes, private, shared_with, held=True, held_by=held_by)


def downgrade() -> None:
    if rls.is_postgres():
        for table, reach, writes, private, shared_with, _held in GRANTED:
            rls.protect_granted(table, reach, writes, private, shared_with)
        op.execute("DROP FUNCTION IF EXISTS bpo_held_queue_ids(); DROP FUNCTION IF EXISTS bpo_held_team_ids();")
