"""Usage events in, by the batch (``POST /v1/usage-events``): every event checked and
answered on its own, the good ones recorded by one statement unless their key is taken.

Built for throughput (``bench/usage_ingest.py``, a ratio against a bare ``COPY``):

- what billing knows of the batch's clients (``service.RULES``) is read once for all of
  them, two queries a batch rather than five for each client it names;
- one pass over an event builds its row, its body hash (``service.row``'s, written
  straight in sorted key order rather than sorted by orjson) and, on PostgreSQL, its line
  of ``COPY`` text, handed to ``stage_rows`` as formatted; what every row of a batch has
  (when it was recorded, who sent it) is a parameter of the insert, not a column staged;
- the insert answers the ids it refused (usually none), not the thousand it took;
- a batch's ids come from one read of the system's randomness (``_new_ids``):
  ``os.urandom`` lets go of the GIL, and a request that does so once an id waits behind
  its worker's other request a thousand times (1,000 ``new_id`` take 1.5 ms alone,
  180 ms beside a busy thread);
- the answer is written by orjson from dataclasses (``BatchAnswer``) in the shape of
  ``schemas.UsageBatchOut``, which documents it, rather than a model built and
  serialised for every event.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from services.core.bulk_rows import CopyRows
from services.core.database import Micros, driver_cursor
from services.core.ids import new_id
from services.core.settings import Settings
from services.core.time import month_of, utcnow
from services.metering.models import UsageEvent
from services.metering.schemas import Adjustment, EventError, UsageEventIn
from services.metering.service import (
    BUILTIN_METRICS,
    RESERVED_KEYS,
    UNIQUE_KEY,
    Terms,
    require_reporter,
    terms_of,
)
from tenants.models import Organization
from tenants.principal import OrgKind, Principal
from tenants.scoping import fetch, insert_rows, stage_rows


@dataclass(slots=True)
class EventAnswer:
    """One event's answer, as ``schemas.EventResult`` (the same fields, in its order)."""

    index: int
    status: str  # accepted, duplicate or rejected
    id: uuid.UUID | None = None
    errors: list[EventError] | None = None
    adjustment: Adjustment | None = None


@dataclass(slots=True)
class BatchAnswer:
    """The batch's answer, as ``schemas.UsageBatchOut``."""

    results: list[EventAnswer]
    accepted: int
    duplicates: int
    rejected: int

    def json(self) -> bytes:
        return orjson.dumps(self, default=_model)


