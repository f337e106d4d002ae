"""A routing decision's step holds its notes: the step's name and what the claim adds

A pull decision records the step in force (a name of up to 64 characters) followed by
what bent the order for that claim ("; sticky: case worked before", "; tenant share 2"):
up to 64 characters overflowed on PostgreSQL (a sticky claim of a client sharing a team,
as the demo's Spanish claims do), and the claim failed. The column takes 160.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routing_decisions") as batch_op:
        batch_op.alter_column("step", existing_type=sa.String(64), type_=sa.String(160), existing_nullable=False)


def downgrade() -> None:
    op.execute("UPDATE routing_decisions SET step = substr(step, 1, 64)")
    with op.batch_alter_table("routing_decisions") as batch_op:
        batch_op.alter_column("step", existing_type=sa.String(160), type_=sa.String(64), existing_nullable=False)
