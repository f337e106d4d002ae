"""The usage ledger's rules: what an event may say, who may report one, and the report.

Billing knows the contracts (extra metrics, currency, timezone) and which periods are
finalised; it registers that knowledge in ``RULES`` (it imports metering, never the
reverse). Without billing, the built-in metrics and UTC apply.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from services.core.errors import FieldError, Forbidden, NotFound, ValidationFailed
from services.core.ids import new_id
from services.core.settings import Settings
from services.core.time import PERIOD_PATTERN, month_bounds, month_of, utcnow
from services.metering.models import UsageEvent
from services.metering.schemas import (
    Adjustment,
    EventError,
    EventResult,
    UsageBatchOut,
    UsageEventIn,
    UsageReport,
    UsageRow,
)
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import fetch, insert_rows, narrowed_to

TASK_COMPLETED = "task_completed"
HANDLE_MINUTES = "handle_minutes"
SLA_MET = "sla_met"
SLA_BREACHED = "sla_breached"
BUILTIN_METRICS = frozenset({TASK_COMPLETED, HANDLE_MINUTES, SLA_MET, SLA_BREACHED})
UNIQUE_KEY = ("tenant_id", "idempotency_key")
# The keys the outbox recorder gives what it meters: an API event may not take one and so
# silence the fact the recorder would write.
RESERVED_KEYS = ("task:", "clock:", "outbox:")


def _no_metrics(_session: Session, _tenant: uuid.UUID) -> frozenset[str]:
    return frozenset()


def _no_currency(_session: Session, _tenant: uuid.UUID) -> str | None:
    return None


def _utc(_session: Session, _tenant: uuid.UUID) -> str:
    return "UTC"


def _never_finalised(_session: Session, _tenant: uuid.UUID, _at: datetime) -> Adjustment | None:
    return None


@dataclass
class LedgerRules:
    contract_metrics: Callable[[Session, uuid.UUID], frozenset[str]] = _no_metrics
    currency: Callable[[Session, uuid.UUID], str | None] = _no_currency
    timezone: Callable[[Session, uuid.UUID], str] = _utc
    # An event dated ``at`` whose period is finalised: the period it is billed in instead.
    billed_in: Callable[[Session, uuid.UUID, datetime], Adjustment | None] = _never_finalised


RULES = LedgerRules()


def row(
    tenant_id: uuid.UUID,
    metric: str,
    quantity: Decimal,
    occurred_at: datetime,
    idempotency_key: str,
    source: str,
    **dimensions: Any,
) -> dict[str, Any]:
    """The column values of one event, as inserted by a statement (``insert_rows``)."""
    values = {
        "tenant_id": tenant_id,
        "metric": metric,
        "quantity": quantity,
        "occurred_at": occurred_at,
        "recorded_at": utcnow(),
        "queue_id": None,
        "task_kind": None,
        "language": None,
        "out_of_hours": False,
        "task_id": None,
        "source": source,
        "reason": None,
        "idempotency_key": idempotency_key,
        "reverses_id": None,
        "created_by": None,
        "unit_price": None,
        "currency": None,
    } | dimensions
    values.setdefault("id", new_id())
    values["body_hash"] = _hash(values)
    return values


_HASHED = (
    "tenant_id", "metric", "quantity", "occurred_at", "queue_id", "task_kind", "language",
    "out_of_hours", "task_id", "reason", "reverses_id", "unit_price", "currency",
)  # fmt: skip


def _hash(values: dict[str, Any]) -> str:
    """What makes two events with one key the same event (the source and who sent it do not)."""
    body = {name: _plain(values[name]) for name in _HASHED}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):  # "+02:00" and "Z" name the same instant
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# ------------------------------------------------------------------ ingest


def require_reporter(principal: Principal) -> None:
    """Usage is the operator's to report (its integrations and account managers); a client
    reads its own, a provider none."""
    principal.require(Permission.BILLING_MANAGE)
    if principal.org_kind is not OrgKind.OPERATOR:
        raise Forbidden("usage is reported by the operator")


@dataclass
class _Batch:
    """What one request has learnt so far: tenants checked, keys seen."""

    session: Session
    principal: Principal
    horizon: datetime
    tenants: dict[uuid.UUID, str | None] = field(default_factory=dict)  # id -> error, or None
    metrics: dict[uuid.UUID, frozenset[str]] = field(default_factory=dict)
    zones: dict[uuid.UUID, str] = field(default_factory=dict)
    adjustments: dict[tuple[uuid.UUID, str], Adjustment | None] = field(default_factory=dict)
    # An event reversed already (or earlier in the batch) -> the idempotency key of its reversal.
    reversed_by: dict[uuid.UUID, str] = field(default_factory=dict)

    def read_tenants(self, events: list[Any]) -> None:
        """The organisations the batch names, read in one query rather than one each."""
        named = _ids_named(events, "tenant_id")
        if not named:
            return
        found = self.session.execute(
            select(Organization.id, Organization.kind).where(Organization.id.in_(named))
        )
        clients = {tenant_id for tenant_id, kind in found if kind is OrgKind.CLIENT}
        for tenant_id in named:
            self.tenants[tenant_id] = None if tenant_id in clients else "no such client organisation"

    def tenant_error(self, tenant_id: uuid.UUID) -> str | None:
        if tenant_id not in self.tenants:
            organization = fetch(self.session, Organization, tenant_id)
            ok = organization is not None and organization.kind is OrgKind.CLIENT
            self.tenants[tenant_id] = None if ok else "no such client organisation"
        return self.tenants[tenant_id]

    def known_metrics(self, tenant_id: uuid.UUID) -> frozenset[str]:
        if tenant_id not in self.metrics:
            self.metrics[tenant_id] = BUILTIN_METRICS | RULES.contract_metrics(self.session, tenant_id)
        return self.metrics[tenant_id]

    def adjustment(self, tenant_id: uuid.UUID, at: datetime) -> Adjustment | None:
        # A period is a month of the contract's timezone (a UTC day may end in the next).
        if tenant_id not in self.zones:
            self.zones[tenant_id] = RULES.timezone(self.session, tenant_id)
        key = (tenant_id, month_of(at, self.zones[tenant_id]))
        if key not in self.adjustments:
            self.adjustments[key] = RULES.billed_in(self.session, tenant_id, at)
        return self.adjustments[key]


def ingest(session: Session, principal: Principal, settings: Settings, events: list[Any]) -> UsageBatchOut:
    """Every event answered on its own: accepted, duplicate (the same key and body as one
    recorded before), or rejected with the fields at fault. Good events are recorded even
    when others in the batch are not."""
    require_reporter(principal)
    batch = _Batch(session, principal, utcnow() + timedelta(seconds=settings.usage_future_tolerance_seconds))
    results: list[EventResult | None] = [None] * len(events)
    rows: dict[int, dict[str, Any]] = {}
    batch.read_tenants(events)
    originals = _originals(session, events)
    batch.reversed_by = _reversals_of(session, list(originals.values()))
    for index, raw in enumerate(events):
        outcome = _checked(batch, index, raw, originals)
        if isinstance(outcome, EventResult):
            results[index] = outcome
        else:
            rows[index] = outcome
    _record(session, rows, results)
    for index, values in rows.items():
        result = results[index]
        if result is not None and result.status != "rejected":
            result.adjustment = batch.adjustment(values["tenant_id"], values["occurred_at"])
    done = [r for r in results if r is not None]
    return UsageBatchOut(
        results=done,
        accepted=sum(r.status == "accepted" for r in done),
        duplicates=sum(r.status == "duplicate" for r in done),
        rejected=sum(r.status == "rejected" for r in done),
    )


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
    to it)."""
    ids = set()
    for raw in events:
        if isinstance(raw, dict) and isinstance(raw.get(name), str):
            try:
                ids.add(uuid.UUID(raw[name]))
            except ValueError:
                continue
    return ids


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


