"""Rows formatted for COPY: a value every row has is sent once, as a parameter."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from psycopg.errors import StringDataRightTruncation
from sqlalchemy import JSON, Boolean, Column, Connection, MetaData, String, Table, Uuid

from services.core.bulk_rows import FEW_ROWS, copy_rows, insert_many
from services.core.database import UTCDateTime

NOTES = Table(
    "notes",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid),
    Column("text", String),
    Column("meta", JSON),
    Column("pinned", Boolean),
    Column("at", UTCDateTime),
)


def test_values_every_row_shares_are_parameters_and_the_others_copy_text() -> None:
    tenant, at = uuid.uuid4(), datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    ids, meta = [uuid.uuid4(), uuid.uuid4()], {"k": [1]}
    rows = [
        {"id": ids[0], "tenant_id": tenant, "text": "a\tb", "meta": meta, "pinned": None, "at": at},
        {"id": ids[1], "tenant_id": tenant, "text": "c\\d", "meta": meta, "pinned": None, "at": at},
    ]
    copy = copy_rows(NOTES, rows)
    assert copy.columns == ("id", "text")
    assert copy.data == f"{ids[0].hex}\ta\\tb\n{ids[1].hex}\tc\\\\d\n".encode()
    shared_at = copy.shared.pop("at")
    assert shared_at is not None and datetime.fromisoformat(shared_at) == at
    assert copy.shared == {"tenant_id": tenant.hex, "meta": '{"k":[1]}', "pinned": None}
    assert copy.inserted_columns == "id, text, tenant_id, meta, pinned"
    assert copy.selected("stage") == (
        "stage.id, stage.text, CAST(%(shared_tenant_id)s AS UUID), CAST(%(shared_meta)s AS JSON),"
        " CAST(%(shared_pinned)s AS BOOLEAN)"
    )
    assert copy.parameters["shared_meta"] == '{"k":[1]}'


def test_values_equal_but_written_differently_are_not_shared() -> None:
    """1, 1.0 and True are equal in Python; their text is not. JSON is shared only when
    every row holds the same object."""
    tenant = uuid.uuid4()
    rows = [
        {"id": uuid.uuid4(), "tenant_id": tenant, "text": "x", "meta": {"n": 1}, "pinned": True, "at": None},
        {"id": uuid.uuid4(), "tenant_id": tenant, "text": "x", "meta": {"n": 1.0}, "pinned": 1, "at": None},
    ]
    copy = copy_rows(NOTES, rows)
    assert copy.columns == ("id", "meta", "pinned")
    assert set(copy.shared) == {"tenant_id", "text", "at"}
    assert "CAST(%(shared_text)s AS text)" in copy.selected("stage")  # no length: nothing is cut


def test_one_row_is_all_copy_text() -> None:
    row = {
        "id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "text": None,
        "meta": [],
        "pinned": True,
        "at": None,
    }
    copy = copy_rows(NOTES, [row])
    assert copy.shared == {} and copy.columns == tuple(row)
    assert copy.data == f"{row['id'].hex}\t{row['tenant_id'].hex}\t\\N\t[]\tt\t\\N\n".encode()


@pytest.mark.postgres
def test_a_shared_value_too_long_for_its_column_is_refused_and_json_arrives_as_sent(
    connection: Connection, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("COPY staging is PostgreSQL's")
    connection.exec_driver_sql("CREATE TEMP TABLE labels (id uuid PRIMARY KEY, label varchar(5), meta json)")
    labels = Table(
        "labels",
        MetaData(),
        Column("id", Uuid, primary_key=True),
        Column("label", String(5)),
        Column("meta", JSON),
    )
    meta = {"n": 1.0, "big": 123456789012345678901234567890}
    rows = [{"id": uuid.uuid4(), "label": "short", "meta": meta} for _ in range(FEW_ROWS + 10)]
    assert insert_many(connection, labels, rows) == {row["id"] for row in rows}
    stored = connection.exec_driver_sql("SELECT DISTINCT label, meta::text FROM labels").all()
    assert [(label, json.loads(text)) for label, text in stored] == [("short", meta)]
    assert json.loads(stored[0][1])["n"] == 1.0 and isinstance(json.loads(stored[0][1])["n"], float)
    too_long = [{**row, "id": uuid.uuid4(), "label": "too long"} for row in rows]
    with (
        pytest.raises(StringDataRightTruncation),
        connection.begin_nested(),
    ):  # an explicit cast would cut it to "too l"
        insert_many(connection, labels, too_long)
