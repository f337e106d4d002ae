"""HTTP of webhooks: endpoints, secret rotation, delivery history and redelivery."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from services.core.deps import AppSettings, DbSession
from services.core.pagination import Page, PageRequest, page_request
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.identity.deps import CurrentPrincipal
from services.notify import service
from services.notify.models import DeliveryStatus, WebhookDelivery
from services.notify.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
)

router = APIRouter(route_class=UnitOfWorkRoute, prefix="/v1", tags=["webhooks"], responses=PROBLEM_RESPONSES)
Paging = Annotated[PageRequest, Depends(page_request)]


def _with_secret(created: service.EndpointWithSecret) -> EndpointWithSecret:
    return EndpointWithSecret(
        **EndpointOut.model_validate(created.endpoint).model_dump(), secret=created.secret
    )


@router.post(
    "/webhook-endpoints",
    response_model=EndpointWithSecret,
    status_code=201,
    summary="Register an endpoint; its signing secret is shown once",
)
def create_endpoint(
    body: EndpointCreate, session: DbSession, principal: CurrentPrincipal, settings: AppSettings
) -> EndpointWithSecret:
    key = service.sealer(settings.resolved_secret_key())
    return _with_secret(service.create_endpoint(session, principal, body, key))


@router.get("/webhook-endpoints", response_model=Page[EndpointOut], summary="Your webhook endpoints")
def list_endpoints(session: DbSession, principal: CurrentPrincipal, page: Paging) -> Page[EndpointOut]:
    rows, next_cursor = service.list_endpoints(session, principal, page)
    return Page(items=[EndpointOut.model_validate(e) for e in rows], next_cursor=next_cursor)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut, summary="One endpoint")
def get_endpoint(endpoint_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> EndpointOut:
    return EndpointOut.model_validate(service.get_endpoint(session, principal, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut, summary="Change an endpoint")
def update_endpoint(
    endpoint_id: uuid.UUID, body: EndpointUpdate, session: DbSession, principal: CurrentPrincipal
) -> EndpointOut:
    return EndpointOut.model_validate(service.update_endpoint(session, principal, endpoint_id, body))


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204, summary="Remove an endpoint")
def delete_endpoint(endpoint_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> Response:
    service.delete_endpoint(session, principal, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    summary="New signing secret; the previous one keeps signing for 24 hours",
)
def rotate_secret(
    endpoint_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal, settings: AppSettings
) -> EndpointWithSecret:
    key = service.sealer(settings.resolved_secret_key())
    return _with_secret(service.rotate_secret(session, principal, endpoint_id, key))


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="Deliveries to an endpoint, oldest first",
)
def list_deliveries(
    endpoint_id: uuid.UUID,
    session: DbSession,
    principal: CurrentPrincipal,
    page: Paging,
    status: DeliveryStatus | None = None,
) -> Page[DeliveryOut]:
    rows, next_cursor = service.list_deliveries(session, principal, endpoint_id, status, page)
    return Page(items=[DeliveryOut.model_validate(d) for d in rows], next_cursor=next_cursor)


def _detail(session: DbSession, delivery: WebhookDelivery) -> DeliveryDetail:
    attempts = [AttemptOut.model_validate(a) for a in service.attempts_of(session, delivery)]
    return DeliveryDetail(**DeliveryOut.model_validate(delivery).model_dump(), attempt_log=attempts)


@router.get(
    "/webhook-deliveries/{delivery_id}",
    response_model=DeliveryDetail,
    summary="One delivery with every attempt",
)
def get_delivery(delivery_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> DeliveryDetail:
    return _detail(session, service.get_delivery(session, principal, delivery_id))


@router.post(
    "/webhook-deliveries/{delivery_id}/redeliver",
    response_model=DeliveryDetail,
    summary="Send a delivery again (e.g. after it was dead-lettered)",
)
def redeliver(delivery_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal) -> DeliveryDetail:
    return _detail(session, service.redeliver(session, principal, delivery_id))
