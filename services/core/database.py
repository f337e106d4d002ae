"""Engine, sessions and the declarative base shared by every context.

Types are chosen so that the same models run on SQLite (embedded default) and
PostgreSQL (production): ``Uuid`` and ``UTCDateTime`` behave the same on both.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Enum,
    MetaData,
    Table,
    Uuid,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from services.core.ids import new_id
from services.core.settings import Settings
from services.core.time import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite stores it without an offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware values only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


def str_enum(enum_class: type[enum.StrEnum], length: int = 32) -> Enum:
    """Store an enum by its value ("client"), the same string the API speaks."""
    return Enum(enum_class, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def affected_rows(result: object) -> int:
    """Rows touched by a bulk UPDATE or DELETE (``Result`` types omit ``rowcount``)."""
    return int(getattr(result, "rowcount", 0) or 0)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, **kwargs: Any) -> Engine:
    """``pool_size``: the connections a process keeps open; up to ``max_overflow`` more are
    opened and closed per use when more requests need one at once. Such churn starts a
    PostgreSQL backend per use: at 8 requests at once on a pool of 5 it cost 2.4 ms of CPU
    a request, a pool of 10 brought it to 0.9 ms (bench/intake.py)."""
    if not is_sqlite(url):
        kwargs.setdefault("pool_pre_ping", True)
        if "poolclass" not in kwargs:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
        return create_engine(url, **kwargs)
    # SQLite: api, worker and beat write from separate processes, so WAL, a busy
    # timeout and BEGIN IMMEDIATE (a deferred transaction that later writes fails
    # at once with "database is locked" instead of waiting). pysqlite's own
    # transaction handling is switched off so that BEGIN and SAVEPOINT behave.
    connect_args = {"check_same_thread": False, "timeout": 30, "isolation_level": None}
    kwargs.setdefault("poolclass", NullPool)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """One engine and its session factory; built once per process."""

    def __init__(self, url: str, *, bind: Engine | Connection | None = None, **engine_options: Any) -> None:
        self.url = url
        self.engine: Engine = (
            make_engine(url, **engine_options)
            if bind is None
            else (bind if isinstance(bind, Engine) else bind.engine)
        )
        session_kwargs: dict[str, Any] = {"expire_on_commit": False}
        if isinstance(bind, Connection):
            # Tests: every session joins the test's outer transaction via savepoints.
            session_kwargs["join_transaction_mode"] = "create_savepoint"
        self.sessions = sessionmaker(bind=bind or self.engine, **session_kwargs)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.resolved_database_url(),
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on error."""
        session = self.sessions()
        try:
            yield session
        except BaseException:
            discard(session)
            raise
        finish(session)


def finish(session: Session) -> None:
    """Commit and close a unit of work (rolled back if the commit fails)."""
    try:
        session.commit()
    except BaseException:
        discard(session)
        raise
    session.close()


def discard(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


FEW_ROWS = 50  # up to this, one INSERT of several rows: staging costs four round trips


def insert_many(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    unless_taken: tuple[str, ...] | None = None,
) -> set[uuid.UUID]:
    """Many rows at once; the ids of the rows inserted. With ``unless_taken`` (the columns
    of a unique constraint), rows whose key is taken are skipped, not an error: the
    constraint's index decides, so this holds under concurrency and costs a lookup a row.

    On PostgreSQL: ``COPY`` into a temporary staging table, then one ``INSERT ... SELECT``,
    which row-level security checks like any insert (``COPY`` straight into a table under
    RLS is refused). About five times faster than executemany or ``unnest()`` of arrays,
    whose values psycopg adapts one by one in Python (bench/intake.py)."""
    if not rows:
        return set()
    if connection.dialect.name != "postgresql" or (unless_taken is None and len(rows) <= FEW_ROWS):
        return _insert_each(connection, table, rows, unless_taken)
    stage, listed = copy_to_stage(connection, copy_rows(table, rows))
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    insert = f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM {stage}"  # noqa: S608
    if unless_taken:
        cursor.execute(f"{insert} ON CONFLICT ({', '.join(unless_taken)}) DO NOTHING RETURNING id")
        inserted = {row[0] for row in cursor.fetchall()}
    else:
        cursor.execute(insert)
        inserted = {row["id"] for row in rows}
    cursor.execute(f"TRUNCATE {stage}")  # the next batch of the same transaction starts empty
    return inserted


@dataclass(frozen=True)
class CopyRows:
    """Rows of one table in ``COPY``'s text format, ready to send. Formatting is plain
    Python that needs no connection, so bulk intake does it while the batch before is
    being written."""

    table: Table
    columns: tuple[str, ...]
    data: bytes


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def copy_rows(table: Table, rows: list[dict[str, Any]]) -> CopyRows:
    """``rows`` (all with the same keys) in ``COPY ... FROM STDIN`` text format."""
    names = tuple(rows[0])
    formats = [_copy_text(table.c[name]) for name in names]
    values_of = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    lines = [
        "\t".join(
            [
                "\\N" if value is None else text_of(value)
                for value, text_of in zip(values_of(row), formats, strict=True)
            ]
        )
        for row in rows
    ]
    lines.append("")
    return CopyRows(table, names, "\n".join(lines).encode())


def _copy_text(column: Column[Any]) -> Callable[[Any], str]:
    """How a column's (not None) Python value is written as COPY text, escaped where its
    text may hold a backslash, tab or line break (strings and JSON)."""
    if isinstance(column.type, JSON):
        return lambda value: _json_text(value).replace("\\", "\\\\")  # JSON text has no raw breaks
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    if python_type is bool:
        return lambda value: "t" if value else "f"
    if python_type is datetime:
        return datetime.isoformat
    if python_type is str and not isinstance(column.type, Enum):
        return lambda value: str(value).translate(_COPY_ESCAPES)
    if python_type is uuid.UUID:
        return _uuid_text
    if python_type is int:
        return str
    return _plain_text  # enums, other numbers (repr-exact): nothing to escape


def _uuid_text(value: Any) -> str:
    """32 hex digits, which PostgreSQL reads as a UUID: a third of the cost of ``str``."""
    return value.hex if isinstance(value, uuid.UUID) else str(value)


def _json_text(value: Any) -> str:
    """orjson, several times faster, unless an integer is past its 64 bits."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _plain_text(value: Any) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def copy_to_stage(connection: Connection, rows: CopyRows) -> tuple[str, str]:
    """PostgreSQL: ``rows`` ``COPY``-ed into a temporary table shaped like theirs, emptied
    at commit; its name and the columns filled, for one statement that inserts from it.
    The caller empties it (``TRUNCATE``) before staging again in the same transaction."""
    stage = f"bpo_stage_{rows.table.name}"
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {rows.table.name} INCLUDING DEFAULTS)"
        " ON COMMIT DELETE ROWS"
    )
    listed = ", ".join(rows.columns)
    with cursor.copy(f"COPY {stage} ({listed}) FROM STDIN") as copy:
        copy.write(rows.data)
    return stage, listed


def _insert_each(
    connection: Connection, table: Table, rows: list[dict[str, Any]], unless_taken: tuple[str, ...] | None
) -> set[uuid.UUID]:
    if unless_taken is None:
        connection.execute(table.insert(), rows)
        return {row["id"] for row in rows}
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    statement = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(unless_taken))
    connection.execute(statement, rows)
    ids = [row["id"] for row in rows]
    return set(connection.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())
