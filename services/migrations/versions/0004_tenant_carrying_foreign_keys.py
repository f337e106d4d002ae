"""Foreign keys that carry the tenant: a task to its queue, a history entry to its task

A task's key to its queue becomes (tenant_id, queue_id) → queues (tenant_id, id), and a
history entry's key to its task (tenant_id, task_id) → tasks (tenant_id, id). They hold
what the single-column keys did not (a task is of its queue's tenant, an entry of its
task's), they are the shape Citus needs (the distribution column in every key), and
each replaces two keys, so a row fires one trigger instead of two. The unique
(tenant_id, id) of tasks also serves as the tenant's index, replacing ix_tasks_tenant_id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:28:52
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch_op:
        batch_op.create_unique_constraint("uq_queues_tenant_id_id", ["tenant_id", "id"])

    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_index("ix_tasks_tenant_id")
        batch_op.create_unique_constraint("uq_tasks_tenant_id_id", ["tenant_id", "id"])
        batch_op.drop_constraint("fk_tasks_queue_id_queues", type_="foreignkey")
        batch_op.drop_constraint("fk_tasks_tenant_id_organizations", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_tasks_tenant_id_queues", "queues", ["tenant_id", "queue_id"], ["tenant_id", "id"],
            ondelete="RESTRICT",
        )  # fmt: skip

    with op.batch_alter_table("task_events") as batch_op:
        batch_op.drop_constraint("fk_task_events_task_id_tasks", type_="foreignkey")
        batch_op.drop_constraint("fk_task_events_tenant_id_organizations", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_task_events_tenant_id_tasks", "tasks", ["tenant_id", "task_id"], ["tenant_id", "id"],
            ondelete="CASCADE",
        )  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("task_events") as batch_op:
        batch_op.drop_constraint("fk_task_events_tenant_id_tasks", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_task_events_tenant_id_organizations", "organizations", ["tenant_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key("fk_task_events_task_id_tasks", "tasks", ["task_id"], ["id"], ondelete="CASCADE")

    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_constraint("fk_tasks_tenant_id_queues", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_tasks_tenant_id_organizations", "organizations", ["tenant_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key("fk_tasks_queue_id_queues", "queues", ["queue_id"], ["id"], ondelete="RESTRICT")
        batch_op.drop_constraint("uq_tasks_tenant_id_id", type_="unique")
        batch_op.create_index("ix_tasks_tenant_id", ["tenant_id"])

    with op.batch_alter_table("queues") as batch_op:
        batch_op.drop_constraint("uq_queues_tenant_id_id", type_="unique")
