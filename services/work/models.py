"""Queues, task kinds, tasks and what hangs off a task (history, comments, attachments)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    or_,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.core.database import Base, IdMixin, TimestampMixin, str_enum
from services.core.time import utcnow
from tenants.scoping import TenantOwned


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class QueueMode(enum.StrEnum):
    PULL = "pull"  # agents ask for their next task
    PUSH = "push"  # the platform offers each task to an agent


class TaskStatus(enum.StrEnum):
    NEW = "new"
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CLIENT = "waiting_on_client"
    WAITING_ON_THIRD_PARTY = "waiting_on_third_party"  # a supplier, an insurer, an authority...
    ESCALATED = "escalated"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class LanguageSource(enum.StrEnum):
    CLIENT = "client"  # given with the task
    DETECTED = "detected"
    UNDETERMINED = "undetermined"  # too little text for a confident answer


class CommentVisibility(enum.StrEnum):
    CLIENT = "client"  # seen by the client and the provider
    INTERNAL = "internal"  # provider and operator only


class TaskKind(IdMixin, TenantOwned, Base):
    """A kind a client defined itself; built-in kinds live in code (``kinds.py``)."""

    __tablename__ = "task_kinds"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)

    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    json_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Queue(IdMixin, TenantOwned, TimestampMixin, Base):
    __tablename__ = "queues"
    # (tenant_id, id): the key of the tasks' foreign key, which so holds a task to its queue's tenant.
    __table_args__ = (UniqueConstraint("tenant_id", "name"), UniqueConstraint("tenant_id", "id"))
    granted_by = "queue:id"  # an engaged provider reads the queue it serves
    grant_writes = False  # and never shapes it

    name: Mapped[str] = mapped_column(String(200))
    task_kind: Mapped[str] = mapped_column(String(64))
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    skills: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    residency_allow: Mapped[list[str]] = mapped_column(JSON, default=list)
    residency_deny: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_priority: Mapped[Priority] = mapped_column(str_enum(Priority, 16), default=Priority.NORMAL)
    out_of_hours: Mapped[bool] = mapped_column(default=False)
    mode: Mapped[QueueMode] = mapped_column(str_enum(QueueMode, 8), default=QueueMode.PULL)
    accepted_attachment_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # How routing picks agents: {"min_language_level", "offer_timeout_seconds", ...}
    # (``services.routing.policy``); {} is the platform's defaults.
    routing_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# The states in which a task counts against its agent's capacity, and their index's predicate.
HELD_STATUSES = (
    TaskStatus.ASSIGNED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.WAITING_ON_CLIENT,
    TaskStatus.WAITING_ON_THIRD_PARTY,
)
HELD_PREDICATE = f"status IN ({', '.join(repr(status.value) for status in HELD_STATUSES)})"


class Task(IdMixin, TenantOwned, TimestampMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # Foreign keys that carry the tenant (as Citus needs): a task belongs to a queue of its
        # own tenant, and its history to it; one trigger a row each instead of two.
        ForeignKeyConstraint(
            ["tenant_id", "queue_id"], ["queues.tenant_id", "queues.id"], ondelete="RESTRICT"
        ),
        UniqueConstraint("tenant_id", "id"),  # also the tenant's index (tenant_id leads it)
        UniqueConstraint("tenant_id", "external_ref"),
        Index("ix_tasks_tenant_id_queue_id_status", "tenant_id", "queue_id", "status"),
        Index(
            "ix_tasks_case_ref",
            "tenant_id",
            "case_ref",
            postgresql_where=text("case_ref IS NOT NULL"),
            sqlite_where=text("case_ref IS NOT NULL"),
        ),
        # The worker's language detection finds its work here, never by scanning tasks.
        # Agents' next task: each queue's queued tasks in the order routing takes them.
        Index(
            "ix_tasks_queued_rank",
            "queue_id",
            "rank_at",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # The tasks each agent holds (capacity), never those they finished.
        Index(
            "ix_tasks_held",
            "assignee_id",
            "kind_name",
            postgresql_where=text(HELD_PREDICATE),
            sqlite_where=text(HELD_PREDICATE),
        ),
        Index(
            "ix_tasks_language_pending",
            "id",
            postgresql_where=text("language_source IS NULL"),
            sqlite_where=text("language_source IS NULL"),
        ),
    )

    granted_by = "queue:queue_id"  # a provider engaged on the queue works its tasks
    held_by = "assigned_team_id"  # and keeps those its team holds once the engagement is revoked

    @classmethod
    def agent_rows(cls, columns: Any, agent: Any) -> Any:
        """An agent reaches the tasks waiting in the queue, offered to them, or theirs (held,
        or worked to an end: the assignee stays on a resolved or escalated task)."""
        return or_(
            columns.status == TaskStatus.QUEUED,
            columns.assignee_id.in_(agent),
            columns.offered_to_id.in_(agent),
        )

    # The tenant through the queue: see the foreign key above (its organisation is the queue's).
    tenant_id: Mapped[uuid.UUID] = mapped_column()
    queue_id: Mapped[uuid.UUID]
    external_ref: Mapped[str | None] = mapped_column(String(200))
    # The client's case (claim, dossier, customer ticket) several tasks may belong to:
    # routing prefers the agent who worked the case before (``routing.scoring``).
    case_ref: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    kind_name: Mapped[str] = mapped_column(String(64))
    kind_version: Mapped[int] = mapped_column(Integer)
    priority: Mapped[Priority] = mapped_column(str_enum(Priority, 16))
    status: Mapped[TaskStatus] = mapped_column(str_enum(TaskStatus, 32), default=TaskStatus.NEW)
    language: Mapped[str | None] = mapped_column(String(16))
    language_confidence: Mapped[float | None] = mapped_column(Float)
    language_source: Mapped[LanguageSource | None] = mapped_column(
        str_enum(LanguageSource, 16)
    )  # None: pending
    created_by: Mapped[uuid.UUID | None]
    # Set by an SLA escalation: routing may then offer the task beyond its usual teams.
    overflow_since: Mapped[datetime | None]
    # Its place in the queue: arrival moved earlier by its priority (``work.ranking``).
    rank_at: Mapped[datetime | None]
    # Since when it has been in progress (None otherwise): each segment of work ends in the
    # status event that leaves the state, with its length (handle time, billed by metering).
    working_since: Mapped[datetime | None]
    # Who holds it (``services.routing``): the agent and team of its open assignment.
    assignee_id: Mapped[uuid.UUID | None]
    assigned_team_id: Mapped[uuid.UUID | None]
    # The agent it is offered to (push), while it is: their offer lets them read it.
    offered_to_id: Mapped[uuid.UUID | None]
    # Optimistic concurrency: the ETag; SQLAlchemy also checks it on every flush.
    revision: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": revision}


class TaskEvent(IdMixin, TenantOwned, Base):
    """One entry of a task's append-only history."""

    __tablename__ = "task_events"
    granted_by = "task"
    grant_private_to = "provider_id"  # an internal entry of a provider's person is its alone
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "task_id"], ["tasks.tenant_id", "tasks.id"], ondelete="CASCADE"),
        Index("ix_task_events_task_id_id", "task_id", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(index=True)  # its task's: see the foreign key
    task_id: Mapped[uuid.UUID]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))  # created, updated, transitioned, commented, attached
    actor_kind: Mapped[str] = mapped_column(String(16))  # user, api_client, system
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    # The name a provider's person goes by with clients, as the provider chose it then
    # ("": none, the client reads that the provider acted).
    actor_public_name: Mapped[str] = mapped_column(String(80), default="", server_default="")
    # client, provider, operator, system: a client is not shown a provider's people
    actor_side: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str | None] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    internal: Mapped[bool] = mapped_column(default=False)  # hidden from the client
    # The provider organisation of the person who acted (None: the client, operator, system):
    # another provider engaged on the queue reads neither their name nor their internal entries.
    provider_id: Mapped[uuid.UUID | None]

    @classmethod
    def shared_among_grants(cls) -> Any:
        return cls.internal.is_(False)


