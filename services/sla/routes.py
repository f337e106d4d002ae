"""HTTP of the SLA engine: calendars, policies, a task's clocks, attainment and breaches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime

from services.core.deps import DbSession
from services.core.pagination import Page, PageRequest, page_request
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.identity.deps import CurrentPrincipal
from services.sla import clocks, definitions, reports
from services.sla.models import Metric, SlaCalendar, SlaCalendarVersion, SlaPolicy, SlaPolicyVersion
from services.sla.schemas import (
    AttainmentRow,
    CalendarCreate,
    CalendarOut,
    CalendarVersionIn,
    CalendarVersionOut,
    ClockWithLog,
    PolicyCreate,
    PolicyOut,
    PolicyVersionIn,
    PolicyVersionOut,
)
from services.work import service as work
from services.work.models import Priority
from tenants.principal import Permission

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["sla"], responses=PROBLEM_RESPONSES)

Paging = Annotated[PageRequest, Depends(page_request)]
CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


def _calendars_out(session: DbSession, calendars: Sequence[SlaCalendar]) -> list[CalendarOut]:
    versions = definitions.calendar_versions(session, [c.id for c in calendars])
    return [_calendar_out(calendar, versions[calendar.id]) for calendar in calendars]


def _calendar_out(calendar: SlaCalendar, versions: list[SlaCalendarVersion]) -> CalendarOut:
    return CalendarOut(
        id=calendar.id,
        tenant_id=calendar.tenant_id,
        name=calendar.name,
        versions=[CalendarVersionOut.model_validate(v) for v in versions],
    )


def _policies_out(session: DbSession, found: Sequence[SlaPolicy]) -> list[PolicyOut]:
    versions = definitions.policy_versions(session, [p.id for p in found])
    return [_policy_out(policy, versions[policy.id]) for policy in found]


def _policy_out(policy: SlaPolicy, versions: list[SlaPolicyVersion]) -> PolicyOut:
    return PolicyOut(
        id=policy.id,
        tenant_id=policy.tenant_id,
        name=policy.name,
        versions=[PolicyVersionOut.model_validate(v) for v in versions],
    )


@router.post("/sla/calendars", response_model=CalendarOut, status_code=201, summary="Define a calendar")
def create_calendar(body: CalendarCreate, session: DbSession, principal: CurrentPrincipal) -> CalendarOut:
    return _calendars_out(session, [definitions.create_calendar(session, principal, body)])[0]


@router.get("/sla/calendars", response_model=Page[CalendarOut], summary="Calendars, oldest first")
def list_calendars(session: DbSession, principal: CurrentPrincipal, page: Paging) -> Page[CalendarOut]:
    calendars, next_cursor = definitions.calendars_page(session, principal, page)
    return Page(items=_calendars_out(session, calendars), next_cursor=next_cursor)


@router.get("/sla/calendars/{calendar_id}", response_model=CalendarOut, summary="A calendar and its versions")
def get_calendar(calendar_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> CalendarOut:
    return _calendars_out(session, [definitions.get_calendar(session, principal, calendar_id)])[0]


@router.post(
    "/sla/calendars/{calendar_id}/versions",
    response_model=CalendarOut,
    status_code=201,
    summary="A new version of a calendar, from its effective date (running clocks keep theirs)",
)
def add_calendar_version(
    calendar_id: uuid.UUID, body: CalendarVersionIn, session: DbSession, principal: CurrentPrincipal
) -> CalendarOut:
    version = definitions.add_calendar_version(session, principal, calendar_id, body)
    return _calendars_out(session, [definitions.get_calendar(session, principal, version.calendar_id)])[0]


@router.post("/sla/policies", response_model=PolicyOut, status_code=201, summary="Set a client's SLA policy")
def create_policy(body: PolicyCreate, session: DbSession, principal: CurrentPrincipal) -> PolicyOut:
    return _policies_out(session, [definitions.create_policy(session, principal, body)])[0]


@router.get("/sla/policies", response_model=Page[PolicyOut], summary="SLA policies, oldest first")
def list_policies(session: DbSession, principal: CurrentPrincipal, page: Paging) -> Page[PolicyOut]:
    found, next_cursor = definitions.policies_page(session, principal, page)
    return Page(items=_policies_out(session, found), next_cursor=next_cursor)


@router.get("/sla/policies/{policy_id}", response_model=PolicyOut, summary="A policy and its versions")
def get_policy(policy_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> PolicyOut:
    return _policies_out(session, [definitions.get_policy(session, principal, policy_id)])[0]


@router.post(
    "/sla/policies/{policy_id}/versions",
    response_model=PolicyOut,
    status_code=201,
    summary="A new version of a policy, from its effective date (running clocks keep theirs)",
)
def add_policy_version(
    policy_id: uuid.UUID, body: PolicyVersionIn, session: DbSession, principal: CurrentPrincipal
) -> PolicyOut:
    version = definitions.add_policy_version(session, principal, policy_id, body)
    return _policies_out(session, [definitions.get_policy(session, principal, version.policy_id)])[0]


@router.get(
    "/tasks/{task_id}/sla",
    response_model=list[ClockWithLog],
    summary="A task's SLA clocks, each with its log",
)
def task_clocks(task_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> list[ClockWithLog]:
    principal.require(Permission.SLA_READ)  # targets are the contract's: not for providers
    task = work.get_task(session, principal, task_id)
    return reports.with_logs(session, clocks.clocks_of(session, task))


def report_filter(
    since: Annotated[
        AwareDatetime | None, Query(description="Inclusive; default: 90 days before until")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="Exclusive; default: now")] = None,
    tenant_id: uuid.UUID | None = None,
    queue_id: uuid.UUID | None = None,
    metric: Metric | None = None,
    priority: Priority | None = None,
) -> reports.ReportFilter:
    return reports.ReportFilter(since, until, tenant_id, queue_id, metric, priority)


Filter = Annotated[reports.ReportFilter, Depends(report_filter)]


def _wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def _csv(body: str, name: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get(
    "/sla/attainment",
    response_model=Page[AttainmentRow],
    responses=CSV,
    summary="Met and breached clocks per period, tenant, queue, metric and priority (CSV with Accept)",
)
def attainment(
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    where: Filter,
    granularity: reports.Granularity = "month",
) -> Response | Page[AttainmentRow]:
    rows = reports.attainment(session, principal, where, granularity)
    if _wants_csv(request):
        return _csv(reports.attainment_csv(rows), "sla-attainment")
    return Page(items=rows, next_cursor=None)


@router.get(
    "/sla/breaches",
    response_model=Page[ClockWithLog],
    responses=CSV,
    summary="Breached clocks, each with its log as evidence (CSV with Accept)",
)
def list_breaches(
    request: Request, session: DbSession, principal: CurrentPrincipal, where: Filter, page: Paging
) -> Response | Page[ClockWithLog]:
    found, next_cursor = reports.breaches(session, principal, where, page)
    if _wants_csv(request):
        response = _csv(reports.breaches_csv(found), "sla-breaches")
        if next_cursor:  # the next page: the same filters, the next cursor
            following = request.url.include_query_params(cursor=next_cursor)
            response.headers["Link"] = f'<{following}>; rel="next"'
        return response
    return Page(items=found, next_cursor=next_cursor)
