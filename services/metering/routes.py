"""HTTP of metering: usage events in (batches), usage out (aggregated)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.core.deps import AppSettings, DbSession
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.core.time import PERIOD_PATTERN
from services.identity.deps import CurrentPrincipal
from services.metering import ingest, service
from services.metering.schemas import UsageBatchIn, UsageBatchOut, UsageReport

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["metering"], responses=PROBLEM_RESPONSES)


@router.post("/usage-events", response_model=UsageBatchOut)
def post_usage_events(
    body: UsageBatchIn, session: DbSession, principal: CurrentPrincipal, settings: AppSettings
) -> Response:
    """Up to 1,000 events; each answered on its own (accepted, duplicate or rejected with
    the fields at fault). The idempotency key of each event makes a retry safe."""
    # Written by ``ingest`` in the shape of UsageBatchOut (see its docstring).
    answer = ingest.ingest(session, principal, settings, body.events)
    return Response(answer.json(), media_type="application/json")


@router.get("/usage", response_model=UsageReport)
def get_usage(
    session: DbSession,
    principal: CurrentPrincipal,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")],
    metric: str | None = None,
    queue_id: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
) -> UsageReport:
    return service.report(session, principal, period, tenant_id, metric, queue_id)