def _model(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(type(value).__name__)


def ingest(session: Session, principal: Principal, settings: Settings, events: list[Any]) -> BatchAnswer:
    """Every event answered on its own: accepted, duplicate (the same key and body as one
    recorded before), or rejected with the fields at fault. Good events are recorded even
    when others in the batch are not."""
    require_reporter(principal)
    # Stamped once the transaction has begun: on SQLite (BEGIN IMMEDIATE) it then holds the
    # write lock, so a close cannot finalise between the stamp and the insert. (PostgreSQL
    # stamps every row itself: migration 0012.)
    session.connection()
    horizon = utcnow() + timedelta(seconds=settings.usage_future_tolerance_seconds)
    batch = _Batch(session, principal, horizon, copying=session.get_bind().dialect.name == "postgresql")
    batch.ids = iter(_new_ids(len(events)))
    answers: list[EventAnswer | None] = [None] * len(events)
    rows: dict[int, dict[str, Any]] = {}
    batch.read_clients(events)
    originals = _originals(session, events)
    batch.reversed_by = _reversals_of(session, list(originals.values()))
    for index, raw in enumerate(events):
        outcome = _checked(batch, index, raw, originals)
        if isinstance(outcome, EventAnswer):
            answers[index] = outcome
        else:
            rows[index] = outcome
    _record(batch, rows, answers)
    done = [answer for answer in answers if answer is not None]
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for answer in done:
        counts[answer.status] += 1
    return BatchAnswer(done, counts["accepted"], counts["duplicate"], counts["rejected"])


_TAIL = (1 << 62) - 1
_VARIANT = 0b10 << 62


def _new_ids(count: int) -> list[uuid.UUID]:
    """``count`` UUIDv7 in increasing order, from one read of randomness: the millisecond
    and sequence of one ``new_id`` (so they sort after every id the process took before
    and before every one it takes next), then 62 random bits each."""
    head = new_id().int >> 64 << 64 | _VARIANT
    tails: set[int] = set()
    while len(tails) < count:
        wanted = count - len(tails)
        tails.update(drawn & _TAIL for drawn in struct.unpack(f">{wanted}Q", os.urandom(8 * wanted)))
    return [uuid.UUID(int=head | tail) for tail in sorted(tails)]


@dataclass(frozen=True)
class _Client:
    """A client the batch names: its terms and the metrics it may report."""

    id: uuid.UUID
    terms: Terms
    known: frozenset[str]  # metrics, the built-in ones included
    texts: tuple[str, str]  # its id as hashed and as COPY text (``_Batch.uuid_text``)


@dataclass
class _Batch:
    """What one request has learnt so far: clients checked, keys seen; and, on PostgreSQL
    (``copying``), the ``COPY`` line of each row."""

    session: Session
    principal: Principal
    horizon: datetime
    copying: bool
    recorded_at: datetime = field(default_factory=utcnow)
    ids: Any = None  # an iterator of the batch's ids, in the events' order
    clients: dict[uuid.UUID, _Client | str] = field(default_factory=dict)  # or why it is none
    adjustments: dict[tuple[uuid.UUID, str], Adjustment | None] = field(default_factory=dict)
    # An event reversed already (or earlier in the batch) -> the idempotency key of its reversal.
    reversed_by: dict[uuid.UUID, str] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)  # index -> the row's line of COPY text
    # What a value is written as, once a batch: uuid -> (str, hex); text -> COPY text;
    # a decimal's text -> (as hashed, as stored in millionths).
    uuid_texts: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)
    copy_texts: dict[str, str] = field(default_factory=dict)
    decimal_texts: dict[str, tuple[str, str]] = field(default_factory=dict)

    def read_clients(self, events: list[Any]) -> None:
        """The organisations the batch names, and the terms of the clients among them,
        each read in one query."""
        named = _ids_named(events, "tenant_id")
        if named:
            found = self.session.execute(
                select(Organization.id, Organization.kind).where(Organization.id.in_(named))
            )
            self._add(named, {tenant_id for tenant_id, kind in found if kind is OrgKind.CLIENT})

    def client(self, tenant_id: uuid.UUID) -> _Client | str:
        """The client, or why there is none."""
        known = self.clients.get(tenant_id)
        if known is None:  # named otherwise than by a string (a Python caller)
            organization = fetch(self.session, Organization, tenant_id)
            ok = organization is not None and organization.kind is OrgKind.CLIENT
            self._add({tenant_id}, {tenant_id} if ok else set())
            known = self.clients[tenant_id]
        return known

    def _add(self, named: set[uuid.UUID], clients: set[uuid.UUID]) -> None:
        terms = terms_of(self.session, clients)
        for tenant_id in named:
            if tenant_id in clients:
                known = BUILTIN_METRICS | terms[tenant_id].metrics
                texts = (str(tenant_id), tenant_id.hex)
                self.clients[tenant_id] = _Client(tenant_id, terms[tenant_id], known, texts)
            else:
                self.clients[tenant_id] = "no such client organisation"

    def adjustment(self, tenant_id: uuid.UUID, at: datetime) -> Adjustment | None:
        client = self.clients[tenant_id]
        assert isinstance(client, _Client)  # a row is of a client
        if client.terms.finalised is None:
            return None
        key = (tenant_id, month_of(at, client.terms.zone))
        if key not in self.adjustments:
            self.adjustments[key] = client.terms.adjustment(at)
        return self.adjustments[key]

    def uuid_text(self, value: uuid.UUID | None) -> tuple[str, str] | tuple[None, str]:
        """A uuid as hashed (``str``) and as ``COPY`` text (its hex: a third of ``str``'s cost)."""
        if value is None:
            return None, "\\N"
        texts = self.uuid_texts.get(value)
        if texts is None:
            texts = self.uuid_texts[value] = (str(value), value.hex)
        return texts

    def decimal_text(self, value: Decimal) -> tuple[str, str]:
        """A decimal as hashed (``service._plain``) and as ``COPY`` text (millionths)."""
        written = str(value)
        texts = self.decimal_texts.get(written)
        if texts is None:
            texts = (format(value.normalize(), "f"), str(_MICROS.process_bind_param(value, _POSTGRESQL)))
            if len(self.decimal_texts) < 1000:
                self.decimal_texts[written] = texts
        return texts

    def copy_text(self, value: str | None) -> str:
        """Text as ``COPY`` reads it back: a backslash, tab or line break escaped."""
        if value is None:
            return "\\N"
        text = self.copy_texts.get(value)
        if text is None:
            text = value
            if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
                text = text.translate(_COPY_ESCAPES)
            if len(self.copy_texts) < 1000:  # kinds and sources repeat; keys do not
                self.copy_texts[value] = text
        return text


