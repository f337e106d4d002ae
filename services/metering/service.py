"""The usage ledger's rules: what an event may say, who may report one, and the report.
Events come in by the batch through ``metering.ingest``.

Billing knows the contracts (extra metrics, currency, timezone) and which periods are
finalised; it registers that knowledge in ``RULES`` (it imports metering, never the
reverse). Without billing, the built-in metrics and UTC apply.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.errors import FieldError, Forbidden, NotFound, ValidationFailed
from services.core.ids import new_id
from services.core.time import PERIOD_PATTERN, month_bounds, month_of, next_month, utcnow
from services.metering.models import UsageEvent
from services.metering.schemas import Adjustment, UsageReport, UsageRow
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal
from tenants.scoping import fetch, narrowed_to

TASK_COMPLETED = "task_completed"
HANDLE_MINUTES = "handle_minutes"
SLA_MET = "sla_met"
SLA_BREACHED = "sla_breached"
BUILTIN_METRICS = frozenset({TASK_COMPLETED, HANDLE_MINUTES, SLA_MET, SLA_BREACHED})
UNIQUE_KEY = ("tenant_id", "idempotency_key")
# The keys the outbox recorder gives what it meters: an API event may not take one and so
# silence the fact the recorder would write.
RESERVED_KEYS = ("task:", "clock:", "outbox:")


@dataclass(frozen=True)
class Terms:
    """What the ledger needs to know of a client's contract: the metrics it prices beyond
    the built-in ones, the currency and billing timezone of the version in force today, and
    the last period finalised (None: none yet)."""

    metrics: frozenset[str] = frozenset()
    currency: str | None = None
    zone: str = "UTC"
    finalised: str | None = None

    def adjustment(self, at: datetime) -> Adjustment | None:
        """An event dated ``at`` in a finalised period (a month of the contract's timezone:
        a UTC day may end in the next) is billed on the invoice after the last finalised."""
        if self.finalised is None:
            return None
        period = month_of(at, self.zone)
        if period > self.finalised:
            return None
        return Adjustment(period=period, billed_in=next_month(self.finalised))


NO_CONTRACT = Terms()


def _no_contracts(_session: Session, _tenants: Collection[uuid.UUID]) -> Mapping[uuid.UUID, Terms]:
    return {}


@dataclass
class LedgerRules:
    # The terms of those of ``tenants`` that have a contract, read at once for all of them
    # (a batch of events names many clients); the others are ``NO_CONTRACT``.
    terms: Callable[[Session, Collection[uuid.UUID]], Mapping[uuid.UUID, Terms]] = _no_contracts


RULES = LedgerRules()


def terms_of(session: Session, tenants: Collection[uuid.UUID]) -> dict[uuid.UUID, Terms]:
    """Each tenant's terms, one reading for all of them."""
    found = RULES.terms(session, tenants) if tenants else {}
    return {tenant: found.get(tenant, NO_CONTRACT) for tenant in tenants}


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
    """What makes two events with one key the same event (the source and who sent it do not).
    ``ingest._row`` writes the same body in its own pass: a change here is a change there
    (tests/metering/test_ingest.py replays a row of this one over HTTP)."""
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


# ------------------------------------------------------------------ who reports


def require_reporter(principal: Principal) -> None:
    """Usage is the operator's to report (its integrations and account managers); a client
    reads its own, a provider none."""
    principal.require(Permission.BILLING_MANAGE)
    if principal.org_kind is not OrgKind.OPERATOR:
        raise Forbidden("usage is reported by the operator")


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
    zone = terms_of(session, [tenant_id])[tenant_id].zone if tenant_id else "UTC"
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
