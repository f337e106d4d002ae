"""What billing tells the usage ledger: a contract's extra metrics, its currency and
timezone, and which periods are finalised (an event dated in one is billed later, as an
adjustment). Registered in ``metering.service.RULES`` on import: billing imports
metering, never the reverse."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from services.billing import contracts
from services.core.time import month_of, next_month
from services.metering import service as metering
from services.metering.schemas import Adjustment


def currency(session: Session, tenant_id: uuid.UUID) -> str | None:
    version = contracts.version_on(session, tenant_id)
    return version.currency if version else None


def billed_in(session: Session, tenant_id: uuid.UUID, at: datetime) -> Adjustment | None:
    finalised = contracts.last_finalised_period(session, tenant_id)
    if finalised is None:
        return None
    period = month_of(at, contracts.zone_of(session, tenant_id))
    if period > finalised:
        return None
    return Adjustment(period=period, billed_in=next_month(finalised))


metering.RULES.contract_metrics = contracts.contract_metrics
metering.RULES.currency = currency
metering.RULES.timezone = contracts.zone_of
metering.RULES.billed_in = billed_in
