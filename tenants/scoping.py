"""The one scoping mechanism: every ORM query on tenant-owned data goes through here.

A session carries an ``AccessScope`` in ``session.info``: the tenants whose rows it
sees, and, for a provider, the client queues it is engaged on (``granted_queues``):
the tasks of those queues and what hangs off them, and nothing else of those clients.
Each tenant-owned table says which of its rows a grant reaches (``granted_by``), and
which rows another organisation named on them sees (``shared_with``). An agent's grants
(``agent_id``: a provider user who is not a lead) reach fewer rows: the class says which
(``agent_rows``: a queue's tasks waiting, offered to the agent or held by them). A ``do_orm_execute``
hook adds ``with_loader_criteria`` for every tenant-owned entity of every
SELECT, UPDATE and DELETE; a ``before_flush`` hook refuses writes outside the
scope; an ``after_begin`` hook sets the same scope as transaction-local settings
on PostgreSQL, where row-level security enforces it a second time (see
``infra/postgres`` and the migrations). A session without a scope fails loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    Connection,
    CursorResult,
    ForeignKey,
    Select,
    and_,
    bindparam,
    event,
    false,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column
from sqlalchemy.orm import with_loader_criteria as loader_criteria
from sqlalchemy.sql.util import find_tables

from services.core.bulk_rows import CopyRows, copy_rows, copy_to_stage, insert_many
from services.core.database import driver_cursor

SCOPE_KEY = "bpo.access"
DATABASE_SCOPE_KEY = "bpo.access.database"  # the outer scope, within ``narrowed_to``
T = TypeVar("T")


class UnscopedAccess(RuntimeError):
    """A query touched tenant data through a session that has no access scope."""


class CrossTenantWrite(RuntimeError):
    """A flush tried to write a row of a tenant outside the session's scope."""


