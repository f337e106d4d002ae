"""Webhook endpoints of a tenant, their secrets, and the delivery history it sees."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from services.core.pagination import PageRequest, fetch_page
from services.core.sealing import Sealer
from services.core.time import utcnow
from services.notify import signing
from services.notify.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services.notify.schemas import EndpointCreate, EndpointUpdate
from tenants.principal import Permission, Principal
from tenants.scoping import fetch

SEALING_PURPOSE = "bpo webhook endpoint secrets"
ROTATION_GRACE = timedelta(hours=24)  # both secrets sign while receivers switch
EVENT_TYPES = frozenset(
    {
        "task.created",
        "task.updated",
        "task.status_changed",
        "task.comment_added",
        "task.attachment_added",
        "sla.warning",
        "sla.breached",
        "sla.met",
    }
)
MAX_ENDPOINTS = 20


def sealer(secret_key: str) -> Sealer:
    return Sealer(secret_key, SEALING_PURPOSE)


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValidationFailed(errors=[FieldError("/url", "must be https (http only on loopback)")])
    if not parts.hostname or parts.username or parts.password:
        raise ValidationFailed(errors=[FieldError("/url", "needs a host and no credentials")])
    return url


def _check_event_types(types: list[str]) -> list[str]:
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed(
            errors=[
                FieldError(
                    f"/event_types/{types.index(t)}", f"unknown; known: {', '.join(sorted(EVENT_TYPES))}"
                )
                for t in unknown
            ]
        )
    return sorted(set(types))


def create_endpoint(
    session: Session, principal: Principal, data: EndpointCreate, key: Sealer
) -> EndpointWithSecret:
    principal.require(Permission.WEBHOOKS_MANAGE)
    existing = session.scalars(select(WebhookEndpoint.id)).all()
    if len(existing) >= MAX_ENDPOINTS:
        raise ValidationFailed(f"at most {MAX_ENDPOINTS} endpoints")
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=principal.org_id,
        url=_check_url(data.url),
        description=data.description,
        event_types=_check_event_types(data.event_types),
        sealed_secret=key.seal(secret),
    )
    session.add(endpoint)
    session.flush()
    return EndpointWithSecret(endpoint, secret)


def get_endpoint(session: Session, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    principal.require(Permission.WEBHOOKS_MANAGE)
    endpoint = fetch(session, WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("no such webhook endpoint")
    return endpoint


def list_endpoints(
    session: Session, principal: Principal, page: PageRequest
) -> tuple[Sequence[WebhookEndpoint], str | None]:
    principal.require(Permission.WEBHOOKS_MANAGE)
    return fetch_page(session, select(WebhookEndpoint), WebhookEndpoint.id, page)


def update_endpoint(
    session: Session, principal: Principal, endpoint_id: uuid.UUID, data: EndpointUpdate
) -> WebhookEndpoint:
    endpoint = get_endpoint(session, principal, endpoint_id)
    if data.url is not None:
        endpoint.url = _check_url(data.url)
    if data.description is not None:
        endpoint.description = data.description
    if data.event_types is not None:
        endpoint.event_types = _check_event_types(data.event_types)
    if data.enabled is not None:
        endpoint.enabled = data.enabled
    session.flush()
    return endpoint


def delete_endpoint(session: Session, principal: Principal, endpoint_id: uuid.UUID) -> None:
    session.delete(get_endpoint(session, principal, endpoint_id))
    session.flush()


def rotate_secret(
    session: Session, principal: Principal, endpoint_id: uuid.UUID, key: Sealer
) -> EndpointWithSecret:
    """A new secret signs from now on; the old one keeps signing too for a grace period."""
    endpoint = get_endpoint(session, principal, endpoint_id)
    secret = signing.new_secret()
    endpoint.sealed_previous_secret = endpoint.sealed_secret
    endpoint.previous_secret_expires_at = utcnow() + ROTATION_GRACE
    endpoint.sealed_secret = key.seal(secret)
    session.flush()
    return EndpointWithSecret(endpoint, secret)


def signing_secrets(endpoint: WebhookEndpoint, key: Sealer) -> list[str]:
    found = [key.unseal(endpoint.sealed_secret)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.sealed_previous_secret and expires is not None and expires > utcnow():
        found.append(key.unseal(endpoint.sealed_previous_secret))
    return found


def list_deliveries(
    session: Session,
    principal: Principal,
    endpoint_id: uuid.UUID,
    status: DeliveryStatus | None,
    page: PageRequest,
) -> tuple[Sequence[WebhookDelivery], str | None]:
    endpoint = get_endpoint(session, principal, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return fetch_page(session, query, WebhookDelivery.id, page)


def get_delivery(session: Session, principal: Principal, delivery_id: uuid.UUID) -> WebhookDelivery:
    principal.require(Permission.WEBHOOKS_MANAGE)
    delivery = fetch(session, WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound("no such delivery")
    return delivery


def attempts_of(session: Session, delivery: WebhookDelivery) -> Sequence[WebhookAttempt]:
    return session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.id)
    ).all()


def redeliver(session: Session, principal: Principal, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Send again now: after a dead letter, or to replay one the receiver lost."""
    delivery = get_delivery(session, principal, delivery_id)
    if delivery.status is DeliveryStatus.PENDING:
        raise Conflict("this delivery is still being tried", extra={"status": delivery.status.value})
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0  # a new round of retries; the attempt log keeps the earlier ones
    delivery.next_attempt_at = utcnow()
    delivery.lease_until = None
    delivery.lease_token = None
    session.flush()
    return delivery
