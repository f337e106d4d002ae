"""Engine, sessions and the declarative base shared by every context.

Types are chosen so that the same models run on SQLite (embedded default) and
PostgreSQL (production): ``Uuid`` and ``UTCDateTime`` behave the same on both.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Enum,
    MetaData,
    Uuid,
    create_engine,
    event,
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


class Micros(TypeDecorator[Decimal]):
    """An exact decimal with six places, stored as an integer of millionths: SQLite has no
    exact decimal type, and sums of integers are exact on both databases."""

    impl = BigInteger
    cache_ok = True
    PLACES = 6

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value).scaleb(self.PLACES)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value}: at most {self.PLACES} decimal places")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        exact = Decimal(int(value)).scaleb(-self.PLACES)
        return exact.quantize(Decimal(1)) if exact == exact.to_integral_value() else exact.normalize()


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
        self.shares_one_connection = isinstance(bind, Connection)
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

    @property
    def concurrent_writers(self) -> bool:
        """Whether two sessions can write at once: each has its own connection (not
        joined to a test's transaction) and the database allows it (not SQLite)."""
        return not self.shares_one_connection and self.dialect == "postgresql"

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


def driver_cursor(connection: Connection) -> Any:
    """A cursor of the connection's driver (psycopg on PostgreSQL), to use with ``with``:
    for statements on a hot path, where SQLAlchemy's execution machinery costs more than
    the round trip, and for ``COPY``."""
    return connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


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
