"""A contract version names the email its invoices are sent to

Stripe collects an invoice by the contract's payment terms: it sends it (``send_invoice``)
to the customer's email, which the sync now gives it from the version in force.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 14:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contract_versions") as batch_op:
        batch_op.add_column(sa.Column("billing_email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contract_versions") as batch_op:
        batch_op.drop_column("billing_email")
