"""The SLA pages: the account manager's risk board across their portfolio (a table that
refreshes itself, the open alerts, attainment over time) and a client's SLA page
(the targets in force, attainment per period, recent breaches).

The attainment chart is an SVG drawn here, on the server, with the same numbers in a
table next to it for screen readers and for copying.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from babel import Locale
from babel.dates import format_date, format_skeleton
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from services.core import i18n
from services.core.deps import DbSession
from services.core.errors import Forbidden, NotFound
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.sla import board, overview
from services.web.deps import Member, Viewer
from services.web.portal import page
from services.web.templating import METRIC_LABELS, format_ratio, render
from tenants.models import Organization
from tenants.principal import OrgKind, Permission, Principal

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False, dependencies=[Depends(csrf.verify)])
REFRESH_SECONDS = 15


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _granularity(value: str) -> overview.ChartGranularity:
    return "week" if value == "week" else "month"


def _operator(viewer: Principal) -> None:
    """The board is the operator's (an account manager's portfolio, or everything for an admin)."""
    viewer.require(Permission.SLA_READ)
    if viewer.org_kind is not OrgKind.OPERATOR:
        raise Forbidden()


def _chosen_tenant(tenants: list[Organization], tenant: str) -> Organization | None:
    """The one tenant asked for, if any: one outside the portfolio is not found, like a bad id."""
    if not tenant:
        return None
    try:
        wanted = uuid.UUID(tenant)
    except ValueError:
        raise NotFound() from None
    found = next((o for o in tenants if o.id == wanted), None)
    if found is None:
        raise NotFound()
    return found


# ---------------------------------------------------------------- the chart


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str  # "Mar 2026 · First response: 93.1% (27/29)"


@dataclass(frozen=True)
class Series:
    metric: str
    name: str
    segments: list[str]  # polyline points, broken where a period has no settled clock
    dots: list[Dot]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    series: list[Series]
    # The same numbers as a table: one row per period, one cell per metric.
    rows: list[tuple[str, list[tuple[str, str]]]]
    metric_names: list[str]
    granularity: str


WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 36


def attainment_chart(data: overview.AttainmentOverTime, locale: str) -> Chart:
    babel_locale = Locale.parse(locale)
    translations = i18n.translations(locale)
    names = {m: translations.gettext(METRIC_LABELS[m.value]) for m in data.metrics}
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_width / len(data.periods)

    def x_of(index: int) -> float:
        return round(LEFT + (index + 0.5) * step, 1)

    def y_of(share: float) -> float:
        return round(TOP + (1 - share) * plot_height, 1)

    def axis_label(index: int, period: overview.Period) -> str:
        """Short enough for the axis: the year only where it starts or changes."""
        if data.granularity == "week":
            return format_skeleton("MMMd", period.start, locale=babel_locale)
        with_year = index == 0 or period.start.month == 1
        return format_skeleton("yMMM" if with_year else "MMM", period.start, locale=babel_locale)

    def long_label(period: overview.Period) -> str:
        if data.granularity == "week":
            week_of = translations.gettext("Week of %(date)s")
            return week_of % {"date": format_date(period.start, "medium", locale=babel_locale)}
        return format_skeleton("yMMMM", period.start, locale=babel_locale)

    series = []
    for metric in data.metrics:
        segments: list[list[str]] = [[]]
        dots = []
        for index, period in enumerate(data.periods):
            tally = data.tally(period, metric)
            share = tally.attainment
            if share is None:
                if segments[-1]:
                    segments.append([])
                continue
            x, y = x_of(index), y_of(share)
            segments[-1].append(f"{x},{y}")
            counts = f"{tally.met}/{tally.met + tally.breached}"
            text = f"{long_label(period)} · {names[metric]}: {format_ratio(share, babel_locale)} ({counts})"
            dots.append(Dot(x, y, text))
        series.append(Series(metric.value, names[metric], [" ".join(s) for s in segments if s], dots))

    rows = []
    for period in data.periods:
        cells = []
        for metric in data.metrics:
            tally = data.tally(period, metric)
            share = tally.attainment
            shown = "—" if share is None else format_ratio(share, babel_locale)
            cells.append((shown, f"{tally.met}/{tally.met + tally.breached}" if share is not None else ""))
        rows.append((long_label(period), cells))

    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=HEIGHT - BOTTOM,
        y_ticks=[(y_of(share), format_ratio(share, babel_locale)) for share in (0, 0.25, 0.5, 0.75, 1)],
        x_labels=[(x_of(i), axis_label(i, p)) for i, p in enumerate(data.periods)],
        series=series,
        rows=rows,
        metric_names=[names[m] for m in data.metrics],
        granularity=data.granularity,
    )


# ---------------------------------------------------------------- the account manager's board


@router.get("/sla")
def board_page(
    request: Request,
    session: DbSession,
    viewer: Member,
    tenant: Annotated[str, Query(max_length=64)] = "",
    granularity: Annotated[str, Query(max_length=8)] = "month",
) -> Response:
    if viewer.org_kind is OrgKind.CLIENT:
        return _redirect("/portal/sla")  # a client reads its own SLA page
    _operator(viewer)
    tenants = overview.client_tenants(session, viewer)
    chosen = _chosen_tenant(tenants, tenant)
    tenant_id = chosen.id if chosen else None
    over_time = overview.attainment_over_time(session, viewer, _granularity(granularity), tenant_id=tenant_id)
    return page(
        request,
        session,
        viewer,
        "sla/board.html",
        tenants=tenants,
        chosen=chosen,
        granularity=over_time.granularity,
        risk=board.at_risk(session, viewer, tenant_id=tenant_id),
        risk_url="/sla/risk" + (f"?tenant={chosen.id}" if chosen else ""),
        refresh_seconds=REFRESH_SECONDS,
        alerts=board.open_alerts(session, viewer, tenant_id=tenant_id),
        chart=attainment_chart(over_time, request.state.locale),
    )


@router.get("/sla/risk")
def risk_fragment(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    tenant: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The board's table alone, which the page fetches again every few seconds."""
    if viewer is None:  # signed out meanwhile: send the whole page to the login, not the table
        return Response(status_code=204, headers={"HX-Redirect": "/login?next=/sla"})
    _operator(viewer)
    chosen = _chosen_tenant(overview.client_tenants(session, viewer), tenant)
    risk = board.at_risk(session, viewer, tenant_id=chosen.id if chosen else None)
    response = render(request, "sla/_risk.html", {"viewer": viewer, "risk": risk})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/sla/alerts/{escalation_id}/acknowledge")
def acknowledge_alert(
    request: Request, escalation_id: uuid.UUID, session: DbSession, viewer: Member
) -> Response:
    _operator(viewer)
    board.acknowledge(session, viewer, escalation_id)
    if request.headers.get("hx-request"):
        return Response(status_code=200)  # htmx removes the alert's row
    return _redirect("/sla#alerts")


# ---------------------------------------------------------------- a client's SLA page


@router.get("/portal/sla")
def client_page(
    request: Request,
    session: DbSession,
    viewer: Member,
    granularity: Annotated[str, Query(max_length=8)] = "month",
) -> Response:
    if viewer.org_kind is OrgKind.OPERATOR:
        return _redirect("/sla")
    over_time = overview.attainment_over_time(session, viewer, _granularity(granularity))
    context: dict[str, Any] = {
        "targets": overview.targets_in_force(session, viewer),
        "granularity": over_time.granularity,
        "chart": attainment_chart(over_time, request.state.locale),
        "breaches": overview.recent_breaches(session, viewer),
    }
    return page(request, session, viewer, "sla/client.html", **context)
