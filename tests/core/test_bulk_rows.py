"""Rows formatted for COPY: a value every row has is sent once, as a parameter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, Column, MetaData, String, Table, Uuid

from services.core.bulk_rows import copy_rows
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
    ids = [uuid.uuid4(), uuid.uuid4()]
    rows = [
        {"id": ids[0], "tenant_id": tenant, "text": "a\tb", "meta": {"k": [1]}, "pinned": None, "at": at},
        {"id": ids[1], "tenant_id": tenant, "text": "c\\d", "meta": {"k": [1]}, "pinned": None, "at": at},
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