@dataclass(frozen=True)
class AccessScope:
    # None: every tenant (platform admins, system jobs acting for the platform).
    tenant_ids: frozenset[uuid.UUID] | None
    # True only while a request is being authenticated: identity tables readable.
    authenticating: bool = False
    # (client tenant, queue) pairs a provider is engaged on: their tasks are visible.
    granted_queues: frozenset[tuple[uuid.UUID, uuid.UUID]] = frozenset()
    # (client tenant, queue, team) of engagements revoked: the tasks the team holds (or
    # held) there stay its provider's to read and finish, the others go at once.
    held_queues: frozenset[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = frozenset()
    # An agent's grants (not a lead's, nor an integration's): only the rows each class lets
    # an agent reach (``TenantOwned.agent_rows``) among those the grants reach.
    agent_id: uuid.UUID | None = None

    @property
    def has_grants(self) -> bool:
        return bool(self.granted_queues or self.held_queues)

    @property
    def grant_tenant_ids(self) -> list[uuid.UUID]:
        return sorted({pair[0] for pair in self.granted_queues} | {held[0] for held in self.held_queues})

    @property
    def grant_queue_ids(self) -> list[uuid.UUID]:
        return sorted({queue for _tenant, queue in self.granted_queues})

    @property
    def held_queue_ids(self) -> list[uuid.UUID]:
        return sorted({held[1] for held in self.held_queues})

    @property
    def held_team_ids(self) -> list[uuid.UUID]:
        return sorted({held[2] for held in self.held_queues})

    @classmethod
    def tenants(cls, ids: frozenset[uuid.UUID] | set[uuid.UUID] | list[uuid.UUID]) -> AccessScope:
        return cls(tenant_ids=frozenset(ids))

    @classmethod
    def everything(cls) -> AccessScope:
        return cls(tenant_ids=None)

    @classmethod
    def authentication(cls) -> AccessScope:
        return cls(tenant_ids=frozenset(), authenticating=True)

    @classmethod
    def nothing(cls) -> AccessScope:
        """After a failed authentication: no tenant data at all."""
        return cls(tenant_ids=frozenset())

    def sees(self, tenant_id: uuid.UUID) -> bool:
        return self.tenant_ids is None or tenant_id in self.tenant_ids


# Filled as tenant-owned models are defined; read on every statement, so never walked.
_TENANT_CLASSES: list[type[TenantOwned]] = []
_TENANT_TABLES: set[str] = set()
_TENANT_TABLE_BY_NAME: dict[str, Any] = {}


class TenantOwned:
    """Mixin for every table that holds one tenant's data."""

    # Identity tables (users, clients, tokens...) are readable while authenticating.
    readable_while_authenticating: ClassVar[bool] = False
    # Which rows a provider's grant reaches: "queue:<column>" (the row is of a granted
    # queue, named by that column: queues by id, tasks by queue_id), "task" (the row's
    # task_id is a task of a granted queue: history, comments, attachments), "write" (a
    # grant may insert rows, never read them: the outbox), or None (never: contracts,
    # SLA, webhooks, users...). Row-level security says the same (``services/migrations/rls.py``).
    granted_by: ClassVar[str | None] = None
    # Whether a grant may write the rows it reads (tasks, their history...); not the queue.
    grant_writes: ClassVar[bool] = True
    # A column naming another organisation that also reads the row (an engagement's provider).
    shared_with: ClassVar[str | None] = None
    # Among the providers engaged on one queue, a reached row naming a provider in this column
    # is that provider's alone (an assignment, an offer, an internal note); NULL: every grant's.
    grant_private_to: ClassVar[str | None] = None
    # The column naming the team that holds a row of a "queue:" reach: in a queue whose
    # engagement was revoked (``AccessScope.held_queues``), the team's own rows stay
    # reached. None: a revoked engagement's queue is still read (its name, for those rows).
    held_by: ClassVar[str | None] = None

    @classmethod
    def agent_rows(cls, columns: Any, agent: Any) -> Any:
        """Among the rows a grant reaches, those an agent's grant reaches (``columns``: the
        class or its table's columns; ``agent``: the agent's id as a parameter). None: all
        of them (a queue). A task's rows follow the task; those of a granted tenant this
        names are read too: the agent's own offers, of a task given to a colleague since
        (row security could not read that task to check its queue)."""
        return None

    @classmethod
    def shared_among_grants(cls) -> Any:
        """Reached rows every grant reads although they name a provider (``grant_private_to``):
        none, unless the class says (a comment the client sees is the whole conversation's)."""
        return false()

    @classmethod
    def scope_clause(cls) -> Any:
        """The rows a scope without grants sees (its tenants', and those shared with them)."""
        clause: Any = cls.tenant_id.in_(_SCOPE_TENANTS)
        if cls.shared_with is not None:
            clause = or_(clause, getattr(cls, cls.shared_with).in_(_SCOPE_TENANTS))
        return clause

    @classmethod
    def granted_scope_clause(cls, *, agent: bool = False) -> Any:
        """The rows a scope with grants sees: also those its grants reach (an agent's: see
        ``agent_rows``)."""
        granted = _granted_rows(cls, agent=agent)
        return cls.scope_clause() if granted is None else or_(cls.scope_clause(), granted)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # maps the class (DeclarativeBase)
        if "__tablename__" in cls.__dict__:
            _TENANT_CLASSES.append(cls)
            _TENANT_TABLES.add(cls.__table__.name)  # type: ignore[attr-defined]
            _TENANT_TABLE_BY_NAME[cls.__table__.name] = cls.__table__  # type: ignore[attr-defined]

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )


def _granted_rows(cls: type[TenantOwned], *, agent: bool) -> Any:
    """The rows of ``cls`` that the grants in the parameters reach (an agent's, with
    ``agent``), or None."""
    reach = cls.granted_by
    if reach is None or reach == "write":
        return None
    in_granted_tenant = cls.tenant_id.in_(_GRANT_TENANTS)
    if reach.startswith("queue:"):
        queue = getattr(cls, reach.removeprefix("queue:"))
        held: Any = queue.in_(_HELD_QUEUES)
        if cls.held_by is not None:
            held = and_(held, getattr(cls, cls.held_by).in_(_HELD_TEAMS))
        reached = and_(in_granted_tenant, or_(queue.in_(_GRANT_QUEUES), held))
        agent_rows = cls.agent_rows(cls, _AGENT) if agent else None
        if agent_rows is not None:
            reached = and_(reached, agent_rows)
    elif reach == "task":
        tasks = _TENANT_TABLE_BY_NAME["tasks"]
        task_class = _class_of("tasks")
        granted_tasks = select(tasks.c.id).where(
            tasks.c.tenant_id.in_(_GRANT_TENANTS),
            or_(
                tasks.c.queue_id.in_(_GRANT_QUEUES),
                and_(tasks.c.queue_id.in_(_HELD_QUEUES), tasks.c[str(task_class.held_by)].in_(_HELD_TEAMS)),
            ),
        )
        task_id: Any = cls.task_id  # type: ignore[attr-defined]
        reached = and_(in_granted_tenant, task_id.in_(granted_tasks))
        if agent:  # the agent's tasks' rows, and those that name the agent (their offers)
            own = cls.agent_rows(cls, _AGENT)
            agents_tasks = task_id.in_(granted_tasks.where(task_class.agent_rows(tasks.c, _AGENT)))
            reached = and_(in_granted_tenant, agents_tasks if own is None else or_(agents_tasks, own))
    else:
        raise ValueError(f"{cls.__name__}.granted_by: {reach!r}")
    if cls.grant_private_to is None:
        return reached
    if cls.grant_private_to == cls.shared_with:
        return None  # every row a grant could read names the provider: ``scope_clause`` reads it
    owner = getattr(cls, cls.grant_private_to)
    return and_(reached, or_(owner.is_(None), owner.in_(_SCOPE_TENANTS), cls.shared_among_grants()))


