"""Many rows of one table inserted at once: ``COPY`` into a staging table on PostgreSQL.

``COPY`` straight into a table under row-level security is refused, so rows are
``COPY``-ed into a temporary table shaped like theirs and inserted from there by one
``INSERT ... SELECT``, which the insert policy checks like any insert. About five times
faster than executemany or ``unnest()`` of arrays, whose values psycopg adapts one by
one in Python (bench/intake.py).

A column whose value is the same in every row (a batch's tenant, queue, kind, status...)
is not written once a row: it is one parameter of the statement that inserts, so
neither Python nor the server formats and parses it thousands of times.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Enum, Float, Numeric, String, Table, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from services.core.database import Micros, driver_cursor

FEW_ROWS = 50  # up to this, one INSERT of several rows: staging costs four round trips


@dataclass(frozen=True)
class CopyRows:
    """Rows of one table in ``COPY``'s text format, ready to send. Formatting is plain
    Python that needs no connection, so bulk intake does it while the batch before is
    being written."""

    table: Table
    columns: tuple[str, ...]  # the columns written a row at a time in ``data``
    data: bytes
    shared: dict[str, str | None]  # column -> the text of the value every row has

    @property
    def inserted_columns(self) -> str:
        return ", ".join((*self.columns, *self.shared))

    def selected(self, stage: str) -> str:
        """The select list that gives ``inserted_columns`` from ``stage``: the staged
        columns, then each shared value, a parameter cast to its column's type."""
        casts = [
            f"CAST(%({_parameter_name(name)})s AS {_sql_type(self.table.c[name])})" for name in self.shared
        ]
        return ", ".join([*(f"{stage}.{name}" for name in self.columns), *casts])

    @property
    def parameters(self) -> dict[str, str | None]:
        return {_parameter_name(name): text for name, text in self.shared.items()}


def copy_rows(table: Table, rows: list[dict[str, Any]]) -> CopyRows:
    """``rows`` (all with the same keys) in ``COPY ... FROM STDIN`` text format, the values
    every row shares apart (for more than one row)."""
    names = tuple(rows[0])
    shared: dict[str, str | None] = {}
    if len(rows) > 1:
        for name in names:
            if _same_in_every_row([row[name] for row in rows], table.c[name]):
                first = rows[0][name]
                shared[name] = None if first is None else _text_of(table.c[name])(first)
    varying = tuple(name for name in names if name not in shared)
    formats = [_copy_text(table.c[name]) for name in varying]
    values_of = itemgetter(*varying) if len(varying) > 1 else (lambda row: (row[varying[0]],))
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
    return CopyRows(table, varying, "\n".join(lines).encode(), shared)


def _same_in_every_row(values: list[Any], column: Column[Any]) -> bool:
    """Equal is not enough where equal values write differently (1, 1.0 and True; the JSON
    that holds them): JSON must be the same object, any other value of the same type."""
    first = values[0]
    if isinstance(column.type, JSON):
        return all(value is first for value in values)
    # list.count compares by identity first: a value the rows share is usually one object
    return values.count(first) == len(values) and all(type(value) is type(first) for value in values)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_text(column: Column[Any]) -> Callable[[Any], str]:
    """How a column's (not None) Python value is written as COPY text: its text, escaped
    where it may hold a backslash, tab or line break (strings and JSON)."""
    text_of = _text_of(column)
    if isinstance(column.type, JSON):
        return lambda value: text_of(value).replace("\\", "\\\\")  # JSON text has no raw breaks
    if _python_type(column) is str and not isinstance(column.type, Enum):
        return lambda value: text_of(value).translate(_COPY_ESCAPES)
    return text_of


def _text_of(column: Column[Any]) -> Callable[[Any], str]:
    """A column's (not None) Python value as the text PostgreSQL reads back to it."""
    if isinstance(column.type, JSON):
        return _json_text
    if isinstance(column.type, Micros):  # the integer of millionths the column stores
        stored, dialect = column.type.process_bind_param, postgresql.dialect()
        return lambda value: str(stored(value, dialect))
    python_type = _python_type(column)
    if python_type is bool:
        return lambda value: "t" if value else "f"
    if python_type is datetime:
        return datetime.isoformat
    if python_type is uuid.UUID:
        return _uuid_text
    if python_type is int:
        return str
    return _plain_text  # strings, enums, other numbers (repr-exact)


def _python_type(column: Column[Any]) -> type:
    try:
        return column.type.python_type
    except NotImplementedError:
        return str


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


def _parameter_name(column: str) -> str:
    return f"shared_{column}"


def _sql_type(column: Column[Any]) -> str:
    """The type a shared value is cast to. Text and numbers without their length or scale:
    an explicit cast would cut or round them, where the insert's own must refuse them."""
    if isinstance(column.type, String | Enum):
        return "text"
    if isinstance(column.type, Numeric) and not isinstance(column.type, Float):
        return "numeric"
    return str(column.type.compile(dialect=postgresql.dialect()))


def copy_to_stage(connection: Connection, rows: CopyRows) -> str:
    """PostgreSQL: ``rows`` ``COPY``-ed into a temporary table shaped like theirs, emptied
    at commit; its name, for one statement that inserts from it (``rows.selected``).
    The caller empties it (``TRUNCATE``) before staging again in the same transaction."""
    stage = f"bpo_stage_{rows.table.name}"
    # Its columns without their NOT NULL: a shared column is left empty here.
    shaped = f"SELECT * FROM {rows.table.name} WITH NO DATA"  # noqa: S608
    with driver_cursor(connection) as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS {shaped}")
        with cursor.copy(f"COPY {stage} ({', '.join(rows.columns)}) FROM STDIN") as copy:
            copy.write(rows.data)
    return stage


def insert_many(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    unless_taken: tuple[str, ...] | None = None,
) -> set[uuid.UUID]:
    """Many rows at once; the ids of the rows inserted. With ``unless_taken`` (the columns
    of a unique constraint), rows whose key is taken are skipped, not an error: the
    constraint's index decides, so this holds under concurrency and costs a lookup a row."""
    if not rows:
        return set()
    if connection.dialect.name != "postgresql" or (unless_taken is None and len(rows) <= FEW_ROWS):
        return _insert_each(connection, table, rows, unless_taken)
    copy = copy_rows(table, rows)
    stage = copy_to_stage(connection, copy)
    insert = f"INSERT INTO {table.name} ({copy.inserted_columns}) SELECT {copy.selected(stage)} FROM {stage}"  # noqa: S608
    with driver_cursor(connection) as cursor:
        if unless_taken:
            cursor.execute(
                f"{insert} ON CONFLICT ({', '.join(unless_taken)}) DO NOTHING RETURNING id", copy.parameters
            )
            inserted = {row[0] for row in cursor.fetchall()}
        else:
            cursor.execute(insert, copy.parameters)
            inserted = {row["id"] for row in rows}
        cursor.execute(f"TRUNCATE {stage}")  # the next batch of the same transaction starts empty
    return inserted


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
