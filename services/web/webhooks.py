"""The client portal's webhook pages: endpoints, their secrets, and the delivery log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from services.core.deps import AppSettings, DbSession
from services.core.errors import DomainError
from services.core.pagination import PageRequest
from services.core.route_class import UnitOfWorkRoute
from services.identity import csrf
from services.notify import service
from services.notify.models import WebhookDelivery
from services.notify.schemas import EndpointCreate, EndpointUpdate
from services.web.deps import Member
from services.web.portal import page

router = APIRouter(
    route_class=UnitOfWorkRoute,
    prefix="/portal/webhooks",
    include_in_schema=False,
    dependencies=[Depends(csrf.verify)],
)
ALL = PageRequest(limit=200, after=None)


def _page(request: Request, session: DbSession, viewer: Any, template: str, **context: Any) -> Response:
    response = page(request, session, viewer, template, **context)
    response.headers["Cache-Control"] = "no-store"  # a secret may be on the page
    return response


def _list(request: Request, session: DbSession, viewer: Any, **context: Any) -> Response:
    endpoints, _next = service.list_endpoints(session, viewer, ALL)
    return _page(
        request,
        session,
        viewer,
        "portal/webhooks.html",
        endpoints=endpoints,
        event_types=sorted(service.EVENT_TYPES),
        **{"secret": None, "error": None, "url": "", **context},
    )


@router.get("")
def webhooks_page(request: Request, session: DbSession, viewer: Member) -> Response:
    return _list(request, session, viewer)


@router.post("")
def create_endpoint(
    request: Request,
    session: DbSession,
    viewer: Member,
    settings: AppSettings,
    url: Annotated[str, Form(max_length=2000)],
    event_types: Annotated[list[str] | None, Form()] = None,
) -> Response:
    key = service.sealer(settings.resolved_secret_key())
    try:
        data = EndpointCreate(url=url, event_types=event_types or [])
        created = service.create_endpoint(session, viewer, data, key)
    except DomainError as exc:
        session.rollback()
        message = "; ".join(e.message for e in exc.errors) or exc.detail or exc.title
        return _list(request, session, viewer, error=message, url=url)
    except ValidationError as exc:
        return _list(request, session, viewer, error=exc.errors()[0]["msg"], url=url)
    return _list(request, session, viewer, secret=created.secret)


@router.get("/{endpoint_id}")
def endpoint_page(request: Request, endpoint_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    return _endpoint(request, session, viewer, service.get_endpoint(session, viewer, endpoint_id), None)


@router.post("/{endpoint_id}/rotate")
def rotate(
    request: Request, endpoint_id: uuid.UUID, session: DbSession, viewer: Member, settings: AppSettings
) -> Response:
    rotated = service.rotate_secret(
        session, viewer, endpoint_id, service.sealer(settings.resolved_secret_key())
    )
    return _endpoint(request, session, viewer, rotated.endpoint, rotated.secret)


def _endpoint(
    request: Request, session: DbSession, viewer: Any, endpoint: Any, secret: str | None
) -> Response:
    """An endpoint with its delivery log, newest first, each delivery with its attempts."""
    deliveries, _next = service.list_deliveries(session, viewer, endpoint.id, None, ALL)
    newest_first = sorted(deliveries, key=lambda d: d.id, reverse=True)
    return _page(
        request,
        session,
        viewer,
        "portal/webhook.html",
        endpoint=endpoint,
        deliveries=newest_first,
        attempts={d.id: service.attempts_of(session, d) for d in newest_first},
        secret=secret,
    )


@router.post("/{endpoint_id}/enabled")
def set_enabled(
    endpoint_id: uuid.UUID, session: DbSession, viewer: Member, enabled: Annotated[str, Form()] = ""
) -> Response:
    service.update_endpoint(session, viewer, endpoint_id, EndpointUpdate(enabled=bool(enabled)))
    return RedirectResponse(f"/portal/webhooks/{endpoint_id}", status_code=303)


@router.post("/{endpoint_id}/delete")
def delete(endpoint_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    service.delete_endpoint(session, viewer, endpoint_id)
    return RedirectResponse("/portal/webhooks", status_code=303)


@router.post("/deliveries/{delivery_id}/redeliver")
def redeliver(delivery_id: uuid.UUID, session: DbSession, viewer: Member) -> Response:
    delivery: WebhookDelivery = service.redeliver(session, viewer, delivery_id)
    return RedirectResponse(f"/portal/webhooks/{delivery.endpoint_id}", status_code=303)
