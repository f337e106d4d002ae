"""An agent's name as clients read it, if the provider shows one

``agents.public_name`` is the name (a first name, an alias) that a provider chooses to
show its clients on what the agent writes and does; none by default, as before. Comments
and history entries record the name shown when they were written
(``author_public_name``, ``actor_public_name``): renaming an agent later does not rewrite
what the client read.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("public_name", sa.String(80), nullable=True))
    op.add_column("task_events", sa.Column("actor_public_name", sa.String(80), nullable=False, server_default=""))
    op.add_column(
        "task_comments", sa.Column("author_public_name", sa.String(80), nullable=False, server_default="")
    )


def downgrade() -> None:
    op.drop_column("task_comments", "author_public_name")
    op.drop_column("task_events", "actor_public_name")
    op.drop_column("agents", "public_name")