def _class_of(table: str) -> type[TenantOwned]:
    return next(c for c in _TENANT_CLASSES if c.__tablename__ == table)  # type: ignore[attr-defined]


def may_write(scope: AccessScope, cls: type[Any], values: Any) -> bool:
    """Whether ``scope`` may write a row of ``cls`` with these values (an object or a
    dict): its tenants' rows, and rows of a granted queue's tenant in the tables grants
    reach (the queue of a task is checked here, the task of a child row by row security)."""
    tenant_id = values["tenant_id"] if isinstance(values, dict) else values.tenant_id
    if tenant_id is not None and scope.sees(tenant_id):
        return True
    reach = getattr(cls, "granted_by", None)
    if reach is None or not getattr(cls, "grant_writes", True) or tenant_id not in scope.grant_tenant_ids:
        return False
    if reach.startswith("queue:"):
        column = reach.removeprefix("queue:")
        queue = values[column] if isinstance(values, dict) else getattr(values, column)
        if (tenant_id, queue) in scope.granted_queues:
            return True
        held_by = getattr(cls, "held_by", None)
        team = (
            (values[held_by] if isinstance(values, dict) else getattr(values, held_by)) if held_by else None
        )
        return any(held[:2] == (tenant_id, queue) and team == held[2] for held in scope.held_queues)
    private_to = getattr(cls, "grant_private_to", None)
    if private_to is not None:  # a provider writes its own rows, or rows naming none
        owner = values.get(private_to) if isinstance(values, dict) else getattr(values, private_to)
        return owner is None or scope.sees(owner)
    return True


def bind(session: Session, scope: AccessScope) -> Session:
    """Give the session its scope; re-applies the database settings if a transaction is open."""
    session.info[SCOPE_KEY] = scope
    if session.in_transaction():
        _apply_database_settings(session, session.connection(), scope)
    return session


def current_scope(session: Session) -> AccessScope | None:
    return session.info.get(SCOPE_KEY)


def sees(session: Session, tenant_id: uuid.UUID) -> bool:
    """Whether the session's scope sees ``tenant_id``'s rows: for a fact remembered from an
    earlier read (``services.work.known_queues``), decided again for each request."""
    scope = current_scope(session)
    if scope is None:
        raise UnscopedAccess("visibility asked of a session without an access scope")
    return scope.sees(tenant_id)


def fetch(session: Session, model: type[T], object_id: uuid.UUID, *, lock: bool = False) -> T | None:
    """One row by id, through the scope. Unlike ``Session.get``, never answers
    from the identity map, which may hold rows loaded under an earlier scope.
    ``lock`` takes the row for the transaction (``FOR UPDATE``; SQLite writers are serial anyway)."""
    statement = _BY_ID.get((model, lock))
    if statement is None:  # built once per model: building it cost as much as running it
        statement = select(model).where(model.id == bindparam("object_id"))  # type: ignore[attr-defined]
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        _BY_ID[(model, lock)] = statement
    return session.scalars(statement, {"object_id": object_id}).one_or_none()


_BY_ID: dict[tuple[type[Any], bool], Any] = {}


