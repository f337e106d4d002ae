"""``Idempotency-Key`` on POST: the same key and body replay the first answer,
the same key with another body is a conflict. Records live at least a day."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.core.database import affected_rows
from services.core.errors import Conflict, FieldError, ValidationFailed
from services.core.time import utcnow
from services.work.models import IdempotencyRecord
from tenants.principal import Principal
from tenants.scoping import narrowed_to

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: str
    headers: dict[str, str]


def fingerprint(body: Any) -> str:
    """Of the request as understood (canonical JSON), so spacing or key order do not matter."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            errors=[FieldError("/headers/Idempotency-Key", f"1 to {MAX_KEY_LENGTH} printable characters")]
        )


def replay(
    session: Session, principal: Principal, key: str, endpoint: str, request_hash: str
) -> StoredAnswer | None:
    """The stored answer for this key, None if the key is new; a conflict if the body differs."""
    check_key(key)
    with narrowed_to(session, principal.org_id):
        record = session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.key == key,
                IdempotencyRecord.endpoint == endpoint,
            )
        ).first()
    if record is None:
        return None
    if record.expires_at <= utcnow():  # not purged yet: the key is free again
        session.delete(record)
        session.flush()
        return None
    if record.request_hash != request_hash:
        raise Conflict(
            "this Idempotency-Key was used with another request body",
            errors=[FieldError("/headers/Idempotency-Key", "reused with a different body")],
        )
    return StoredAnswer(record.status_code, record.response_body, record.response_headers)


def remember(
    session: Session,
    principal: Principal,
    key: str,
    endpoint: str,
    request_hash: str,
    answer: StoredAnswer,
    ttl_seconds: int,
) -> None:
    """Stored in the transaction of the change itself: both are kept, or neither."""
    session.add(
        IdempotencyRecord(
            tenant_id=principal.org_id,
            key=key,
            endpoint=endpoint,
            request_hash=request_hash,
            status_code=answer.status_code,
            response_body=answer.body,
            response_headers=answer.headers,
            expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        )
    )


def purge_expired(session: Session) -> int:
    return affected_rows(
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= utcnow()))
    )
