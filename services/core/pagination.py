"""Cursor pagination over time-sortable ids: stable order, opaque cursors."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.core.errors import FieldError, ValidationFailed

T = TypeVar("T")
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: uuid.UUID | None


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except ValueError as exc:
        raise ValidationFailed(errors=[FieldError("/cursor", "not a cursor returned by this API")]) from exc


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50, cursor: str | None = None
) -> PageRequest:
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


def fetch_page(
    session: Session, statement: Select[Any], id_column: InstrumentedAttribute[uuid.UUID], page: PageRequest
) -> tuple[Sequence[Any], str | None]:
    """Rows after the cursor in id order, and the cursor of the next page if any."""
    if page.after is not None:
        statement = statement.where(id_column > page.after)
    rows = session.scalars(statement.order_by(id_column).limit(page.limit + 1)).all()
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None