class ScopedRead:
    """A Core SELECT of one tenant-owned table, built once and filtered by the session's
    scope as an ORM query would be (the table's own ``scope_clause``): for the reads of
    every request, where loading an entity costs more than the query (a queue by id:
    283 µs of CPU as an entity, 112 µs as a row). Rows come back as ``Row`` tuples; the
    session is flushed first."""

    def __init__(self, statement: Select[Any]) -> None:
        froms = statement.get_final_froms()
        table: Any = froms[0] if len(froms) == 1 else None
        if table is None or getattr(table, "name", None) not in _TENANT_TABLES:
            raise ValueError("a ScopedRead selects from exactly one tenant-owned table")
        self._table = table.name
        owner = next(cls for cls in _TENANT_CLASSES if cls.__tablename__ == table.name)  # type: ignore[attr-defined]
        self._readable_while_authenticating = owner.readable_while_authenticating
        self._owner = owner
        self._every_tenant = statement
        self._scoped: tuple[Select[Any], Select[Any], Select[Any]] | None = None

    def _statements(self) -> tuple[Select[Any], Select[Any], Select[Any]]:
        """Built at the first read, not at import: a key column's type (the tenant's, which
        the scope's parameter takes) is known only once its target table is resolved."""
        if self._scoped is None:
            self._scoped = (
                self._every_tenant.where(self._owner.scope_clause()),
                self._every_tenant.where(self._owner.granted_scope_clause()),
                self._every_tenant.where(self._owner.granted_scope_clause(agent=True)),
            )
        return self._scoped

    def execute(self, session: Session, parameters: dict[str, Any] | None = None) -> CursorResult[Any]:
        scope = current_scope(session)
        if scope is None:
            raise UnscopedAccess(f"query on {self._table} through a session without an access scope")
        if session.autoflush:
            session.flush()
        connection = session.connection()
        if scope.tenant_ids is None or (scope.authenticating and self._readable_while_authenticating):
            return connection.execute(self._every_tenant, parameters or {})
        in_scope, in_granted_scope, in_agent_scope = self._statements()
        statement = in_scope
        if scope.has_grants:
            statement = in_granted_scope if scope.agent_id is None else in_agent_scope
        return connection.execute(statement, {**(parameters or {}), **_scope_parameters(scope)})


@contextmanager
def narrowed_to(session: Session, tenant_id: uuid.UUID | Collection[uuid.UUID] | None) -> Iterator[Session]:
    """Within the block, only ``tenant_id``'s rows (if the scope sees them at all):
    for an operator acting on one tenant's object, e.g. checking a unique reference, or
    a report on one of its tenants; or on several at once (a batch of a job). ``None``
    leaves the scope as it is."""
    scope = current_scope(session)
    if scope is None:
        raise UnscopedAccess("narrowing a session without an access scope")
    if tenant_id is None:
        yield session
        return
    # Only the ORM criteria narrow: the database settings stay as broad as the outer scope,
    # which row-level security still enforces, and no round trip is spent re-setting them;
    # also when the transaction begins within the block (``_set_database_settings``).
    outer = session.info.setdefault(DATABASE_SCOPE_KEY, scope)
    wanted = {tenant_id} if isinstance(tenant_id, uuid.UUID) else set(tenant_id)
    session.info[SCOPE_KEY] = AccessScope.tenants({t for t in wanted if scope.sees(t)})
    try:
        yield session
    finally:
        session.info[SCOPE_KEY] = scope
        if outer is scope:
            del session.info[DATABASE_SCOPE_KEY]


def insert_rows(
    session: Session,
    model: type[Any],
    rows: list[dict[str, Any]],
    unless_taken: tuple[str, ...] | None = None,
) -> set[uuid.UUID]:
    """Many tenant rows at once (bulk intake), each checked against the scope first; on
    PostgreSQL the insert policy checks them again. The ids inserted (see ``insert_many``)."""
    if not rows:
        return set()
    refuse_rows_outside_scope(session, model, rows)
    return insert_many(session.connection(), model.__table__, rows, unless_taken=unless_taken)


def stage_rows(
    session: Session, model: type[Any], rows: list[dict[str, Any]], formatted: CopyRows | None = None
) -> tuple[str, CopyRows]:
    """PostgreSQL: tenant rows checked against the scope and staged for one statement that
    inserts them, which the insert policy checks again (see ``copy_to_stage``): the
    staging table and the rows as staged. ``formatted``: the same rows, already in
    ``COPY`` format."""
    refuse_rows_outside_scope(session, model, rows)
    staged = formatted or copy_rows(model.__table__, rows)
    return copy_to_stage(session.connection(), staged), staged