_MICROS, _POSTGRESQL = Micros(), postgresql.dialect()
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _originals(session: Session, events: list[Any]) -> dict[tuple[uuid.UUID, uuid.UUID], UsageEvent]:
    """The events that reversals in the batch name, read at once and locked: two requests
    reversing one event take turns, so the second sees the first's reversal."""
    wanted = _ids_named(events, "reverses")
    if not wanted:
        return {}
    found = session.scalars(select(UsageEvent).where(UsageEvent.id.in_(wanted)).with_for_update())
    return {(event.tenant_id, event.id): event for event in found}


def _ids_named(events: list[Any], name: str) -> set[uuid.UUID]:
    """The ids that the events' field ``name`` holds, before validation (a bad one is left
    to it). A batch names few tenants many times: each string is parsed once."""
    parsed: dict[str, uuid.UUID | None] = {}
    for raw in events:
        if isinstance(raw, dict) and isinstance(text := raw.get(name), str) and text not in parsed:
            try:
                parsed[text] = uuid.UUID(text)
            except ValueError:
                parsed[text] = None
    return {value for value in parsed.values() if value is not None}


def _reversals_of(session: Session, originals: list[UsageEvent]) -> dict[uuid.UUID, str]:
    """Which of ``originals`` are reversed already, and by which key. A reversal has its
    original's tenant and time, so the (tenant, occurred_at) index finds it."""
    if not originals:
        return {}
    found = session.execute(
        select(UsageEvent.reverses_id, UsageEvent.idempotency_key).where(
            tuple_(UsageEvent.tenant_id, UsageEvent.occurred_at).in_(
                [(o.tenant_id, o.occurred_at) for o in originals]
            ),
            UsageEvent.reverses_id.in_([o.id for o in originals]),
        )
    )
    return {original_id: key for original_id, key in found if original_id is not None}


def _rejected(index: int, errors: list[EventError]) -> EventAnswer:
    return EventAnswer(index=index, status="rejected", errors=errors)


def _checked(
    batch: _Batch, index: int, raw: Any, originals: dict[tuple[uuid.UUID, uuid.UUID], UsageEvent]
) -> EventAnswer | dict[str, Any]:
    at = f"/events/{index}"
    try:
        item = UsageEventIn.model_validate(raw)
    except ValidationError as exc:
        return _rejected(
            index,
            [
                EventError(pointer=at + "".join(f"/{part}" for part in error["loc"]), message=error["msg"])
                for error in exc.errors(include_url=False)
            ],
        )
    if item.idempotency_key.startswith(RESERVED_KEYS):
        message = f"keys starting with {', '.join(RESERVED_KEYS)} are the platform's own"
        return _rejected(index, [EventError(pointer=f"{at}/idempotency_key", message=message)])
    tenant_id = item.tenant_id
    if tenant_id is None:
        return _rejected(
            index, [EventError(pointer=f"{at}/tenant_id", message="name the client organisation")]
        )
    client = batch.client(tenant_id)
    if isinstance(client, str):
        return _rejected(index, [EventError(pointer=f"{at}/tenant_id", message=client)])
    if item.reverses is not None:
        return _reversal(batch, index, client, item, originals.get((tenant_id, item.reverses)))
    errors = []
    for name in ("metric", "quantity", "occurred_at"):
        if getattr(item, name) is None:
            errors.append(EventError(pointer=f"{at}/{name}", message="required"))
    if errors:
        return _rejected(index, errors)
    assert item.metric is not None and item.quantity is not None and item.occurred_at is not None
    if item.metric not in client.known:
        known = ", ".join(sorted(client.known))
        errors.append(EventError(pointer=f"{at}/metric", message=f"unknown metric; known: {known}"))
    if item.occurred_at > batch.horizon:
        errors.append(EventError(pointer=f"{at}/occurred_at", message="in the future"))
    if item.unit_price is not None:
        currency = client.terms.currency
        if currency is None:
            errors.append(EventError(pointer=f"{at}/unit_price", message="the client has no contract"))
        elif item.unit_price.currency != currency:
            message = f"the contract's currency is {currency}"
            errors.append(EventError(pointer=f"{at}/unit_price/currency", message=message))
        if not item.reason:
            errors.append(EventError(pointer=f"{at}/reason", message="a priced item needs a reason"))
    if errors:
        return _rejected(index, errors)
    return _row(
        batch,
        index,
        client,
        item.metric,
        item.quantity,
        item.occurred_at,
        item.idempotency_key,
        item.source,
        queue_id=item.queue_id,
        task_kind=item.task_kind,
        language=item.language,
        out_of_hours=item.out_of_hours,
        reason=item.reason,
        unit_price=item.unit_price.amount if item.unit_price else None,
        currency=item.unit_price.currency if item.unit_price else None,
    )