def _rejected(index: int, errors: list[EventError]) -> EventResult:
    return EventResult(index=index, status="rejected", errors=errors)


def _checked(
    batch: _Batch, index: int, raw: Any, originals: dict[tuple[uuid.UUID, uuid.UUID], UsageEvent]
) -> EventResult | dict[str, Any]:
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
    problem = batch.tenant_error(tenant_id)
    if problem:
        return _rejected(index, [EventError(pointer=f"{at}/tenant_id", message=problem)])
    if item.reverses is not None:
        return _reversal(batch, index, item, originals.get((tenant_id, item.reverses)))
    errors = []
    for name in ("metric", "quantity", "occurred_at"):
        if getattr(item, name) is None:
            errors.append(EventError(pointer=f"{at}/{name}", message="required"))
    if errors:
        return _rejected(index, errors)
    assert item.metric is not None and item.quantity is not None and item.occurred_at is not None
    if item.metric not in batch.known_metrics(tenant_id):
        known = ", ".join(sorted(batch.known_metrics(tenant_id)))
        errors.append(EventError(pointer=f"{at}/metric", message=f"unknown metric; known: {known}"))
    if item.occurred_at > batch.horizon:
        errors.append(EventError(pointer=f"{at}/occurred_at", message="in the future"))
    if item.unit_price is not None:
        currency = RULES.currency(batch.session, tenant_id)
        if currency is None:
            errors.append(EventError(pointer=f"{at}/unit_price", message="the client has no contract"))
        elif item.unit_price.currency != currency:
            message = f"the contract's currency is {currency}"
            errors.append(EventError(pointer=f"{at}/unit_price/currency", message=message))
        if not item.reason:
            errors.append(EventError(pointer=f"{at}/reason", message="a priced item needs a reason"))
    if errors:
        return _rejected(index, errors)
    return row(
        tenant_id,
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
        created_by=batch.principal.subject_id,
    )


