"""What billing tells the usage ledger: a client's ``Terms`` (its contract's extra metrics,
its currency and timezone, its last finalised period: an event dated in it or before is
billed later, as an adjustment). Registered in ``metering.service.RULES`` on import:
billing imports metering, never the reverse.

A batch of usage names many clients: their terms are read at once, two queries for the
batch, not the few of ``contracts.version_on`` and ``last_finalised_period`` a client.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.billing.models import FINAL_STATUSES, ContractVersion, Invoice, InvoiceKind
from services.core.time import utcnow
from services.metering import service as metering
from services.metering.service import BUILTIN_METRICS, Terms
from tenants.scoping import ScopedRead, narrowed_to

# A client has one contract: its tenant's versions are the contract's. Read as rows (ScopedRead).
_version = ContractVersion.__table__.c
_VERSIONS = ScopedRead(
    select(
        _version.tenant_id, _version.effective_from, _version.currency, _version.billing_timezone,
        _version.rate_card,
    ).order_by(_version.effective_from, _version.version)
)  # fmt: skip
_invoice = Invoice.__table__.c
_FINALISED = ScopedRead(
    select(_invoice.tenant_id, func.max(_invoice.period).label("period"))
    .where(_invoice.kind == InvoiceKind.INVOICE, _invoice.status.in_(FINAL_STATUSES))
    .group_by(_invoice.tenant_id)
)


def terms(session: Session, tenant_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Terms]:
    """The terms of those of ``tenant_ids`` that have a contract version or a final invoice."""
    versions: dict[uuid.UUID, list[Any]] = {}
    with narrowed_to(session, tenant_ids):
        for version in _VERSIONS.execute(session):
            versions.setdefault(version.tenant_id, []).append(version)
        finalised = {row.tenant_id: row.period for row in _FINALISED.execute(session)}
    found = {}
    for tenant_id in versions.keys() | finalised.keys():
        of_tenant = versions.get(tenant_id, [])
        in_force = _in_force(of_tenant)
        named = {p["metric"] for v in of_tenant for p in v.rate_card.get("prices", [])}
        found[tenant_id] = Terms(
            metrics=frozenset(named - BUILTIN_METRICS),
            currency=in_force.currency if in_force else None,
            zone=in_force.billing_timezone if in_force else "UTC",
            finalised=finalised.get(tenant_id),
        )
    return found


def _in_force(versions: list[Any]) -> Any:
    """As ``contracts.version_on`` today: the version in force (today in the last version's
    timezone), else the first; None without any."""
    if not versions:
        return None
    day = utcnow().astimezone(ZoneInfo(versions[-1].billing_timezone)).date()
    in_force = [v for v in versions if v.effective_from <= day]
    return in_force[-1] if in_force else versions[0]


metering.RULES.terms = terms
