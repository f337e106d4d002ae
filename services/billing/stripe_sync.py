"""Pushing finalised invoices to Stripe, the payment system of record.

One Stripe customer per client organisation (``Contract.stripe_customer_id``), with a
zero-price monthly subscription in the invoice's currency (``stripe_subscription_id``)
that the invoice items attach to; then one invoice item per line, one per tax rate, and
the Stripe invoice made of them. Stripe collects it by our payment terms, never by
charging the card on file: the draft is set to ``send_invoice`` due on our due date (the
end of ``due_on`` in the billing timezone), then finalised and sent. Our invoice goes from
``pending_sync`` to ``open``; Stripe's webhooks take it further (``stripe_webhooks``).

Idempotent on our side, not only through Stripe's idempotency keys: localstripe, which
the tests run against, does not replay them, and a real key expires after a day. Every
object is found again before it is created (the ids we recorded, then Stripe metadata:
``tenant_id`` on customers and subscriptions, ``invoice_id`` and ``line_id`` on items
and invoices), so a sync that failed half way, or whose commit was lost, resumes
without a duplicate. The keys are still sent, for real Stripe's network retries.

Tax is sent as one more invoice item per rate, not as a Stripe tax rate: Stripe computes
a tax rate on each line and rounds each, where our invoice computes VAT once on the
taxable subtotal (half-even, ``docs/billing.md``), so a tax rate could put Stripe a
minor unit away from the invoice the client holds. The Stripe invoice's total is ours.

A credit note, or an invoice whose total is zero or negative, goes the same way, with
negative items: Stripe has nothing to collect, and real Stripe adds a negative total to
the customer's credit balance, which it takes off the client's next payment. Stripe's
own credit notes (against the credited Stripe invoice) would say it better, but
localstripe has none, and a path the tests cannot run is a path that breaks unseen.

A Stripe failure leaves the invoice ``pending_sync`` with ``sync_attempts`` counted and
``sync_error`` said; ``sync_pending`` retries it later, backing off (``next_attempt_at``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import stripe
import structlog
from babel.numbers import format_decimal
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing import descriptions, invoices
from services.billing.models import Contract, Invoice, InvoiceStatus
from services.core import money
from services.core.database import Database
from services.core.i18n import gettext
from services.core.settings import Settings
from services.core.time import utcnow
from tenants.models import Organization
from tenants.scoping import AccessScope, bind, fetch

log = structlog.get_logger()

PRODUCT_NAME = "BPO services"
# Retries: the first after 30 s, doubling, at most an hour apart (see ``next_attempt_at``).
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
TIMEOUT_SECONDS = 20.0  # a hung Stripe call holds the invoice's row lock: not for long
# Stripe takes a due date only in the future: an invoice that reaches Stripe after its due
# day (a sync held back longer than the payment terms) is due this long after it does.
EARLIEST_DUE = timedelta(hours=1)
_warned_unconfigured = False


class SyncBlocked(Exception):
    """Stripe holds something that makes going on wrong (another invoice's pending items,
    a subscription in another currency): retried later, and said in ``sync_error``."""


def client_for(settings: Settings) -> stripe.StripeClient | None:
    """A Stripe client as the settings say (``stripe_api_base``: localstripe), or None."""
    if not settings.stripe_api_key:
        return None
    return stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
        max_network_retries=2,  # safe: every write carries an idempotency key
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )


# ------------------------------------------------------------------ the runs


def next_attempt_at(invoice: Invoice) -> datetime:
    """When a pending invoice is next due: at once, then on a schedule counted from its
    finalisation, 30 s, 60 s, 120 s... apart, at most an hour (no column keeps the last
    attempt's time: an invoice whose retries started late catches up in quick runs)."""
    start = invoice.finalised_at or invoice.closed_at
    waited, step = timedelta(0), FIRST_RETRY
    for _ in range(invoice.sync_attempts):
        waited += step
        step = min(step * 2, LONGEST_RETRY)
    return start + waited


def sync_pending(database: Database, settings: Settings, now: datetime | None = None) -> int:
    """Every invoice in ``pending_sync`` that is due, oldest first, each in its own
    transaction; the number now in Stripe. Without a Stripe key, nothing (said once)."""
    global _warned_unconfigured
    client = client_for(settings)
    if client is None:
        if not _warned_unconfigured:
            log.warning("billing.stripe_sync_off", reason="no BPO_STRIPE_API_KEY: invoices stay pending_sync")
            _warned_unconfigured = True
        return 0
    now = now or utcnow()
    synced = 0
    _void_in_stripe(database, client, now)
    for invoice_id in _due(database, now):
        try:
            with database.session() as session:
                bind(session, AccessScope.everything())
                if _sync(session, invoice_id, client, due_by=now):
                    synced += 1
        except Exception as error:  # one invoice must not stop the others; it is retried later
            log.exception("billing.stripe_sync_crashed", invoice_id=str(invoice_id))
            _count_failure(database, invoice_id, f"internal error: {type(error).__name__}: {error}")
    return synced


def _void_in_stripe(database: Database, client: stripe.StripeClient, now: datetime) -> None:
    """Invoices voided here after they reached Stripe: Stripe's copy is voided (its draft
    deleted), so that it collects nothing; one already paid there is left for a person
    (refund), and said in ``sync_error``."""
    with database.session() as session:
        bind(session, AccessScope.everything())
        voided = session.scalars(
            select(Invoice.id).where(
                Invoice.status == InvoiceStatus.VOID,
                Invoice.stripe_invoice_id.is_not(None),
                Invoice.stripe_voided_at.is_(None),
            )
        ).all()
    for invoice_id in voided:
        try:
            with database.session() as session:
                bind(session, AccessScope.everything())
                invoice = fetch(session, Invoice, invoice_id, lock=True)
                if (
                    invoice is None
                    or invoice.stripe_invoice_id is None
                    or invoice.stripe_voided_at is not None
                ):
                    continue
                remote = client.v1.invoices.retrieve(invoice.stripe_invoice_id)
                if remote.status == "draft":
                    client.v1.invoices.delete(invoice.stripe_invoice_id)
                elif remote.status in ("open", "uncollectible"):
                    client.v1.invoices.void_invoice(invoice.stripe_invoice_id)
                elif remote.status == "paid":
                    invoice.sync_error = "paid in Stripe before it was voided here: refund it there"
                    log.warning("billing.stripe_paid_but_void", invoice_id=str(invoice.id))
                invoice.stripe_voided_at = now
        except stripe.StripeError as error:  # retried on the next run
            log.warning("billing.stripe_void_failed", invoice_id=str(invoice_id), error=_said(error))


def _due(database: Database, now: datetime) -> list[uuid.UUID]:
    with database.session() as session:
        bind(session, AccessScope.everything())
        pending = session.scalars(
            select(Invoice)
            .where(Invoice.status == InvoiceStatus.PENDING_SYNC)
            .order_by(Invoice.finalised_at, Invoice.created_at, Invoice.id)
        ).all()
        return [invoice.id for invoice in pending if next_attempt_at(invoice) <= now]


def _count_failure(database: Database, invoice_id: uuid.UUID, error: str) -> None:
    with database.session() as session:
        bind(session, AccessScope.everything())
        invoice = fetch(session, Invoice, invoice_id, lock=True)
        if invoice is not None and invoice.status is InvoiceStatus.PENDING_SYNC:
            invoice.sync_attempts += 1
            invoice.sync_error = error[:500]


def sync_invoice(session: Session, invoice_id: uuid.UUID, client: stripe.StripeClient) -> None:
    """Push one finalised invoice to Stripe (nothing unless it is ``pending_sync``). The
    session sees the invoice's tenant; the caller commits, a Stripe failure included:
    the attempt is counted and what was learnt of Stripe (the customer's id...) is kept."""
    _sync(session, invoice_id, client)


def _sync(
    session: Session, invoice_id: uuid.UUID, client: stripe.StripeClient, due_by: datetime | None = None
) -> bool:
    # Locked: a second sync of the same invoice (an overlapping run) waits, then finds it open.
    invoice = fetch(session, Invoice, invoice_id, lock=True)
    if invoice is None or invoice.status is not InvoiceStatus.PENDING_SYNC:
        return False
    if due_by is not None and next_attempt_at(invoice) > due_by:
        return False  # an overlapping run failed it while this one waited for the lock
    # Locked too: two invoices of one client (an invoice and its credit note) share a customer.
    contract = fetch(session, Contract, invoice.contract_id, lock=True)
    assert contract is not None
    try:
        pushed, note = _push(session, client, invoice, contract)
    except (stripe.StripeError, SyncBlocked) as error:
        invoice.sync_attempts += 1
        invoice.sync_error = _said(error)[:500]
        session.flush()
        log.warning(
            "billing.stripe_sync_failed",
            invoice_id=str(invoice.id),
            attempts=invoice.sync_attempts,
            error=invoice.sync_error,
        )
        return False
    invoice.status = InvoiceStatus.OPEN
    invoice.stripe_state_at = max(invoice.stripe_state_at, pushed.created)
    invoice.sync_error = note[:500] if note else None  # what a person should know of Stripe's copy
    session.flush()
    log.info("billing.stripe_synced", invoice_id=str(invoice.id), stripe_invoice_id=pushed.id)
    return True


def _said(error: Exception) -> str:
    text = str(error.user_message or error) if isinstance(error, stripe.StripeError) else str(error)
    return f"{type(error).__name__}: {' '.join(text.split())}"


# ------------------------------------------------------------------ the flow


def _push(
    session: Session, client: stripe.StripeClient, invoice: Invoice, contract: Contract
) -> tuple[Any, str | None]:
    """Customer, subscription, items, invoice (each found again before it is made), then
    the invoice collected by our terms: the Stripe invoice, and a note if Stripe's copy
    differs from ours."""
    customer_id = _customer(session, client, contract)
    if invoice.buyer.get("email"):  # where Stripe sends it: the version's, which may have changed
        client.v1.customers.update(
            customer_id,
            params={"email": invoice.buyer["email"]},
            options={"idempotency_key": f"bpo-customer-email-{invoice.id}"},
        )
    # Before the subscription too: localstripe puts pending items on a new one's first invoice.
    there = _pending_items(client, invoice, customer_id)
    currency = invoice.currency.lower()
    subscription_id = _subscription(session, client, contract, customer_id, _plan(client, currency), currency)
    found = _stripe_invoice(client, invoice, customer_id, subscription_id)
    if found is None:
        _items(session, client, invoice, customer_id, subscription_id, there)
        found = client.v1.invoices.create(
            params={
                "customer": customer_id,
                "subscription": subscription_id,
                "pending_invoice_items_behavior": "include",
                "metadata": _invoice_metadata(invoice),
                **({"description": invoice.number} if invoice.number else {}),
            },
            options={"idempotency_key": f"bpo-invoice-{invoice.id}"},
        )
    invoice.stripe_invoice_id = found.id
    session.flush()  # kept even if what follows fails: the next attempt starts from it
    if _metadata(found).get("invoice_id") != str(invoice.id):
        # localstripe drops an invoice's metadata at creation; set it, webhooks look for it
        found = client.v1.invoices.update(found.id, params={"metadata": _invoice_metadata(invoice)})
    if found.subtotal != invoice.total:
        log.error(
            "billing.stripe_total_differs",
            invoice_id=str(invoice.id),
            stripe_invoice_id=found.id,
            ours=invoice.total,
            stripe=found.subtotal,
        )
    found, note = _collected_by_terms(client, invoice, found, utcnow())
    return _sent(client, _finalised(client, found)), note


def _invoice_metadata(invoice: Invoice) -> dict[str, str]:
    metadata = {"invoice_id": str(invoice.id), "tenant_id": str(invoice.tenant_id)}
    if invoice.number:  # Stripe takes an empty value for "remove the key"
        metadata["number"] = invoice.number
    return metadata


def _metadata(obj: Any) -> dict[str, str]:
    metadata = getattr(obj, "metadata", None)
    return dict(metadata.to_dict()) if metadata else {}


def _customer(session: Session, client: stripe.StripeClient, contract: Contract) -> str:
    if contract.stripe_customer_id:
        return contract.stripe_customer_id
    tenant_id = str(contract.tenant_id)
    customer_id = _customer_by_metadata(client, tenant_id)
    if customer_id is None:
        organization = fetch(session, Organization, contract.tenant_id)
        assert organization is not None
        customer_id = client.v1.customers.create(
            params={
                "name": organization.name,
                "preferred_locales": [organization.default_locale.replace("_", "-")],
                "metadata": {"tenant_id": tenant_id},
            },
            options={"idempotency_key": f"bpo-customer-{tenant_id}"},
        ).id
    contract.stripe_customer_id = customer_id
    session.flush()
    return str(customer_id)


def _customer_by_metadata(client: stripe.StripeClient, tenant_id: str) -> str | None:
    """The customer an earlier attempt made but did not record. Stripe's search answers
    in one call; localstripe has none (it answers 404, as for a customer "search"), so
    its list is read."""
    try:
        found = client.v1.customers.search(params={"query": f"metadata['tenant_id']:'{tenant_id}'"})
        for customer in found.data:
            return str(customer.id)
        return None
    except stripe.StripeError as error:
        if error.http_status != 404:
            raise
    for customer in _all(client.v1.customers.list(params={"limit": 100})):
        if _metadata(customer).get("tenant_id") == tenant_id:
            return str(customer.id)
    return None


def _plan(client: stripe.StripeClient, currency: str) -> str:
    """The zero-price monthly plan of a currency, made once (its id is ours)."""
    plan_id = f"bpo-monthly-zero-{currency}"
    try:
        return str(client.v1.plans.retrieve(plan_id).id)
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise
    try:
        client.v1.plans.create(
            params={
                "id": plan_id,
                "amount": 0,
                "currency": currency,
                "interval": "month",
                "product": {"name": PRODUCT_NAME},
            },
            options={"idempotency_key": f"bpo-plan-{currency}"},
        )
    except stripe.StripeError as error:
        if error.http_status not in (400, 409):  # made meanwhile by another sync: fine
            raise
        client.v1.plans.retrieve(plan_id)
    return plan_id


def _subscription(
    session: Session,
    client: stripe.StripeClient,
    contract: Contract,
    customer_id: str,
    plan_id: str,
    currency: str,
) -> str:
    """The client's zero-price subscription that its invoice items attach to."""
    recorded = contract.stripe_subscription_id
    if recorded:
        subscription = client.v1.subscriptions.retrieve(recorded)
        if subscription.status not in ("canceled", "incomplete_expired"):
            _same_currency(subscription, currency)
            return str(recorded)
    tenant_id = str(contract.tenant_id)
    subscription_id = None
    for candidate in _all(client.v1.subscriptions.list(params={"customer": customer_id})):
        if _metadata(candidate).get("tenant_id") == tenant_id and _plan_of(candidate) == plan_id:
            subscription_id = str(candidate.id)
            break
    if subscription_id is None:
        subscription_id = str(
            client.v1.subscriptions.create(
                params={
                    "customer": customer_id,
                    "items": [{"plan": plan_id}],
                    "metadata": {"tenant_id": tenant_id},
                },
                options={"idempotency_key": f"bpo-subscription-{tenant_id}-{currency}"},
            ).id
        )
    contract.stripe_subscription_id = subscription_id
    session.flush()
    return subscription_id


def _plan_of(subscription: Any) -> str | None:
    items = subscription.items.data
    return str(items[0].plan.id) if items else None


def _same_currency(subscription: Any, currency: str) -> None:
    items = subscription.items.data
    theirs = items[0].plan.currency if items else currency
    if theirs != currency:
        raise SyncBlocked(
            f"the client's Stripe subscription {subscription.id} is in {theirs.upper()}, "
            f"this invoice in {currency.upper()}: a Stripe customer has one currency"
        )


def _stripe_invoice(
    client: stripe.StripeClient, invoice: Invoice, customer_id: str, subscription_id: str
) -> Any | None:
    """Our invoice in Stripe already: by its recorded id, else by our metadata on it or
    on its lines (a Stripe invoice made before its metadata was set, or by a renewal
    of the subscription that swept our pending items)."""
    if invoice.stripe_invoice_id:
        return client.v1.invoices.retrieve(invoice.stripe_invoice_id)
    ours = str(invoice.id)
    listed = client.v1.invoices.list(params={"customer": customer_id, "subscription": subscription_id})
    for candidate in _all(listed):
        if candidate.status == "void":
            continue
        if _metadata(candidate).get("invoice_id") == ours or any(
            _metadata(line).get("invoice_id") == ours for line in candidate.lines.data
        ):
            return candidate
    return None


def _pending_items(client: stripe.StripeClient, invoice: Invoice, customer_id: str) -> set[str]:
    """The line ids of this invoice's items already pending in Stripe (an earlier attempt
    made them); any other pending item holds the sync back, since Stripe would put it on
    this invoice, whose total would then not be ours."""
    ours = str(invoice.id)
    there: set[str] = set()
    others = []
    for item in _all(client.v1.invoice_items.list(params={"customer": customer_id, "limit": 100})):
        if item.invoice is not None:  # real Stripe lists invoiced items too
            continue
        metadata = _metadata(item)
        if metadata.get("invoice_id") == ours:
            there.add(metadata.get("line_id", ""))
        else:
            others.append(item.id)
    if others:
        raise SyncBlocked(
            f"the Stripe customer {customer_id} has pending invoice items of something else: "
            + ", ".join(others[:5])
        )
    return there


def _items(
    session: Session,
    client: stripe.StripeClient,
    invoice: Invoice,
    customer_id: str,
    subscription_id: str,
    there: set[str],
) -> None:
    """One pending invoice item per line and per tax rate, those already there skipped."""
    for part, key, amount, description in _parts(session, invoice):
        if part in there or amount == 0:
            continue
        client.v1.invoice_items.create(
            params={
                "customer": customer_id,
                "subscription": subscription_id,
                "amount": amount,
                "currency": invoice.currency.lower(),
                "description": description,
                "metadata": {"invoice_id": str(invoice.id), "line_id": part},
            },
            options={"idempotency_key": key},
        )


def _parts(session: Session, invoice: Invoice) -> Iterator[tuple[str, str, int, str]]:
    """(line_id, idempotency key, amount, description) of each line, then of each tax
    rate (whose "line_id" is "tax-20")."""
    for line in invoices.lines_of(session, invoice):
        yield (
            str(line.id),
            f"bpo-item-{line.id}",
            line.amount,
            descriptions.describe(invoice.locale, line.kind, line.metric, line.details),
        )
    for tax_line in invoice.tax_lines:
        rate = Decimal(tax_line["rate"])
        description = gettext(
            invoice.locale,
            "VAT %(rate)s %% on %(base)s",
            rate=format_decimal(rate, format="#,##0.####", locale=invoice.locale),
            base=money.format_money(tax_line["taxable"], invoice.currency, invoice.locale),
        )
        part = f"tax-{rate.normalize():f}"
        yield part, f"bpo-item-{invoice.id}-{part}", int(tax_line["tax"]), description


def due_date(invoice: Invoice, now: datetime) -> int:
    """The Stripe due date of an invoice, a Unix time: the last second of its due day
    (``due_on``: the day of issue plus the contract's payment terms, in the billing
    timezone), so that a payment made on that day is on time, as the invoice says; at
    the earliest ``EARLIEST_DUE`` after ``now``, since Stripe refuses a date past."""
    assert invoice.due_on is not None, "a finalised invoice has its due day (numbering.finalise)"
    next_day = datetime.combine(invoice.due_on + timedelta(days=1), time(), tzinfo=ZoneInfo(invoice.timezone))
    return int(max(next_day - timedelta(seconds=1), now + EARLIEST_DUE).timestamp())


def _collected_by_terms(
    client: stripe.StripeClient, invoice: Invoice, found: Any, now: datetime
) -> tuple[Any, str | None]:
    """The draft made to be sent and paid by our payment terms (``send_invoice``, due on
    our due date), never charged to the card on file; on the draft, since Stripe changes
    neither once the invoice is final. Should Stripe refuse the due date, the invoice is
    still only sent, on Stripe's default payment terms, and a note says so; should it
    refuse that too, the error stops the sync before anything is finalised."""
    if found.status != "draft":
        return found, None
    due = due_date(invoice, now)
    if found.collection_method == "send_invoice" and getattr(found, "due_date", None) == due:
        return found, None
    try:
        updated = client.v1.invoices.update(
            found.id,
            params={"collection_method": "send_invoice", "due_date": due},
            options={"idempotency_key": f"bpo-terms-{found.id}-{due}"},
        )
        return updated, None
    except stripe.InvalidRequestError as refused:
        if refused.http_status != 400:
            raise
        said = _said(refused)
    log.warning("billing.stripe_due_date_refused", invoice_id=str(invoice.id), due_date=due, error=said)
    updated = client.v1.invoices.update(
        found.id,
        params={"collection_method": "send_invoice"},
        options={"idempotency_key": f"bpo-collection-{found.id}"},
    )
    due_on = datetime.fromtimestamp(due, ZoneInfo(invoice.timezone)).date()
    return updated, f"Stripe refused the due date {due_on.isoformat()} ({said}): sent on its default terms"


def _sent(client: stripe.StripeClient, found: Any) -> Any:
    """An open invoice sent to the client by Stripe (its email, with the page to pay it
    on); one with nothing to collect (a credit note, a total of zero) is paid at
    finalisation, and a draft was not finalised (see ``_finalised``)."""
    if found.status != "open":
        return found
    return client.v1.invoices.send_invoice(found.id, options={"idempotency_key": f"bpo-send-{found.id}"})


def _finalised(client: stripe.StripeClient, found: Any) -> Any:
    """Finalise a draft (real Stripe then waits for the client's payment, by the terms set
    before); localstripe has no finalisation (a 404 without a body) and takes a draft's
    payment as it does an open invoice's."""
    if found.status != "draft":
        return found
    try:
        return client.v1.invoices.finalize_invoice(
            found.id,
            params={"auto_advance": True},
            options={"idempotency_key": f"bpo-finalize-{found.id}"},
        )
    except stripe.APIError as error:
        if error.http_status != 404:
            raise
        log.info("billing.stripe_finalize_unsupported", stripe_invoice_id=found.id)
        return found


def _all(listed: Any) -> Iterator[Any]:
    yield from listed.auto_paging_iter()