def _reversal(
    batch: _Batch, index: int, client: _Client, item: UsageEventIn, original: UsageEvent | None
) -> EventAnswer | dict[str, Any]:
    at = f"/events/{index}"
    if original is None:
        return _rejected(index, [EventError(pointer=f"{at}/reverses", message="no such usage event")])
    if original.reverses_id is not None:
        return _rejected(index, [EventError(pointer=f"{at}/reverses", message="a reversal is not reversed")])
    if not item.reason:
        return _rejected(index, [EventError(pointer=f"{at}/reason", message="a reversal needs a reason")])
    if batch.reversed_by.setdefault(original.id, item.idempotency_key) != item.idempotency_key:
        return _rejected(index, [EventError(pointer=f"{at}/reverses", message="reversed already")])
    return _row(
        batch,
        index,
        client,  # the original's: it is looked up by the reversal's tenant
        original.metric,
        -original.quantity,
        original.occurred_at,
        item.idempotency_key,
        item.source,
        queue_id=original.queue_id,
        task_kind=original.task_kind,
        language=original.language,
        out_of_hours=original.out_of_hours,
        task_id=original.task_id,
        reason=item.reason,
        reverses_id=original.id,
        unit_price=original.unit_price,
        currency=original.currency,
    )


# The columns of a row's COPY line, in its order; the other two (``recorded_at``,
# ``created_by``) are the batch's, parameters of the insert.
_STAGED = (
    "id", "tenant_id", "metric", "quantity", "occurred_at", "queue_id", "task_kind", "language",
    "out_of_hours", "task_id", "source", "reason", "idempotency_key", "body_hash", "reverses_id",
    "unit_price", "currency",
)  # fmt: skip


