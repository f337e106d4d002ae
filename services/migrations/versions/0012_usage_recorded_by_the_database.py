"""Usage events stamped by the database as they are inserted

An invoice covers the usage recorded up to its cut-off. On PostgreSQL ``recorded_at`` is now
the database's clock when the row is inserted (a trigger; whatever the writer sent), and a
finalising close takes a SHARE lock on the ledger before it reads its cut-off from the same
clock (``billing.close``): the lock waits for the inserts in flight, which the close then
reads, and holds new ones until it commits, which are then stamped after the cut-off and
land on the next invoice. Before, an event stamped by the application before a finalising
close, but committed after the close had read, fell between two invoices. SQLite
serialises its writers (BEGIN IMMEDIATE): there ingest and close read the clock once their
write transaction has begun.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:20:00
"""

from __future__ import annotations

from alembic import op

from services.migrations import rls

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if rls.is_postgres():
        op.execute(
            "CREATE FUNCTION bpo_usage_recorded_now() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN NEW.recorded_at := clock_timestamp(); RETURN NEW; END $$;"
            " CREATE TRIGGER usage_events_recorded_now BEFORE INSERT ON usage_events"
            " FOR EACH ROW EXECUTE FUNCTION bpo_usage_recorded_now();"
        )


def downgrade() -> None:
    if rls.is_postgres():
        op.execute(
            "DROP TRIGGER usage_events_recorded_now ON usage_events; DROP FUNCTION bpo_usage_recorded_now();"
        )
