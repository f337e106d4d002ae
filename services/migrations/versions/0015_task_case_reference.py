"""A task may name the client's case it belongs to (``case_ref``)

A claim, a dossier or a customer's ticket often comes as several tasks. Routing prefers
the agent who already worked a task of the same case (the ``sticky`` term of the push
score), found through the tenant's index on the case.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_HAS_CASE = sa.text("case_ref IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.add_column(sa.Column("case_ref", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_tasks_case_ref",
        "tasks",
        ["tenant_id", "case_ref"],
        postgresql_where=_HAS_CASE,
        sqlite_where=_HAS_CASE,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_case_ref", table_name="tasks")
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_column("case_ref")
