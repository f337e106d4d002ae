"""Outbox events without a key to their organisation, nor an index of their tenant

The outbox is a transport table: written once for every change, read by id (the
pending index) and joined by id from deliveries. Its key to ``organizations`` checked
the tenant's row, and locked it ``FOR KEY SHARE``, once for every event written: a
tenth to a fifth of the database's time in a bulk import (EXPLAIN of a 5,000-task batch: the
key's trigger took 58 to 63 ms out of 300 to 600), and a row every concurrent writer of the
tenant locks. Nothing reads the outbox by tenant, so its tenant index goes too.
Row-level security is unchanged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch_op:
        batch_op.drop_index("ix_outbox_events_tenant_id")
        batch_op.drop_constraint("fk_outbox_events_tenant_id_organizations", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch_op:
        batch_op.create_foreign_key(
            "fk_outbox_events_tenant_id_organizations", "organizations", ["tenant_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_outbox_events_tenant_id", ["tenant_id"], unique=False)