class TaskComment(IdMixin, TenantOwned, Base):
    __tablename__ = "task_comments"
    granted_by = "task"
    grant_private_to = "provider_id"  # a provider's internal note is its alone
    __table_args__ = (Index("ix_task_comments_task_id_id", "task_id", "id"),)

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    visibility: Mapped[CommentVisibility] = mapped_column(str_enum(CommentVisibility, 16))
    author_kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[uuid.UUID | None]
    author_name: Mapped[str] = mapped_column(String(200), default="")
    author_public_name: Mapped[str] = mapped_column(
        String(80), default="", server_default=""
    )  # as on TaskEvent
    author_side: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[uuid.UUID | None]  # the author's provider organisation (as on TaskEvent)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @classmethod
    def shared_among_grants(cls) -> Any:
        return cls.visibility == CommentVisibility.CLIENT


class Attachment(IdMixin, TenantOwned, Base):
    __tablename__ = "attachments"
    granted_by = "task"
    __table_args__ = (Index("ix_attachments_task_id_id", "task_id", "id"),)

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    uploaded_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(IdMixin, TenantOwned, Base):
    """The first answer to a POST with an ``Idempotency-Key``, replayed for retries."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", "endpoint"),
        Index("ix_idempotency_records_expires_at", "expires_at"),
    )

    key: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(String(200))  # method and route template
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    response_headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ImportStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ImportJob(IdMixin, TenantOwned, Base):
    """A large bulk file, imported by a worker; its per-row results are kept as a blob."""

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_status_created_at", "status", "created_at"),)

    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    file_format: Mapped[str] = mapped_column(String(16))  # csv, ndjson
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    all_or_nothing: Mapped[bool] = mapped_column(default=False)
    status: Mapped[ImportStatus] = mapped_column(str_enum(ImportStatus, 16), default=ImportStatus.PENDING)
    source_key: Mapped[str] = mapped_column(String(200))
    result_parts: Mapped[int] = mapped_column(Integer, default=0)  # report blobs, one per committed batch
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[uuid.UUID | None]
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]  # progress of a running job; silence means its worker died
    finished_at: Mapped[datetime | None]
