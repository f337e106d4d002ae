"""Stripe's webhooks (``POST /stripe/webhooks``): what Stripe says of an invoice moves ours.

A delivery is believed only once its ``Stripe-Signature`` verifies with
``BPO_STRIPE_WEBHOOK_SECRET``; a bad or missing one changes nothing (``BadRequest``).

Stripe delivers at least once, late, and in any order, so the rule is about states,
not deliveries:

- ``invoice.finalized`` and ``invoice.sent`` say ``open``, ``invoice.paid`` and
  ``invoice.payment_succeeded`` say ``paid``, ``invoice.payment_failed`` says
  ``payment_failed``, ``invoice.voided`` says ``void``; any other event is ignored.
- The invoice is ours by ``data.object.metadata.invoice_id`` (the Stripe invoice must be
  the one we recorded, if we did), else by its recorded ``stripe_invoice_id``; one we do
  not know (another system's, one made before localstripe was reset) is ignored.
- States move forward only: ``pending_sync`` to any of them; ``open`` to ``paid``,
  ``payment_failed`` or ``void``; ``payment_failed`` to ``paid`` (a retry succeeded) or
  ``void``; ``paid`` and ``void`` are final. An event that would go back is "stale".
- An event older (its ``created``) than the state last applied (``stripe_state_at``) is
  "stale" too: a late failure never undoes a later success, even where the order above
  would allow it. Within one second, the order above decides.
- An event whose state the invoice already has changes nothing: "duplicate". So the same
  event delivered twice changes the state once, with no table of the events seen.
"""

from __future__ import annotations

import uuid
from typing import Any

import stripe
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing.models import Invoice, InvoiceStatus
from services.core.errors import BadRequest, ServiceUnavailable
from services.core.settings import Settings
from tenants.scoping import AccessScope, bind, fetch

log = structlog.get_logger()

STATE_OF_EVENT = {
    "invoice.finalized": InvoiceStatus.OPEN,
    "invoice.sent": InvoiceStatus.OPEN,
    "invoice.paid": InvoiceStatus.PAID,
    "invoice.payment_succeeded": InvoiceStatus.PAID,
    "invoice.payment_failed": InvoiceStatus.PAYMENT_FAILED,
    "invoice.voided": InvoiceStatus.VOID,
}
FORWARD = {
    InvoiceStatus.PENDING_SYNC: {
        InvoiceStatus.OPEN,
        InvoiceStatus.PAID,
        InvoiceStatus.PAYMENT_FAILED,
        InvoiceStatus.VOID,
    },
    InvoiceStatus.OPEN: {InvoiceStatus.PAID, InvoiceStatus.PAYMENT_FAILED, InvoiceStatus.VOID},
    InvoiceStatus.PAYMENT_FAILED: {InvoiceStatus.PAID, InvoiceStatus.VOID},
}


def handle(session: Session, payload: bytes, signature: str | None, settings: Settings) -> str:
    """Apply one delivery: "applied", "stale", "duplicate" or "ignored". Verified, Stripe
    acts for the platform: the session is bound to every tenant here."""
    event = _verified(payload, signature, settings)
    kind = event.get("type")
    obj = (event.get("data") or {}).get("object") or {}
    target = STATE_OF_EVENT.get(str(kind))
    if target is None or obj.get("object") != "invoice":
        return "ignored"
    bind(session, AccessScope.everything())
    invoice = _ours(session, obj)
    if invoice is None:
        log.info("billing.stripe_webhook_unknown", event_id=event.get("id"), stripe_invoice_id=obj.get("id"))
        return "ignored"
    created = int(event.get("created") or 0)
    if invoice.status is target:
        outcome = "duplicate"
    elif created < invoice.stripe_state_at or target not in FORWARD.get(invoice.status, set()):
        outcome = "stale"
    else:
        invoice.status = target
        invoice.stripe_state_at = created
        invoice.stripe_invoice_id = invoice.stripe_invoice_id or str(obj["id"])
        session.flush()
        outcome = "applied"
    log.info(
        "billing.stripe_webhook",
        event_id=event.get("id"),
        type=kind,
        invoice_id=str(invoice.id),
        status=invoice.status.value,
        outcome=outcome,
    )
    return outcome


def _verified(payload: bytes, signature: str | None, settings: Settings) -> dict[str, Any]:
    if not settings.stripe_webhook_secret:
        raise ServiceUnavailable("Stripe webhooks are not configured (BPO_STRIPE_WEBHOOK_SECRET)")
    if not signature:
        raise BadRequest("the Stripe-Signature header is missing")
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.stripe_webhook_secret)
    except stripe.SignatureVerificationError as error:
        raise BadRequest(f"the Stripe-Signature does not verify: {error.user_message or error}") from error
    except ValueError as error:  # signed, yet not JSON
        raise BadRequest("the body is not a Stripe event") from error
    found = event.to_dict()
    if not isinstance(found, dict):
        raise BadRequest("the body is not a Stripe event")
    return found


def _ours(session: Session, obj: dict[str, Any]) -> Invoice | None:
    """Locked, so that two deliveries about one invoice are applied one after the other."""
    stripe_id = obj.get("id")
    metadata = obj.get("metadata") or {}
    try:
        invoice_id = uuid.UUID(str(metadata.get("invoice_id")))
    except ValueError:
        invoice_id = None
    if invoice_id is not None:
        invoice = fetch(session, Invoice, invoice_id, lock=True)
        if invoice is not None and invoice.stripe_invoice_id in (None, stripe_id):
            return invoice
        if invoice is not None:
            return None  # another Stripe invoice claiming to be this one: not the one we sent
    if not stripe_id:
        return None
    query = select(Invoice).where(Invoice.stripe_invoice_id == str(stripe_id)).with_for_update()
    return session.scalars(query).first()
