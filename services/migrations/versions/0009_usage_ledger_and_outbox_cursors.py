"""The usage ledger, a cursor per outbox consumer, and tasks' work segments

The outbox had one reader (the webhook relay set ``dispatched_at``); now each consumer
keeps its own cursor (``notify.consumers``). On PostgreSQL each event carries the id of
the transaction that wrote it (``commit_order``, a column default, so raw SQL sets it
too); consumers read in that order. The webhooks' cursor starts after the events already
dispatched; metering's at the start of the outbox, so every past event is metered.

Usage events are never updated or deleted (PostgreSQL refuses both, but for the
cascade of a deleted tenant).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:32:04.571008
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

import services.core.database
from services.migrations import rls


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TRANSACTION_ORDER = "(pg_current_xact_id()::text)::bigint"
IMMUTABLE_LEDGER = """
CREATE OR REPLACE FUNCTION bpo_refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A tenant's deletion cascades here from a referential trigger (depth 2); nothing else may.
  IF pg_trigger_depth() > 1 THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'usage events are immutable: record a reversal instead'
    USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER usage_events_immutable BEFORE UPDATE OR DELETE ON usage_events
  FOR EACH ROW EXECUTE FUNCTION bpo_refuse_ledger_change();
"""


def upgrade() -> None:
    postgres = rls.is_postgres()
    op.create_table('outbox_cursors',
    sa.Column('consumer', sa.String(length=32), nullable=False),
    sa.Column('after_order', sa.BigInteger(), nullable=False),
    sa.Column('after_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('consumer', name=op.f('pk_outbox_cursors'))
    )
    op.create_table('usage_events',
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', services.core.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=True),
    sa.Column('task_kind', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('out_of_hours', sa.Boolean(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('reverses_id', sa.Uuid(), nullable=True),
    sa.Column('unit_price', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['organizations.id'], name=op.f('fk_usage_events_tenant_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_events')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name=op.f('uq_usage_events_tenant_id_idempotency_key'))
    )
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_events_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_usage_events_tenant_id_occurred_at', ['tenant_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_usage_events_tenant_id_recorded_at', ['tenant_id', 'recorded_at'], unique=False)
    rls.protect('usage_events')
    if postgres:
        op.execute(IMMUTABLE_LEDGER)

    if postgres:
        op.execute(f"ALTER TABLE outbox_events ADD COLUMN commit_order bigint DEFAULT {TRANSACTION_ORDER}")
    else:
        with op.batch_alter_table('outbox_events', schema=None) as batch_op:
            batch_op.add_column(sa.Column('commit_order', sa.BigInteger(), nullable=True))
    _seed_cursors(postgres)
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_events_pending', postgresql_where=sa.text('dispatched_at IS NULL'), sqlite_where=sa.text('dispatched_at IS NULL'))
        batch_op.create_index('ix_outbox_events_commit_order_id', ['commit_order', 'id'], unique=False)
        batch_op.drop_column('dispatched_at')

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('working_since', services.core.database.UTCDateTime(timezone=True), nullable=True))


def _seed_cursors(postgres: bool) -> None:
    """Webhooks go on after what the relay dispatched; metering reads everything."""
    order = "commit_order" if postgres else "rowid"
    last = op.get_bind().execute(
        sa.text(f"SELECT {order}, id FROM outbox_events WHERE dispatched_at IS NOT NULL ORDER BY id DESC LIMIT 1")  # noqa: S608
    ).first()
    cursors = sa.table(
        'outbox_cursors',
        sa.column('consumer', sa.String), sa.column('after_order', sa.BigInteger),
        sa.column('after_id', sa.Uuid), sa.column('updated_at', services.core.database.UTCDateTime()),
    )
    from services.core.time import utcnow

    nil = uuid.UUID(int=0)
    webhooks = (int(last[0]), uuid.UUID(str(last[1]))) if last else (0, nil)
    op.bulk_insert(cursors, [
        {"consumer": "webhooks", "after_order": webhooks[0], "after_id": webhooks[1], "updated_at": utcnow()},
        {"consumer": "metering", "after_order": 0, "after_id": nil, "updated_at": utcnow()},
    ])


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('working_since')

    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispatched_at', services.core.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_index('ix_outbox_events_commit_order_id')
        batch_op.create_index('ix_outbox_events_pending', ['id'], unique=False, postgresql_where=sa.text('dispatched_at IS NULL'), sqlite_where=sa.text('dispatched_at IS NULL'))
    op.execute("UPDATE outbox_events SET dispatched_at = created_at")  # the relay had sent them
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_column('commit_order')

    if rls.is_postgres():
        op.execute("DROP TRIGGER IF EXISTS usage_events_immutable ON usage_events")
        op.execute("DROP FUNCTION IF EXISTS bpo_refuse_ledger_change()")
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_events_tenant_id_recorded_at')
        batch_op.drop_index('ix_usage_events_tenant_id_occurred_at')
        batch_op.drop_index(batch_op.f('ix_usage_events_tenant_id'))

    op.drop_table('usage_events')
    op.drop_table('outbox_cursors')