def refuse_rows_outside_scope(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Rows about to be inserted by a statement (not ``session.add``) must be of tenants the
    scope sees; row-level security checks them again on PostgreSQL."""
    scope = current_scope(session)
    if scope is None:
        raise UnscopedAccess(f"insert into {model.__tablename__} through a session without an access scope")
    if scope.tenant_ids is not None:
        outside = {row["tenant_id"] for row in rows if not may_write(scope, model, row)}
        if outside:
            raise CrossTenantWrite(
                f"{model.__name__} rows of tenants {sorted(outside)} are outside the scope"
            )


def _touched_tenant_tables(state: ORMExecuteState) -> set[str]:
    """Tenant tables anywhere in the statement: returned, joined, in subqueries or EXISTS."""
    names = {m.local_table.name for m in state.all_mappers if issubclass(m.class_, TenantOwned)}  # type: ignore[attr-defined]
    statement: Any = state.statement
    found = find_tables(statement, include_aliases=True, include_joins=True, include_crud=True)
    return names | ({t.name for t in found} & _TENANT_TABLES)


SCOPE_PARAMETER = "bpo_scope_tenant_ids"
GRANT_TENANTS_PARAMETER = "bpo_grant_tenant_ids"
GRANT_QUEUES_PARAMETER = "bpo_grant_queue_ids"
HELD_QUEUES_PARAMETER = "bpo_held_queue_ids"
HELD_TEAMS_PARAMETER = "bpo_held_team_ids"
AGENT_PARAMETER = "bpo_agent_ids"  # the agent's id, as a list of one
# Built once: the tenants are a parameter of the execution, not a value captured by the
# lambda, so the option and the compiled statement's cache key are the same for every scope.
# Each class answers its own clause (``TenantOwned.scope_clause``): SQLAlchemy calls the
# lambda once per entity class of the statement.
_SCOPE_TENANTS: Any = bindparam(SCOPE_PARAMETER, expanding=True)
_GRANT_TENANTS: Any = bindparam(GRANT_TENANTS_PARAMETER, expanding=True)
_GRANT_QUEUES: Any = bindparam(GRANT_QUEUES_PARAMETER, expanding=True)
_HELD_QUEUES: Any = bindparam(HELD_QUEUES_PARAMETER, expanding=True)
_HELD_TEAMS: Any = bindparam(HELD_TEAMS_PARAMETER, expanding=True)
_AGENT: Any = bindparam(AGENT_PARAMETER, expanding=True)
_IN_SCOPE = loader_criteria(TenantOwned, lambda cls: cls.scope_clause(), include_aliases=True)
_IN_GRANTED_SCOPE = loader_criteria(TenantOwned, lambda cls: cls.granted_scope_clause(), include_aliases=True)
_IN_AGENT_SCOPE = loader_criteria(
    TenantOwned, lambda cls: cls.granted_scope_clause(agent=True), include_aliases=True
)


def _select_criteria(scope: AccessScope) -> Any:
    if not scope.has_grants:
        return _IN_SCOPE
    return _IN_GRANTED_SCOPE if scope.agent_id is None else _IN_AGENT_SCOPE


def _scope_parameters(scope: AccessScope) -> dict[str, Any]:
    parameters: dict[str, Any] = {SCOPE_PARAMETER: sorted(scope.tenant_ids or ())}
    if scope.has_grants:
        parameters[GRANT_TENANTS_PARAMETER] = scope.grant_tenant_ids
        parameters[GRANT_QUEUES_PARAMETER] = scope.grant_queue_ids
        parameters[HELD_QUEUES_PARAMETER] = scope.held_queue_ids
        parameters[HELD_TEAMS_PARAMETER] = scope.held_team_ids
        if scope.agent_id is not None:
            parameters[AGENT_PARAMETER] = [scope.agent_id]
    return parameters


def _criteria(scope: AccessScope, state: ORMExecuteState, touched: set[str]) -> list[Any]:
    """Criteria on the ``TenantOwned`` base apply to every tenant entity wherever it
    appears in the statement (joins, subqueries, bulk UPDATE and DELETE)."""
    if scope.authenticating and state.is_select:
        # Only identity tables are readable while authenticating.
        return [
            loader_criteria(cls, lambda c: false(), include_aliases=True)
            for cls in _TENANT_CLASSES
            if not cls.readable_while_authenticating and cls.__tablename__ in touched  # type: ignore[attr-defined]
        ]
    if state.is_select:
        return [_select_criteria(scope)]
    # A bulk UPDATE or DELETE also evaluates its criteria in Python, on the objects the
    # session holds (synchronize_session): they need the tenants as values, not a parameter.
    ids = tuple(scope.tenant_ids or ())
    return [loader_criteria(TenantOwned, lambda cls: cls.tenant_id.in_(ids), include_aliases=True)]


@event.listens_for(Session, "do_orm_execute")
def _scope_orm_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        # Criteria of the parent statement propagate to these loads; their parameter does not.
        scope = current_scope(state.session)
        if scope is not None and scope.tenant_ids is not None:
            _pass_scope(state, scope)
        return
    scope = current_scope(state.session)
    if scope is not None and scope.tenant_ids is None:
        return  # every tenant
    if scope is not None and not scope.authenticating and state.is_orm_statement and state.is_select:
        # The common case needs no walk of the statement: the criteria apply to whatever
        # tenant entities it holds, and to none if it holds none.
        state.statement = state.statement.options(_select_criteria(scope))
        _pass_scope(state, scope)
        return
    touched = _touched_tenant_tables(state)
    if not touched:
        return
    if scope is None:
        raise UnscopedAccess(
            f"query on {', '.join(sorted(touched))} through a session without an access scope"
        )
    if not (state.is_select or state.is_update or state.is_delete):
        # Statement-level INSERT bypasses the flush check; tenant rows are added with session.add.
        raise CrossTenantWrite(f"statement-level write to {', '.join(sorted(touched))}: use session.add")
    if state.is_update and _sets_tenant_column(state.statement):
        raise CrossTenantWrite("a tenant row's tenant cannot be changed by a bulk UPDATE")
    if not state.is_orm_statement:
        raise UnscopedAccess(
            f"statement on {', '.join(sorted(touched))} that the ORM cannot scope: "
            "select an entity or its columns"
        )
    state.statement = state.statement.options(*_criteria(scope, state, touched))
    _pass_scope(state, scope)


def _pass_scope(state: ORMExecuteState, scope: AccessScope) -> None:
    """The scope's tenants as the parameter of ``_IN_SCOPE``, to this statement and to the
    loads its criteria propagate to (extra parameters are ignored)."""
    scoping = _scope_parameters(scope)
    parameters: Any = state.parameters
    if isinstance(parameters, list):
        state.parameters = [{**p, **scoping} for p in parameters]
    else:
        state.parameters = {**(parameters or {}), **scoping}


def _sets_tenant_column(statement: Any) -> bool:
    values = getattr(statement, "_values", None) or {}
    return any(getattr(key, "key", key) in {"tenant_id"} for key in values)


@event.listens_for(Session, "before_flush")
def _refuse_foreign_writes(session: Session, _context: Any, _instances: Any) -> None:
    changed = [o for o in (*session.new, *session.dirty, *session.deleted) if isinstance(o, TenantOwned)]
    if not changed:
        return
    scope = current_scope(session)
    if scope is None:
        raise UnscopedAccess("write to tenant data through a session without an access scope")
    if scope.tenant_ids is None:
        return
    for obj in changed:
        if obj.tenant_id is None or not may_write(scope, type(obj), obj):
            raise CrossTenantWrite(f"{type(obj).__name__} of tenant {obj.tenant_id} is outside the scope")


@event.listens_for(Session, "after_begin")
def _set_database_settings(session: Session, _transaction: Any, connection: Connection) -> None:
    scope = session.info.get(DATABASE_SCOPE_KEY) or current_scope(session)
    if scope is not None:
        _apply_database_settings(session, connection, scope)


# Written once: building it with ``func.set_config`` on every transaction cost more than the
# round trip itself. The settings are made in a sub-select that PostgreSQL may not merge
# (OFFSET 0), so the configuration epoch is read with them in force.
_SET_SCOPE = (
    "SELECT bpo_config_epoch(%(epoch_tenant)s::uuid) FROM ("
    "SELECT set_config('bpo.tenant_ids', %(tenant_ids)s, true),"
    " set_config('bpo.all_tenants', %(all_tenants)s, true),"
    " set_config('bpo.authenticating', %(authenticating)s, true),"
    " set_config('bpo.grant_tenant_ids', %(grant_tenant_ids)s, true),"
    " set_config('bpo.grant_queue_ids', %(grant_queue_ids)s, true),"
    " set_config('bpo.held_queue_ids', %(held_queue_ids)s, true),"
    " set_config('bpo.held_team_ids', %(held_team_ids)s, true),"
    " set_config('bpo.agent_id', %(agent_id)s, true) OFFSET 0) AS settings"
)
CONFIG_EPOCH_KEY = "bpo.config_epoch"  # (tenant, epoch) as the transaction began


def _apply_database_settings(session: Session, connection: Connection, scope: AccessScope) -> None:
    """Transaction-local settings that the row-level security policies read; and, for a
    scope of one tenant, the tenant's configuration epoch (``config_epoch``)."""
    session.info.pop(CONFIG_EPOCH_KEY, None)
    if connection.dialect.name != "postgresql":
        return
    tenant_ids = "" if scope.tenant_ids is None else ",".join(str(t) for t in sorted(scope.tenant_ids))
    only = (
        next(iter(scope.tenant_ids)) if scope.tenant_ids is not None and len(scope.tenant_ids) == 1 else None
    )
    # Straight to the driver: every transaction runs it, and SQLAlchemy's execution
    # machinery cost more than the round trip (the pool's pre-ping has already checked
    # the connection).
    with driver_cursor(connection) as cursor:
        cursor.execute(
            _SET_SCOPE,
            {
                "tenant_ids": tenant_ids,
                "all_tenants": "on" if scope.tenant_ids is None else "off",
                "authenticating": "on" if scope.authenticating else "off",
                "grant_tenant_ids": ",".join(str(t) for t in scope.grant_tenant_ids),
                "grant_queue_ids": ",".join(str(q) for q in scope.grant_queue_ids),
                "held_queue_ids": ",".join(str(q) for q in scope.held_queue_ids),
                "held_team_ids": ",".join(str(t) for t in scope.held_team_ids),
                "agent_id": "" if scope.agent_id is None else str(scope.agent_id),
                "epoch_tenant": only,
            },
        )
        epoch = cursor.fetchone()[0]
    if epoch is not None:
        session.info[CONFIG_EPOCH_KEY] = (only, epoch)


def config_epoch(session: Session, tenant_id: uuid.UUID) -> int | None:
    """The tenant's configuration epoch as this transaction began, if the session is
    scoped to that tenant alone on PostgreSQL (else None: read, don't cache). A cache
    keyed by it is current: the epoch changes whenever the configuration does, and never
    takes a value twice (migration 0007)."""
    session.connection()  # the transaction has begun: the epoch is this transaction's
    known = session.info.get(CONFIG_EPOCH_KEY)
    return known[1] if known is not None and known[0] == tenant_id else None


def configuration_changed(session: Session) -> None:
    """The session has just changed configuration: its transaction's epoch is stale."""
    session.info.pop(CONFIG_EPOCH_KEY, None)


@contextmanager
def acting_for_tenant(session: Session, tenant_id: uuid.UUID) -> Iterator[Session]:
    """The platform's own bookkeeping on one tenant's rows, set off by a principal who may
    not read them: an agent's transition moves the client's SLA clocks, which the agent's
    scope never sees. Within the block the session (and row security) sees that tenant
    alone; what the block wrote is flushed before the principal's scope comes back, and
    the block hands nothing back to the principal but what its caller returns."""
    scope = current_scope(session)
    if scope is None:
        raise UnscopedAccess("bookkeeping through a session without an access scope")
    outer = session.info.get(DATABASE_SCOPE_KEY)  # within ``narrowed_to``: the database's wider scope
    if scope.sees(tenant_id) and outer is None:
        yield session
        return
    session.flush()  # the principal's own writes are checked against the principal's scope
    session.info.pop(DATABASE_SCOPE_KEY, None)
    bind(session, AccessScope.tenants({tenant_id}))
    try:
        yield session
        session.flush()
    except BaseException:
        # The transaction is failing: the scope comes back without a round trip, which a
        # failed transaction would refuse (and hide the error behind its own).
        session.info[SCOPE_KEY] = scope
        if outer is not None:
            session.info[DATABASE_SCOPE_KEY] = outer
        raise
    session.info[SCOPE_KEY] = scope
    if outer is not None:
        session.info[DATABASE_SCOPE_KEY] = outer
    _apply_database_settings(session, session.connection(), outer or scope)
