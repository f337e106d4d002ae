"""The outbox relay: fans events out to endpoints, then delivers them, signed.

Runs in the worker (a beat job every few seconds). Nothing here holds a database
transaction while waiting on the network: deliveries are claimed with a lease in
one short transaction, sent, and the outcome recorded in another. Two relays
never send the same delivery at once (the lease, taken with SKIP LOCKED on
PostgreSQL), and a task's events reach an endpoint in order: a delivery waits
while an earlier one for the same endpoint and task is still pending.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from services.core.database import Database, affected_rows
from services.core.sealing import Sealer
from services.core.settings import Settings
from services.core.time import utcnow
from services.notify import consumers, signing
from services.notify.models import (
    DeliveryStatus,
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from services.notify.service import sealer, signing_secrets
from tenants.scoping import AccessScope, bind

log = structlog.get_logger()
LEASE = timedelta(seconds=120)  # a batch is sent well within it (see ``run``)
FAN_OUT_BATCH = 1000
DELIVERY_BATCH = 10
PER_ENDPOINT = 3  # deliveries of one endpoint in one claim


def fan_out(session: Session, batch: int = FAN_OUT_BATCH) -> int:
    """One delivery per (event, subscribed endpoint) for the events after the webhooks'
    cursor; 0 when there are none, or while another relay fans out."""
    taken = consumers.read(session, consumers.WEBHOOKS, batch)
    if taken is None or not taken.events:
        return 0
    endpoints: dict[uuid.UUID, list[WebhookEndpoint]] = defaultdict(list)
    for endpoint in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))):
        endpoints[endpoint.tenant_id].append(endpoint)
    now = utcnow()
    for event in taken.events:
        for endpoint in endpoints.get(event.tenant_id, []):
            if endpoint.event_types and event.type not in endpoint.event_types:
                continue
            session.add(
                WebhookDelivery(
                    tenant_id=event.tenant_id,
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    event_type=event.type,
                    subject_id=event.subject_id,
                    next_attempt_at=now,
                )
            )
    taken.done()
    session.flush()
    return len(taken.events)


def claim(session: Session, batch: int = DELIVERY_BATCH) -> uuid.UUID | None:
    """Lease due deliveries that no earlier pending delivery of the same task holds back,
    a few per endpoint at most, so that one slow or failing endpoint never starves the rest."""
    now = utcnow()
    earlier = aliased(WebhookDelivery)
    held_back = exists().where(
        earlier.endpoint_id == WebhookDelivery.endpoint_id,
        earlier.subject_id == WebhookDelivery.subject_id,
        earlier.status == DeliveryStatus.PENDING,
        earlier.event_id < WebhookDelivery.event_id,
    )
    free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
    ranked = (
        select(
            WebhookDelivery.id,
            func.row_number()
            .over(partition_by=WebhookDelivery.endpoint_id, order_by=WebhookDelivery.event_id)
            .label("place"),
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookEndpoint.enabled.is_(True),  # a disabled endpoint keeps its deliveries for later
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            free,
            ~held_back,
        )
        .subquery()
    )
    ids = session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.id.in_(select(ranked.c.id).where(ranked.c.place <= PER_ENDPOINT)))
        .order_by(WebhookDelivery.event_id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    if not ids:
        return None
    token = uuid.uuid4()
    taken = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids), free)
        .values(lease_until=now + LEASE, lease_token=token)
    )
    return token if affected_rows(taken) else None


def release(session: Session, token: uuid.UUID, delivery_ids: list[uuid.UUID]) -> None:
    """Give back leased deliveries this relay will not send (its time is up)."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.lease_token == token)
        .values(lease_until=None, lease_token=None)
    )


@dataclass(frozen=True)
class Outgoing:
    delivery_id: uuid.UUID
    url: str
    body: bytes
    headers: dict[str, str]


