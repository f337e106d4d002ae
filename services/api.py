"""The ``api`` process role: the FastAPI application."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from kombu import Connection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

import services.models  # noqa: F401  (every table; the SLA clocks observe task history)
from services.billing import routes as billing_routes
from services.core import errors, problems
from services.core.database import Database
from services.core.http import BodyLimitMiddleware, MetricsMiddleware
from services.core.logging import configure_logging
from services.core.settings import Settings, get_settings
from services.identity import routes as identity_routes
from services.metering import routes as metering_routes
from services.notify import routes as notify_routes
from services.routing import routes as routing_routes
from services.sla import routes as sla_routes
from services.web import billing as web_billing
from services.web import deps as web_deps
from services.web import engagements as web_engagements
from services.web import errors as web_errors
from services.web import portal as web_portal
from services.web import routes as web_routes
from services.web import sla as web_sla
from services.web import team_board as web_team_board
from services.web import team_editing as web_team_editing
from services.web import webhooks as web_webhooks
from services.web import workspace as web_workspace
from services.web.templating import TEMPLATES_DIR
from services.work import file_routes as work_file_routes
from services.work import routes as work_routes
from services.workforce import routes as workforce_routes
from tenants import routes as tenant_routes

STATIC_DIR = TEMPLATES_DIR.parent / "static"
log = structlog.get_logger()


# The pages, out of the OpenAPI document: the page isolation suite walks these.
PAGE_ROUTERS = (
    web_routes.router,
    web_portal.router,
    web_webhooks.router,
    web_sla.router,
    web_workspace.router,
    web_team_board.router,
    web_team_editing.router,
    web_engagements.router,
    web_billing.router,
)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="BPO platform API",
        version="1",
        description="Intake, routing, SLA, metering and billing of outsourced back-office work.",
    )
    app.state.settings = settings
    app.state.db = database or Database.from_settings(settings)

    _install_error_handlers(app)
    # Routes are matched in order, twice a request: client systems' intake first.
    app.include_router(work_routes.router)
    app.include_router(work_file_routes.router)
    app.include_router(identity_routes.oauth_router)
    app.include_router(identity_routes.router)
    app.include_router(tenant_routes.router)
    app.include_router(notify_routes.router)
    app.include_router(sla_routes.router)
    app.include_router(workforce_routes.router)
    app.include_router(routing_routes.router)
    app.include_router(metering_routes.router)
    app.include_router(billing_routes.router)
    app.include_router(billing_routes.stripe_router)
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_operations_routes(app)

    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limits(settings), on_too_large=_too_large)
    return app


def body_limits(settings: Settings) -> Any:
    """Uploads may be larger than JSON bodies; the services check their own finer limits."""
    multipart_overhead = 64 * 1024

    def limit_for(path: str) -> int:
        if path in ("/v1/tasks/bulk", "/portal/imports"):
            return settings.bulk_max_bytes
        if path.endswith("/attachments"):
            return settings.attachment_max_bytes + multipart_overhead
        return settings.max_body_bytes

    return limit_for


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    request = Request(scope, receive)
    error = errors.PayloadTooLarge(f"the limit is {limit} bytes")
    await problems.render_domain_error(request, error)(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    """Pages for people in a browser, problem+json for everything else."""

    def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.DomainError)
        if web_errors.wants_page(request):
            return web_errors.error_page(request, problems.status_of(exc), exc.title, exc.detail)
        return problems.render_domain_error(request, exc)

    def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error_cls = problems.ERROR_BY_STATUS.get(exc.status_code)
        if web_errors.wants_page(request) and error_cls is not None:
            return web_errors.error_page(request, exc.status_code, error_cls.title, None)
        return problems.render_http_exception(request, exc)

    def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problems.render_validation_error(request, exc)

    def on_integrity_error(request: Request, exc: Exception) -> Response:
        # Two requests raced for the same unique value; the loser is told, not a 500.
        return on_domain_error(request, errors.Conflict("a concurrent change created the same record"))

    def on_stale_data(request: Request, exc: Exception) -> Response:
        # Another transaction changed the row between our read and our write (version_id_col).
        if request.headers.get("if-match"):
            return on_domain_error(request, errors.PreconditionFailed("it changed while your request ran"))
        return on_domain_error(request, errors.Conflict("it changed while your request ran; read it again"))

    def on_unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        return on_domain_error(request, errors.InternalError())

    def on_sign_in_required(request: Request, exc: Exception) -> Response:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    app.add_exception_handler(web_deps.SignInRequired, on_sign_in_required)
    app.add_exception_handler(IntegrityError, on_integrity_error)
    app.add_exception_handler(StaleDataError, on_stale_data)
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_exception_handler(errors.DomainError, on_domain_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def _add_operations_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Database and broker are reachable")
    def readyz(request: Request) -> Response:
        checks = {
            "database": _check_database(request.app.state.db),
            "broker": _check_broker(request.app.state.settings),
        }
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
        if ready:
            return JSONResponse(body)
        error = errors.ServiceUnavailable(", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok"))
        return problems.problem_response(
            request, 503, error.type, error.title, error.detail, extra={"checks": checks}
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _check_database(database: Database) -> str:
    try:
        with database.sessions() as session:
            session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the message says which
        return f"error: {type(exc).__name__}"


def _check_broker(settings: Settings) -> str:
    try:
        with Connection(settings.resolved_broker_url(), connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
        return "ok"
    except Exception as exc:  # as above
        return f"error: {type(exc).__name__}"