def _reversal(
    batch: _Batch, index: int, item: UsageEventIn, original: UsageEvent | None
) -> EventResult | dict[str, Any]:
    at = f"/events/{index}"
    if original is None:
        return _rejected(index, [EventError(pointer=f"{at}/reverses", message="no such usage event")])
    if original.reverses_id is not None:
        return _rejected(index, [EventError(pointer=f"{at}/reverses", message="a reversal is not reversed")])
    if not item.reason:
        return _rejected(index, [EventError(pointer=f"{at}/reason", message="a reversal needs a reason")])
    if batch.reversed_by.setdefault(original.id, item.idempotency_key) != item.idempotency_key:
        return _rejected(index, [EventError(pointer=f"{at}/reverses", message="reversed already")])
    return row(
        original.tenant_id,
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
        created_by=batch.principal.subject_id,
    )


def _record(session: Session, rows: dict[int, dict[str, Any]], results: list[EventResult | None]) -> None:
    """Insert what is new; a key already taken (before, or earlier in the batch) is a
    duplicate when the body is the same, else refused."""
    first: dict[tuple[uuid.UUID, str], int] = {}
    fresh = []
    for index, values in rows.items():
        key = (values["tenant_id"], values["idempotency_key"])
        if key in first:
            continue
        first[key] = index
        fresh.append(values)
    inserted = insert_rows(session, UsageEvent, fresh, unless_taken=UNIQUE_KEY)
    taken = [key for key, index in first.items() if rows[index]["id"] not in inserted]
    existing = _existing(session, taken)
    for index, values in rows.items():
        key = (values["tenant_id"], values["idempotency_key"])
        winner = rows[first[key]]
        if first[key] == index and values["id"] in inserted:
            results[index] = EventResult(index=index, status="accepted", id=values["id"])
            continue
        recorded_id, recorded_hash = existing.get(key, (winner["id"], winner["body_hash"]))
        if recorded_hash == values["body_hash"]:
            results[index] = EventResult(index=index, status="duplicate", id=recorded_id)
        else:
            message = "this key was used with another event"
            results[index] = _rejected(
                index, [EventError(pointer=f"/events/{index}/idempotency_key", message=message)]
            )


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


# ------------------------------------------------------------------ reading


def report(
    session: Session,
    principal: Principal,
    period: str,
    tenant_id: uuid.UUID | None = None,
    metric: str | None = None,
    queue_id: uuid.UUID | None = None,
) -> UsageReport:
    """Usage of a month by tenant, metric, task kind and queue. For one tenant the month
    is the contract's (its billing timezone); across tenants, UTC."""
    _require_reader(principal)
    check_period(period)
    tenant_id = tenant_id or _own_client(principal)
    if tenant_id is not None:
        organization = fetch(session, Organization, tenant_id)
        if organization is None or organization.kind is not OrgKind.CLIENT:  # a provider's id too
            raise NotFound("no such client organisation", errors=[FieldError("/tenant_id", "no such client")])
    zone = RULES.timezone(session, tenant_id) if tenant_id else "UTC"
    since, until = month_bounds(period, zone)
    query = (
        select(
            UsageEvent.tenant_id,
            UsageEvent.metric,
            UsageEvent.task_kind,
            UsageEvent.queue_id,
            func.sum(UsageEvent.quantity),
            func.count(),
        )
        .where(UsageEvent.occurred_at >= since, UsageEvent.occurred_at < until)
        .group_by(UsageEvent.tenant_id, UsageEvent.metric, UsageEvent.task_kind, UsageEvent.queue_id)
    )
    if metric:
        query = query.where(UsageEvent.metric == metric)
    if queue_id:
        query = query.where(UsageEvent.queue_id == queue_id)
    with narrowed_to(session, tenant_id):
        found = session.execute(query).all()
    items = [
        UsageRow(tenant_id=t, metric=m, task_kind=k, queue_id=q, quantity=total or Decimal(0), events=n)
        for t, m, k, q, total, n in found
    ]
    items.sort(key=lambda r: (str(r.tenant_id), r.metric, r.task_kind or "", str(r.queue_id or "")))
    return UsageReport(period=period, timezone=zone, items=items)


def _require_reader(principal: Principal) -> None:
    principal.require(Permission.BILLING_READ)
    if principal.org_kind is OrgKind.PROVIDER:
        raise NotFound()


def _own_client(principal: Principal) -> uuid.UUID | None:
    return principal.org_id if principal.org_kind is OrgKind.CLIENT else None


def check_period(period: str) -> None:
    if not re.match(PERIOD_PATTERN, period):
        raise ValidationFailed(errors=[FieldError("/period", "a month as YYYY-MM")])