def prepare(session: Session, token: uuid.UUID, key: Sealer) -> list[Outgoing]:
    rows = session.execute(
        select(WebhookDelivery, OutboxEvent, WebhookEndpoint)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.lease_token == token)
        .order_by(WebhookDelivery.event_id)
    ).all()
    outgoing = []
    for delivery, event, endpoint in rows:
        body = json.dumps(
            {
                "id": str(event.id),
                "type": event.type,
                "created_at": event.created_at.isoformat(),
                "data": event.data,
            },
            separators=(",", ":"),
        ).encode()
        stamp = int(time.time())
        headers = signing.headers(signing_secrets(endpoint, key), str(event.id), stamp, body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = "bpo-webhooks/1"
        outgoing.append(Outgoing(delivery.id, endpoint.url, body, headers))
    return outgoing


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send(client: httpx.Client, item: Outgoing, allow_private: bool) -> Outcome:
    started = time.monotonic()
    try:
        if not allow_private:
            _refuse_private_target(item.url)
        # The status is all we need: the body is never read, so a receiver that trickles or
        # floods one cannot hold the worker or its memory.
        with client.stream("POST", item.url, content=item.body, headers=item.headers) as answer:
            code, error = answer.status_code, None if answer.is_success else f"HTTP {answer.status_code}"
    except (httpx.HTTPError, OSError, ValueError) as exc:
        code, error = None, f"{type(exc).__name__}: {exc}"[:500]
    return Outcome(code, error, int((time.monotonic() - started) * 1000))


def _refuse_private_target(url: str) -> None:
    """Webhooks must not reach the platform's own network (SSRF)."""
    host = urlsplit(url).hostname or ""
    for info in socket.getaddrinfo(host, None):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ValueError(f"{host} resolves to a non-public address")


def backoff(attempts: int, settings: Settings) -> timedelta:
    """Exponential with full jitter: retries of many deliveries do not arrive together."""
    ceiling = min(
        settings.webhook_backoff_max_seconds, settings.webhook_backoff_seconds * 2 ** (attempts - 1)
    )
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 (not cryptographic)


def record(
    session: Session, delivery_id: uuid.UUID, token: uuid.UUID, outcome: Outcome, settings: Settings
) -> None:
    delivery = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease_token == token)
    ).one_or_none()
    if delivery is None:  # the lease expired and another relay took it over
        return
    now = utcnow()
    session.add(
        WebhookAttempt(
            tenant_id=delivery.tenant_id,
            delivery_id=delivery.id,
            at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    delivery.lease_until = None
    delivery.lease_token = None
    if outcome.succeeded:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = now
    elif delivery.attempts >= settings.webhook_max_attempts:
        delivery.status = DeliveryStatus.DEAD
        log.warning("webhook dead-lettered", delivery_id=str(delivery.id), error=outcome.error)
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts, settings)


def run(database: Database, settings: Settings, deadline_seconds: float = 20.0) -> int:
    """Fan out and deliver until nothing is due or the time is up; the number of sends."""
    key = sealer(settings.resolved_secret_key())
    stop_at = time.monotonic() + deadline_seconds
    sent = 0
    with database.session() as session:
        bind(session, AccessScope.everything())
        while fan_out(session):
            session.commit()
    # One send takes at most about three timeouts (connect, write, read the status line);
    # nothing is sent unless that fits in the lease and in the run's own deadline.
    one_send = 3 * settings.webhook_timeout_seconds
    with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client:
        while time.monotonic() < stop_at:
            with database.session() as session:
                bind(session, AccessScope.everything())
                token = claim(session)
                outgoing = prepare(session, token, key) if token else []
            if token is None:
                break
            leased_until = time.monotonic() + LEASE.total_seconds()
            for index, item in enumerate(outgoing):
                if time.monotonic() + one_send > min(leased_until, stop_at + one_send):
                    with database.session() as session:
                        bind(session, AccessScope.everything())
                        release(session, token, [left.delivery_id for left in outgoing[index:]])
                    return sent
                outcome = send(client, item, settings.webhook_allow_private_networks)
                with database.session() as session:
                    bind(session, AccessScope.everything())
                    record(session, item.delivery_id, token, outcome, settings)
                sent += 1
    return sent
