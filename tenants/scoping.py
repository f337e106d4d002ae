"""The one scoping mechanism: every ORM query on tenant-owned data goes through here.

A session carries an ``AccessScope`` in ``session.info``. A ``do_orm_execute``
hook adds ``with_loader_criteria`` for every tenant-owned entity of every
SELECT, UPDATE and DELETE; a ``before_flush`` hook refuses writes outside the
scope; an ``after_begin`` hook sets the same scope as transaction-local settings
on PostgreSQL, where row-level security enforces it a second time (see
``infra/postgres`` and the migrations). A session without a scope fails loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Connection, CursorResult, ForeignKey, Select, Uuid, bindparam, event, false, select
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


class TenantOwned:
    """Mixin for every table that holds one tenant's data."""

    # Identity tables (users, clients, tokens...) are readable while authenticating.
    readable_while_authenticating: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # maps the class (DeclarativeBase)
        if "__tablename__" in cls.__dict__:
            _TENANT_CLASSES.append(cls)
            _TENANT_TABLES.add(cls.__table__.name)  # type: ignore[attr-defined]

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )


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
    scope as an ORM query would be: for the reads of every request, where loading an
    entity costs more than the query (a queue by id: 283 µs of CPU as an entity, 112 µs
    as a row). Rows come back as ``Row`` tuples; the session is flushed first."""

    def __init__(self, statement: Select[Any]) -> None:
        froms = statement.get_final_froms()
        table: Any = froms[0] if len(froms) == 1 else None
        if table is None or getattr(table, "name", None) not in _TENANT_TABLES:
            raise ValueError("a ScopedRead selects from exactly one tenant-owned table")
        self._table = table.name
        self._readable_while_authenticating = any(
            cls.readable_while_authenticating
            for cls in _TENANT_CLASSES
            if cls.__tablename__ == table.name  # type: ignore[attr-defined]
        )
        self._every_tenant = statement
        # Typed here: a key column's type is known only once its target is resolved.
        tenants = bindparam(SCOPE_PARAMETER, expanding=True, type_=Uuid())
        self._in_scope = statement.where(table.c.tenant_id.in_(tenants))

    def execute(self, session: Session, parameters: dict[str, Any] | None = None) -> CursorResult[Any]:
        scope = current_scope(session)
        if scope is None:
            raise UnscopedAccess(f"query on {self._table} through a session without an access scope")
        if session.autoflush:
            session.flush()
        connection = session.connection()
        if scope.tenant_ids is None or (scope.authenticating and self._readable_while_authenticating):
            return connection.execute(self._every_tenant, parameters or {})
        tenant_ids = sorted(scope.tenant_ids)  # none while authenticating
        return connection.execute(self._in_scope, {**(parameters or {}), SCOPE_PARAMETER: tenant_ids})


@contextmanager
def narrowed_to(session: Session, tenant_id: uuid.UUID | None) -> Iterator[Session]:
    """Within the block, only ``tenant_id``'s rows (if the scope sees them at all):
    for an operator acting on one tenant's object, e.g. checking a unique reference, or
    a report on one of its tenants. ``None`` leaves the scope as it is."""
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
    session.info[SCOPE_KEY] = AccessScope.tenants({tenant_id} if scope.sees(tenant_id) else set())
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
        outside = {row["tenant_id"] for row in rows} - scope.tenant_ids
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
# Built once: the tenants are a parameter of the execution, not a value captured by the
# lambda, so the option and the compiled statement's cache key are the same for every scope.
_SCOPE_TENANTS: Any = bindparam(SCOPE_PARAMETER, expanding=True)
_IN_SCOPE = loader_criteria(TenantOwned, lambda cls: cls.tenant_id.in_(_SCOPE_TENANTS), include_aliases=True)


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
        return [_IN_SCOPE]
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
        state.statement = state.statement.options(_IN_SCOPE)
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
    tenant_ids = sorted(scope.tenant_ids or ())
    parameters: Any = state.parameters
    if isinstance(parameters, list):
        state.parameters = [{**p, SCOPE_PARAMETER: tenant_ids} for p in parameters]
    else:
        state.parameters = {**(parameters or {}), SCOPE_PARAMETER: tenant_ids}


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
        tenant_id = obj.tenant_id
        if tenant_id is None or not scope.sees(tenant_id):
            raise CrossTenantWrite(f"{type(obj).__name__} of tenant {tenant_id} is outside the scope")


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
    " set_config('bpo.authenticating', %(authenticating)s, true) OFFSET 0) AS settings"
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