def _row(
    batch: _Batch,
    index: int,
    client: _Client,
    metric: str,
    quantity: Decimal,
    occurred_at: datetime,
    idempotency_key: str,
    source: str,
    *,
    queue_id: uuid.UUID | None = None,
    task_kind: str | None = None,
    language: str | None = None,
    out_of_hours: bool = False,
    task_id: uuid.UUID | None = None,
    reason: str | None = None,
    reverses_id: uuid.UUID | None = None,
    unit_price: Decimal | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """``service.row``'s values, body hash included (the same), in one pass that also
    writes the row's ``COPY`` line (``batch.lines``) when the batch is copied."""
    at = occurred_at.astimezone(UTC).isoformat()  # "+02:00" and "Z" name the same instant
    tenant, tenant_hex = client.texts
    queue, queue_hex = batch.uuid_text(queue_id)
    task, task_hex = batch.uuid_text(task_id)
    reverses, reverses_hex = batch.uuid_text(reverses_id)
    amount, amount_micros = batch.decimal_text(quantity)
    price, price_micros = (None, "\\N") if unit_price is None else batch.decimal_text(unit_price)
    # service._hash's body, its keys already in sorted order.
    body = {
        "currency": currency,
        "language": language,
        "metric": metric,
        "occurred_at": at,
        "out_of_hours": out_of_hours,
        "quantity": amount,
        "queue_id": queue,
        "reason": reason,
        "reverses_id": reverses,
        "task_id": task,
        "task_kind": task_kind,
        "tenant_id": tenant,
        "unit_price": price,
    }
    body_hash = hashlib.sha256(orjson.dumps(body)).hexdigest()
    event_id = next(batch.ids)
    if batch.copying:
        text = batch.copy_text
        batch.lines[index] = "\t".join(
            (
                event_id.hex,
                tenant_hex,
                text(metric),
                amount_micros,
                at,
                queue_hex,
                text(task_kind),
                text(language),
                "t" if out_of_hours else "f",
                task_hex,
                text(source),
                text(reason),
                text(idempotency_key),
                body_hash,
                reverses_hex,
                price_micros,
                text(currency),
            )
        )
    return {
        "id": event_id,
        "tenant_id": client.id,
        "metric": metric,
        "quantity": quantity,
        "occurred_at": occurred_at,
        "recorded_at": batch.recorded_at,
        "queue_id": queue_id,
        "task_kind": task_kind,
        "language": language,
        "out_of_hours": out_of_hours,
        "task_id": task_id,
        "source": source,
        "reason": reason,
        "idempotency_key": idempotency_key,
        "body_hash": body_hash,
        "reverses_id": reverses_id,
        "created_by": batch.principal.subject_id,
        "unit_price": unit_price,
        "currency": currency,
    }


def _record(batch: _Batch, rows: dict[int, dict[str, Any]], answers: list[EventAnswer | None]) -> None:
    """Insert what is new; a key already taken (before, or earlier in the batch) is a
    duplicate when the body is the same, else refused."""
    first: dict[tuple[uuid.UUID, str], int] = {}
    for index, values in rows.items():
        first.setdefault((values["tenant_id"], values["idempotency_key"]), index)
    refused = _insert(batch, [index for index in first.values()], rows)
    taken = [key for key, index in first.items() if rows[index]["id"] in refused]
    existing = _existing(batch.session, taken)
    for index, values in rows.items():
        key = (values["tenant_id"], values["idempotency_key"])
        winner = rows[first[key]]
        if first[key] == index and values["id"] not in refused:
            answers[index] = EventAnswer(
                index, "accepted", values["id"], None, batch.adjustment(key[0], values["occurred_at"])
            )
            continue
        recorded_id, recorded_hash = existing.get(key, (winner["id"], winner["body_hash"]))
        if recorded_hash == values["body_hash"]:
            answers[index] = EventAnswer(
                index, "duplicate", recorded_id, None, batch.adjustment(key[0], values["occurred_at"])
            )
        else:
            message = "this key was used with another event"
            answers[index] = _rejected(
                index, [EventError(pointer=f"/events/{index}/idempotency_key", message=message)]
            )


def _insert(batch: _Batch, fresh: list[int], rows: dict[int, dict[str, Any]]) -> set[uuid.UUID]:
    """The rows ``fresh`` inserted unless their key is taken: the ids of those refused."""
    if not fresh:
        return set()
    values = [rows[index] for index in fresh]
    if not batch.copying:
        inserted = insert_rows(batch.session, UsageEvent, values, unless_taken=UNIQUE_KEY)
        return {row["id"] for row in values} - inserted
    data = "".join([batch.lines[index] + "\n" for index in fresh]).encode()
    created_by = batch.principal.subject_id
    shared = {"recorded_at": batch.recorded_at.isoformat(), "created_by": created_by and created_by.hex}
    copy = CopyRows(UsageEvent.__table__, _STAGED, data, shared)  # type: ignore[arg-type]
    stage, staged = stage_rows(batch.session, UsageEvent, values, copy)
    with driver_cursor(batch.session.connection()) as cursor:
        cursor.execute(
            f"WITH created AS (INSERT INTO usage_events ({staged.inserted_columns})"  # noqa: S608
            f" SELECT {staged.selected(stage)} FROM {stage}"
            f" ON CONFLICT ({', '.join(UNIQUE_KEY)}) DO NOTHING RETURNING id)"
            f" SELECT id FROM {stage} EXCEPT ALL SELECT id FROM created",
            staged.parameters,
        )
        refused = {found[0] for found in cursor.fetchall()}
        cursor.execute(f"TRUNCATE {stage}")  # the next batch of the same transaction starts empty
    return refused


def _existing(
    session: Session, keys: list[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], tuple[uuid.UUID, str]]:
    if not keys:
        return {}
    found = session.execute(
        select(UsageEvent.tenant_id, UsageEvent.idempotency_key, UsageEvent.id, UsageEvent.body_hash).where(
            tuple_(UsageEvent.tenant_id, UsageEvent.idempotency_key).in_(keys)
        )
    )
    return {(t, k): (i, h) for t, k, i, h in found}
