"""Stripe, against a real localstripe server: the sync of finalised invoices (one customer,
its items, one invoice of our total, sent by our payment terms and never charged, never
twice, retried after an outage) and the webhooks that move our invoices (verified,
idempotent, never backwards)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
import stripe
from sqlalchemy import select

from services.billing import close, descriptions, invoices, stripe_sync
from services.billing.models import Contract, Invoice, InvoiceLine, InvoiceStatus
from services.billing.stripe_webhooks import handle
from services.core import money
from services.core.database import Database
from services.core.errors import BadRequest
from services.core.settings import Settings
from services.core.time import utcnow
from tenants.models import Organization
from tenants.scoping import AccessScope, bind
from tests.billing.conftest import STRIPE_KEY, WEBHOOK_SECRET
from tests.factories import OPERATOR, make_contract, make_issuing_entity, make_tenant, record_usage
from tests.live import free_port
from tests.notify.receiver import Receiver

GRACE = timedelta(hours=48)
OCTOBER = datetime(2026, 10, 14, 10, tzinfo=UTC)
LATER = timedelta(days=1)  # past any retry delay
FAILING_IBAN = "DE62370400440532013001"  # localstripe fails this SEPA debit, asynchronously
INVOICE_EVENTS = ["invoice.payment_succeeded", "invoice.payment_failed", "invoice.paid", "invoice.voided"]


# ---------------------------------------------------------------- building and reading


@pytest.fixture
def organization(db: Database) -> Organization:
    """A French client with a contract: euros, domestic VAT at 20 %, payment in 45 days."""
    tenant = make_tenant(db)
    make_issuing_entity(db)
    make_contract(
        db,
        tenant.organization,
        tax_mode="domestic",
        vat_rate="20",
        payment_terms_days=45,
        billing_email="Comptabilite@Acme.example",
    )
    return tenant.organization


def _finalised(db: Database, organization: Organization, period: str = "2026-10") -> uuid.UUID:
    with db.session() as session:
        bind(session, AccessScope.everything())
        invoice = close.close(session, organization.id, period, GRACE, finalise=True)
        assert invoice is not None and invoice.status is InvoiceStatus.PENDING_SYNC
        return invoice.id


@pytest.fixture
def invoice_id(db: Database, organization: Organization) -> uuid.UUID:
    """October's invoice, finalised: three lines and VAT."""
    record_usage(db, organization, "task_completed", 3, OCTOBER, task_kind="support_ticket")
    record_usage(db, organization, "handle_minutes", "30.5", OCTOBER, task_kind="support_ticket")
    record_usage(db, organization, "handle_minutes", "10", OCTOBER, language="de")
    return _finalised(db, organization)


def _invoice(db: Database, invoice_id: uuid.UUID) -> Invoice:
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = session.get(Invoice, invoice_id, populate_existing=True)
        assert found is not None
        session.expunge(found)
        return found


def _lines(db: Database, invoice_id: uuid.UUID) -> list[InvoiceLine]:
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = list(invoices.lines_of(session, _invoice(db, invoice_id)))
        session.expunge_all()
        return found


def _contract(db: Database, organization: Organization) -> Contract:
    with db.session() as session:
        bind(session, AccessScope.everything())
        found = session.scalars(select(Contract).where(Contract.tenant_id == organization.id)).one()
        session.expunge(found)
        return found


def _sync(db: Database, settings: Settings, now: datetime | None = None) -> int:
    return stripe_sync.sync_pending(db, settings, now=now)


def _stripe(settings: Settings) -> Any:
    client = stripe_sync.client_for(settings)
    assert client is not None
    return client.v1


def _customers_of(settings: Settings, organization: Organization) -> list[Any]:
    listed = _stripe(settings).customers.list(params={"limit": 100}).auto_paging_iter()
    return [c for c in listed if c.metadata and c.metadata.to_dict().get("tenant_id") == str(organization.id)]


def _stripe_invoices_of(settings: Settings, invoice_id: uuid.UUID) -> list[Any]:
    listed = _stripe(settings).invoices.list(params={"limit": 100}).auto_paging_iter()
    return [i for i in listed if i.metadata and i.metadata.to_dict().get("invoice_id") == str(invoice_id)]


def _nothing_failed_said(invoice: Invoice) -> bool:
    """No failure kept on the invoice: at most the note every invoice synced to localstripe
    has, that it took no due date (see the tests of the payment terms)."""
    return invoice.sync_error is None or invoice.sync_error.startswith("Stripe refused the due date")


def _items_of(stripe_invoice: Any) -> list[tuple[int, str, dict[str, str]]]:
    """The Stripe invoice's lines that are ours (not the zero-price subscription's)."""
    return sorted(
        (line.amount, line.description, line.metadata.to_dict())
        for line in stripe_invoice.lines.data
        if line.metadata and "invoice_id" in line.metadata.to_dict()
    )


# ---------------------------------------------------------------- the sync


def test_the_sync_makes_one_customer_and_one_stripe_invoice_of_our_total(
    db: Database, stripe_settings: Settings, organization: Organization, invoice_id: uuid.UUID
) -> None:
    assert _sync(db, stripe_settings) == 1

    ours = _invoice(db, invoice_id)
    assert ours.status is InvoiceStatus.OPEN and ours.sync_attempts == 0 and _nothing_failed_said(ours)
    [customer] = _customers_of(stripe_settings, organization)
    contract = _contract(db, organization)
    assert contract.stripe_customer_id == customer.id and contract.stripe_subscription_id
    [pushed] = _stripe_invoices_of(stripe_settings, invoice_id)
    assert pushed.id == ours.stripe_invoice_id and pushed.customer == customer.id
    assert pushed.subtotal == pushed.total == ours.total == 2900
    assert pushed.metadata.to_dict()["number"] == ours.number
    assert pushed.currency == "eur"


def test_stripe_sends_the_invoice_to_the_contracts_billing_email(
    db: Database, stripe_settings: Settings, organization: Organization, invoice_id: uuid.UUID
) -> None:
    assert _invoice(db, invoice_id).buyer["email"] == "comptabilite@acme.example"
    assert _sync(db, stripe_settings) == 1
    [customer] = _customers_of(stripe_settings, organization)
    assert customer.email == "comptabilite@acme.example"


def test_each_line_and_the_tax_are_one_item_in_the_invoices_language(
    db: Database, stripe_settings: Settings, invoice_id: uuid.UUID
) -> None:
    _sync(db, stripe_settings)

    ours = _invoice(db, invoice_id)
    [pushed] = _stripe_invoices_of(stripe_settings, invoice_id)
    expected = [
        (
            line.amount,
            descriptions.describe(ours.locale, line.kind, line.metric, line.details),
            {"invoice_id": str(invoice_id), "line_id": str(line.id)},
        )
        for line in _lines(db, invoice_id)
    ]
    items = _items_of(pushed)
    [tax] = [item for item in items if item[2]["line_id"] == "tax-20"]
    assert ours.locale == "fr"
    assert sorted(item for item in items if item is not tax) == sorted(expected)
    assert tax[0] == ours.tax == 483
    assert "20" in tax[1] and money.format_money(ours.subtotal, "EUR", "fr") in tax[1]  # "24,17 €"


def test_syncing_again_makes_nothing_more(
    db: Database, stripe_settings: Settings, organization: Organization, invoice_id: uuid.UUID
) -> None:
    _sync(db, stripe_settings)
    assert _sync(db, stripe_settings, now=utcnow() + LATER) == 0
    with db.session() as session:
        bind(session, AccessScope.everything())
        client = stripe_sync.client_for(stripe_settings)
        assert client is not None
        stripe_sync.sync_invoice(session, invoice_id, client)  # an open invoice: nothing

    assert len(_customers_of(stripe_settings, organization)) == 1
    assert len(_stripe_invoices_of(stripe_settings, invoice_id)) == 1


def test_a_sync_whose_commit_was_lost_finds_its_stripe_objects_again(
    db: Database, stripe_settings: Settings, organization: Organization, invoice_id: uuid.UUID
) -> None:
    client = stripe_sync.client_for(stripe_settings)
    assert client is not None
    session = db.sessions()
    bind(session, AccessScope.everything())
    stripe_sync.sync_invoice(session, invoice_id, client)
    session.rollback()  # Stripe has it all, we recorded nothing
    session.close()
    assert _invoice(db, invoice_id).stripe_invoice_id is None

    assert _sync(db, stripe_settings) == 1

    [customer] = _customers_of(stripe_settings, organization)
    [pushed] = _stripe_invoices_of(stripe_settings, invoice_id)
    assert _contract(db, organization).stripe_customer_id == customer.id
    assert _invoice(db, invoice_id).stripe_invoice_id == pushed.id
    assert pushed.subtotal == _invoice(db, invoice_id).total


def test_items_an_earlier_attempt_left_pending_are_not_made_twice(
    db: Database, stripe_settings: Settings, organization: Organization, invoice_id: uuid.UUID
) -> None:
    api = _stripe(stripe_settings)
    customer = api.customers.create(params={"metadata": {"tenant_id": str(organization.id)}})
    first = _lines(db, invoice_id)[0]
    plan = "bpo-monthly-zero-eur"
    api.plans.create(
        params={"id": plan, "amount": 0, "currency": "eur", "interval": "month", "product": {"name": "BPO"}}
    )
    subscription = api.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"plan": plan}],
            "metadata": {"tenant_id": str(organization.id)},
        }
    )
    api.invoice_items.create(
        params={
            "customer": customer.id,
            "subscription": subscription.id,
            "amount": first.amount,
            "currency": "eur",
            "metadata": {"invoice_id": str(invoice_id), "line_id": str(first.id)},
        }
    )

    assert _sync(db, stripe_settings) == 1

    contract = _contract(db, organization)
    assert (contract.stripe_customer_id, contract.stripe_subscription_id) == (customer.id, subscription.id)
    [pushed] = _stripe_invoices_of(stripe_settings, invoice_id)
    line_ids = [metadata["line_id"] for _, _, metadata in _items_of(pushed)]
    assert line_ids.count(str(first.id)) == 1
    assert pushed.subtotal == _invoice(db, invoice_id).total


def test_pending_items_of_something_else_hold_the_sync_back(
    db: Database, stripe_settings: Settings, organization: Organization, invoice_id: uuid.UUID
) -> None:
    api = _stripe(stripe_settings)
    customer = api.customers.create(params={"metadata": {"tenant_id": str(organization.id)}})
    api.invoice_items.create(params={"customer": customer.id, "amount": 999, "currency": "eur"})

    assert _sync(db, stripe_settings) == 0

    ours = _invoice(db, invoice_id)
    assert ours.status is InvoiceStatus.PENDING_SYNC and ours.sync_attempts == 1
    assert ours.sync_error is not None and "pending invoice items" in ours.sync_error
    assert _stripe_invoices_of(stripe_settings, invoice_id) == []


def test_an_unreachable_stripe_leaves_the_invoice_pending_then_a_later_run_syncs_it_once(
    db: Database, stripe_settings: Settings, invoice_id: uuid.UUID
) -> None:
    nowhere = stripe_settings.model_copy(update={"stripe_api_base": f"http://127.0.0.1:{free_port()}"})

    assert _sync(db, nowhere) == 0

    ours = _invoice(db, invoice_id)
    assert ours.status is InvoiceStatus.PENDING_SYNC and ours.sync_attempts == 1
    assert ours.sync_error is not None and ours.sync_error.startswith("APIConnectionError")
    assert _sync(db, stripe_settings) == 0  # not due yet: it backs off
    assert _sync(db, stripe_settings, now=utcnow() + LATER) == 1
    ours = _invoice(db, invoice_id)
    assert ours.status is InvoiceStatus.OPEN and _nothing_failed_said(ours)
    assert len(_stripe_invoices_of(stripe_settings, invoice_id)) == 1


def test_retries_back_off_from_the_finalisation() -> None:
    finalised = datetime(2026, 11, 1, tzinfo=UTC)
    invoice = Invoice(finalised_at=finalised, closed_at=finalised, sync_attempts=0)
    waits = []
    for attempts in range(10):
        invoice.sync_attempts = attempts
        waits.append((stripe_sync.next_attempt_at(invoice) - finalised).total_seconds())
    assert waits == [0, 30, 90, 210, 450, 930, 1890, 3810, 7410, 11010]


def test_without_a_stripe_key_nothing_is_synced(
    db: Database, settings: Settings, invoice_id: uuid.UUID
) -> None:
    assert _sync(db, settings.model_copy(update={"stripe_api_key": ""})) == 0
    ours = _invoice(db, invoice_id)
    assert ours.status is InvoiceStatus.PENDING_SYNC and ours.sync_attempts == 0


def test_a_credit_note_syncs_as_negative_items_once(
    db: Database, stripe_settings: Settings, invoice_id: uuid.UUID
) -> None:
    _sync(db, stripe_settings)
    with db.session() as session:
        bind(session, AccessScope.everything())
        note_id = invoices.credit_note(session, OPERATOR, invoice_id, 1000, "Goodwill").id

    assert _sync(db, stripe_settings) == 1
    assert _sync(db, stripe_settings, now=utcnow() + LATER) == 0

    note = _invoice(db, note_id)
    assert note.status is InvoiceStatus.OPEN and note.total == -1200
    [pushed] = _stripe_invoices_of(stripe_settings, note_id)
    assert pushed.subtotal == -1200 and pushed.total == 0  # nothing to collect
    assert [amount for amount, _, _ in _items_of(pushed)] == [-1000, -200]


def test_an_invoice_of_nothing_syncs_without_items(
    db: Database, stripe_settings: Settings, organization: Organization
) -> None:
    empty = _finalised(db, organization)
    assert _invoice(db, empty).total == 0

    assert _sync(db, stripe_settings) == 1

    assert _invoice(db, empty).status is InvoiceStatus.OPEN
    [pushed] = _stripe_invoices_of(stripe_settings, empty)
    assert pushed.total == 0 and _items_of(pushed) == []


# ---------------------------------------------------------------- collected by our payment terms


PARIS = ZoneInfo("Europe/Paris")


class Call(NamedTuple):
    method: str
    path: str
    form: dict[str, list[str]]
    idempotency_key: str | None
    status: int  # localstripe's answer


class Recording(stripe.RequestsClient):
    """The Stripe library's own HTTP client, every request sent to localstripe as ever and
    noted with localstripe's answer: what the sync asks of Stripe, also what localstripe
    refuses to hold."""

    def __init__(self) -> None:
        super().__init__(timeout=20)
        self.calls: list[Call] = []

    def request(self, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
        body, status, answer_headers = super().request(method, url, headers, post_data)
        form = post_data.decode() if isinstance(post_data, bytes) else post_data or ""
        key = dict(headers or {}).get("Idempotency-Key")
        self.calls.append(Call(method.upper(), urlsplit(url).path, parse_qs(form), key, status))
        return body, status, answer_headers


def _recorded_sync(db: Database, settings: Settings, invoice_id: uuid.UUID) -> Recording:
    recording = Recording()
    client = stripe.StripeClient(
        STRIPE_KEY, base_addresses={"api": settings.stripe_api_base}, http_client=recording
    )
    with db.session() as session:
        bind(session, AccessScope.everything())
        stripe_sync.sync_invoice(session, invoice_id, client)
    return recording


def _end_of_day(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone).timestamp())


def test_the_stripe_due_date_is_the_end_of_the_due_day_in_the_billing_timezone() -> None:
    """Issued on 1 March in Paris (CET) with 30 days, due on 31 March (CEST): Stripe's
    due date is 23:59:59 that day in Paris, so a payment made on the 31st is on time."""
    invoice = Invoice(timezone="Europe/Paris", issued_on=date(2026, 3, 1), due_on=date(2026, 3, 31))
    finalised = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)  # 00:30 on 1 March in Paris

    due = stripe_sync.due_date(invoice, finalised)

    assert datetime.fromtimestamp(due, UTC) == datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC)


def test_an_invoice_reaching_stripe_after_its_due_day_is_due_an_hour_later() -> None:
    """Stripe refuses a due date in the past: a sync held back past the due day (or a
    credit note of the day synced after midnight) is due at once, give or take an hour."""
    invoice = Invoice(timezone="Europe/Paris", issued_on=date(2026, 3, 1), due_on=date(2026, 3, 31))
    now = datetime(2026, 4, 2, 8, tzinfo=UTC)

    assert stripe_sync.due_date(invoice, now) == int((now + timedelta(hours=1)).timestamp())


def test_the_stripe_invoice_is_sent_by_our_terms_not_charged_to_the_card_on_file(
    db: Database, stripe_settings: Settings, organization: Organization, invoice_id: uuid.UUID
) -> None:
    api = _stripe(stripe_settings)
    customer = api.customers.create(params={"metadata": {"tenant_id": str(organization.id)}})
    card = api.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    api.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": card.id}})

    assert _sync(db, stripe_settings) == 1

    [pushed] = _stripe_invoices_of(stripe_settings, invoice_id)
    assert pushed.customer == customer.id
    assert pushed.collection_method == "send_invoice"
    assert pushed.payment_intent is None and pushed.amount_paid == 0
    assert _invoice(db, invoice_id).status is InvoiceStatus.OPEN


def test_the_sync_asks_stripe_for_our_due_date_on_the_draft_before_it_finalises_it(
    db: Database, stripe_settings: Settings, invoice_id: uuid.UUID
) -> None:
    """What the sync sends, as real Stripe takes it: ``send_invoice`` due on our due day,
    in one request on the draft, then the finalisation (localstripe refuses the first,
    and has no finalisation: see the next test and docs/billing.md)."""
    ours = _invoice(db, invoice_id)
    assert ours.due_on is not None and ours.issued_on is not None
    assert (ours.due_on - ours.issued_on).days == 45  # the contract's payment terms

    recording = _recorded_sync(db, stripe_settings, invoice_id)

    stripe_id = _invoice(db, invoice_id).stripe_invoice_id
    due = str(_end_of_day(ours.due_on, PARIS))
    paths = [(call.method, call.path) for call in recording.calls]
    [terms] = [i for i, call in enumerate(recording.calls) if "due_date" in call.form]
    asked = recording.calls[terms]
    assert (asked.method, asked.path) == ("POST", f"/v1/invoices/{stripe_id}")
    assert asked.form == {"collection_method": ["send_invoice"], "due_date": [due]}
    assert asked.idempotency_key == f"bpo-terms-{stripe_id}-{due}"
    assert terms < paths.index(("POST", f"/v1/invoices/{stripe_id}/finalize"))
    assert ("POST", f"/v1/invoices/{stripe_id}/pay") not in paths


def test_a_stripe_that_refuses_the_due_date_gets_the_invoice_sent_still_and_ours_says_so(
    db: Database, stripe_settings: Settings, invoice_id: uuid.UUID
) -> None:
    """localstripe refuses ``due_date`` (``StripeObject._update``: an invoice has no such
    attribute there): the invoice is still set to be sent, never charged, on Stripe's
    default terms, and the difference from ours is kept for a person."""
    recording = _recorded_sync(db, stripe_settings, invoice_id)

    ours = _invoice(db, invoice_id)
    asked = [(sorted(call.form), call.status) for call in recording.calls if "collection_method" in call.form]
    assert asked == [
        (["collection_method", "due_date"], 400),
        (["collection_method"], 200),
    ]
    assert ours.status is InvoiceStatus.OPEN
    assert ours.due_on is not None and ours.sync_error is not None
    assert ours.sync_error.startswith(f"Stripe refused the due date {ours.due_on.isoformat()}")
    [pushed] = _stripe_invoices_of(stripe_settings, invoice_id)
    assert pushed.collection_method == "send_invoice"


def test_a_sent_event_opens_an_invoice_whose_sync_commit_was_lost_and_never_reopens_a_paid_one(
    db: Database, stripe_settings: Settings, invoice_id: uuid.UUID
) -> None:
    client = stripe_sync.client_for(stripe_settings)
    assert client is not None
    session = db.sessions()
    bind(session, AccessScope.everything())
    stripe_sync.sync_invoice(session, invoice_id, client)
    session.rollback()  # Stripe sent it; we recorded nothing
    session.close()
    [pushed] = _stripe_invoices_of(stripe_settings, invoice_id)
    assert pushed.collection_method == "send_invoice"
    now = int(time.time())

    sent = _event(stripe_settings, "invoice.sent", pushed.id, now)
    assert _handle(db, stripe_settings, *_signed(sent)) == "applied"
    opened = _invoice(db, invoice_id)
    assert (opened.status, opened.stripe_invoice_id) == (InvoiceStatus.OPEN, pushed.id)
    finalized = _event(stripe_settings, "invoice.finalized", pushed.id, now)
    assert _handle(db, stripe_settings, *_signed(finalized)) == "duplicate"
    paid = _event(stripe_settings, "invoice.paid", pushed.id, now + 1)
    assert _handle(db, stripe_settings, *_signed(paid)) == "applied"
    sent_again = _event(stripe_settings, "invoice.sent", pushed.id, now + 2)  # late, or sent again
    assert _handle(db, stripe_settings, *_signed(sent_again)) == "stale"

    assert _invoice(db, invoice_id).status is InvoiceStatus.PAID


# ---------------------------------------------------------------- webhooks


def _signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    """A delivery as Stripe signs it: HMAC-SHA256 of "<timestamp>.<body>"."""
    payload = json.dumps(event).encode()
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={digest}"


def _event(settings: Settings, kind: str, stripe_invoice_id: str, created: int) -> dict[str, Any]:
    """An event about the Stripe invoice as localstripe holds it."""
    found = _stripe(settings).invoices.retrieve(stripe_invoice_id).to_dict()
    return {
        "id": f"evt_{uuid.uuid4().hex[:14]}",
        "object": "event",
        "type": kind,
        "created": created,
        "data": {"object": found},
    }


def _handle(db: Database, settings: Settings, payload: bytes, signature: str | None) -> str:
    with db.session() as session:
        return handle(session, payload, signature, settings)


@pytest.fixture
def open_invoice(db: Database, stripe_settings: Settings, invoice_id: uuid.UUID) -> Invoice:
    assert _sync(db, stripe_settings) == 1
    return _invoice(db, invoice_id)


def test_a_webhook_with_a_bad_or_missing_signature_is_refused_and_changes_nothing(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    assert open_invoice.stripe_invoice_id is not None
    event = _event(stripe_settings, "invoice.paid", open_invoice.stripe_invoice_id, int(time.time()))
    forged, signature = _signed(event, secret="whsec_someone_else")

    with pytest.raises(BadRequest, match="does not verify"):
        _handle(db, stripe_settings, forged, signature)
    with pytest.raises(BadRequest, match="missing"):
        _handle(db, stripe_settings, forged, None)
    payload, signature = _signed(event)
    with pytest.raises(BadRequest):
        _handle(db, stripe_settings, payload.replace(b"invoice.paid", b"invoice.paiD"), signature)

    after = _invoice(db, open_invoice.id)
    assert (after.status, after.stripe_state_at) == (InvoiceStatus.OPEN, open_invoice.stripe_state_at)


def test_a_signed_invoice_paid_event_marks_the_invoice_paid(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    assert open_invoice.stripe_invoice_id is not None
    created = int(time.time())
    payload, signature = _signed(
        _event(stripe_settings, "invoice.paid", open_invoice.stripe_invoice_id, created)
    )

    assert _handle(db, stripe_settings, payload, signature) == "applied"

    after = _invoice(db, open_invoice.id)
    assert (after.status, after.stripe_state_at) == (InvoiceStatus.PAID, created)


def test_the_same_event_twice_changes_the_state_once(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    assert open_invoice.stripe_invoice_id is not None
    event = _event(
        stripe_settings, "invoice.payment_failed", open_invoice.stripe_invoice_id, int(time.time())
    )

    assert _handle(db, stripe_settings, *_signed(event)) == "applied"
    state = _invoice(db, open_invoice.id)
    assert _handle(db, stripe_settings, *_signed(event)) == "duplicate"

    again = _invoice(db, open_invoice.id)
    assert again.status is InvoiceStatus.PAYMENT_FAILED
    assert again.stripe_state_at == state.stripe_state_at


def test_an_older_failure_after_a_newer_payment_is_ignored(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    assert open_invoice.stripe_invoice_id is not None
    stripe_id, now = open_invoice.stripe_invoice_id, int(time.time())
    paid = _event(stripe_settings, "invoice.payment_succeeded", stripe_id, now)
    failed_before = _event(stripe_settings, "invoice.payment_failed", stripe_id, now - 5)
    failed_same_second = _event(stripe_settings, "invoice.payment_failed", stripe_id, now)

    assert _handle(db, stripe_settings, *_signed(paid)) == "applied"
    assert _handle(db, stripe_settings, *_signed(failed_before)) == "stale"
    assert _handle(db, stripe_settings, *_signed(failed_same_second)) == "stale"  # paid is final

    assert _invoice(db, open_invoice.id).status is InvoiceStatus.PAID


def test_a_failure_then_a_successful_retry_ends_paid(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    assert open_invoice.stripe_invoice_id is not None
    stripe_id, now = open_invoice.stripe_invoice_id, int(time.time())

    assert (
        _handle(
            db, stripe_settings, *_signed(_event(stripe_settings, "invoice.payment_failed", stripe_id, now))
        )
        == "applied"
    )
    assert (
        _handle(db, stripe_settings, *_signed(_event(stripe_settings, "invoice.paid", stripe_id, now + 60)))
        == "applied"
    )
    assert (
        _handle(db, stripe_settings, *_signed(_event(stripe_settings, "invoice.voided", stripe_id, now + 90)))
        == "stale"
    )

    assert _invoice(db, open_invoice.id).status is InvoiceStatus.PAID


def test_a_voided_stripe_invoice_voids_ours(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    assert open_invoice.stripe_invoice_id is not None
    event = _event(stripe_settings, "invoice.voided", open_invoice.stripe_invoice_id, int(time.time()))

    assert _handle(db, stripe_settings, *_signed(event)) == "applied"

    assert _invoice(db, open_invoice.id).status is InvoiceStatus.VOID


def test_events_about_invoices_we_do_not_know_are_ignored(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    assert open_invoice.stripe_invoice_id is not None
    now = int(time.time())
    unknown = _event(stripe_settings, "invoice.paid", open_invoice.stripe_invoice_id, now)
    unknown["data"]["object"] |= {"id": "in_unknown", "metadata": {"invoice_id": str(uuid.uuid4())}}
    impostor = _event(stripe_settings, "invoice.paid", open_invoice.stripe_invoice_id, now)
    impostor["data"]["object"]["id"] = "in_another"  # our invoice_id, another Stripe invoice
    other_kind = _event(stripe_settings, "invoice.created", open_invoice.stripe_invoice_id, now)

    for event in (unknown, impostor, other_kind):
        assert _handle(db, stripe_settings, *_signed(event)) == "ignored"

    assert _invoice(db, open_invoice.id).status is InvoiceStatus.OPEN


# ---------------------------------------------------------------- localstripe's own deliveries


@pytest.fixture
def deliveries(stripe_url: str, receiver: Receiver) -> Receiver:
    """localstripe delivers its invoice events, signed, to a receiver on 127.0.0.1."""
    registered = httpx.post(
        f"{stripe_url}/_config/webhooks/bpo-tests",
        data={"url": receiver.url, "secret": WEBHOOK_SECRET, "events[]": INVOICE_EVENTS},
    )
    registered.raise_for_status()
    return receiver


def _until(
    db: Database, settings: Settings, receiver: Receiver, invoice_id: uuid.UUID, status: InvoiceStatus
) -> list[str]:
    """Hand each delivery, as received, to the webhook handler (on this test's database
    connection, hence on this thread) until our invoice has ``status``."""
    outcomes: list[str] = []
    handled = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for delivery in receiver.log[handled:]:
            outcomes.append(_handle(db, settings, delivery.body, delivery.headers.get("stripe-signature")))
            handled += 1
        if _invoice(db, invoice_id).status is status:
            return outcomes
        time.sleep(0.1)
    pytest.fail(f"no delivery made the invoice {status.value}; outcomes: {outcomes}")


def _pay(settings: Settings, open_invoice: Invoice, payment_method: str) -> str:
    """Pay the Stripe invoice with the customer's new default payment method."""
    api = _stripe(settings)
    customer = _stripe(settings).invoices.retrieve(open_invoice.stripe_invoice_id).customer
    attached = api.payment_methods.attach(payment_method, params={"customer": customer})
    api.customers.update(customer, params={"invoice_settings": {"default_payment_method": attached.id}})
    return str(api.invoices.pay(open_invoice.stripe_invoice_id).status)


def test_paying_by_card_in_stripe_marks_the_invoice_paid(
    db: Database, stripe_settings: Settings, deliveries: Receiver, open_invoice: Invoice
) -> None:
    """The client pays the invoice Stripe sent them (its page takes their card)."""
    assert open_invoice.stripe_invoice_id is not None
    sent = _stripe(stripe_settings).invoices.retrieve(open_invoice.stripe_invoice_id)
    assert sent.collection_method == "send_invoice"
    assert _pay(stripe_settings, open_invoice, "pm_card_visa") == "paid"

    outcomes = _until(db, stripe_settings, deliveries, open_invoice.id, InvoiceStatus.PAID)

    assert "applied" in outcomes


def test_a_failed_debit_in_stripe_marks_the_invoice_failed(
    db: Database, stripe_settings: Settings, deliveries: Receiver, open_invoice: Invoice
) -> None:
    debit = _stripe(stripe_settings).payment_methods.create(
        params={"type": "sepa_debit", "sepa_debit": {"iban": FAILING_IBAN}}
    )
    assert _pay(stripe_settings, open_invoice, debit.id) == "open"

    outcomes = _until(db, stripe_settings, deliveries, open_invoice.id, InvoiceStatus.PAYMENT_FAILED)

    assert "applied" in outcomes


def test_a_declined_card_leaves_the_stripe_invoice_unpaid_and_its_failure_marks_ours(
    db: Database, stripe_settings: Settings, deliveries: Receiver, open_invoice: Invoice
) -> None:
    """localstripe declines pm_card_chargeCustomerFail but sends no event for a card that
    fails at once (real Stripe sends invoice.payment_failed): that event, about the Stripe
    invoice as localstripe now holds it, is signed here."""
    assert _pay(stripe_settings, open_invoice, "pm_card_chargeCustomerFail") == "open"
    assert open_invoice.stripe_invoice_id is not None
    stripe_invoice = _stripe(stripe_settings).invoices.retrieve(open_invoice.stripe_invoice_id)
    assert stripe_invoice.status == "open" and stripe_invoice.amount_paid == 0
    event = _event(stripe_settings, "invoice.payment_failed", stripe_invoice.id, int(time.time()))

    assert _handle(db, stripe_settings, *_signed(event)) == "applied"

    assert _invoice(db, open_invoice.id).status is InvoiceStatus.PAYMENT_FAILED
    assert not [d for d in deliveries.log if d.event.get("type") == "invoice.payment_succeeded"]


def test_the_webhook_route_refuses_a_bad_signature_with_400_and_applies_a_signed_event(
    db: Database, stripe_settings: Settings, open_invoice: Invoice
) -> None:
    from fastapi.testclient import TestClient

    from services.api import create_app

    assert open_invoice.stripe_invoice_id is not None
    event = _event(stripe_settings, "invoice.paid", open_invoice.stripe_invoice_id, int(time.time()))
    payload, signature = _signed(event)
    with TestClient(create_app(stripe_settings, db), base_url="http://localhost") as http:
        forged = http.post("/stripe/webhooks", content=payload, headers={"Stripe-Signature": "t=1,v1=00"})
        assert forged.status_code == 400
        assert forged.headers["content-type"].startswith("application/problem+json")
        assert _invoice(db, open_invoice.id).status is InvoiceStatus.OPEN
        answer = http.post("/stripe/webhooks", content=payload, headers={"Stripe-Signature": signature})
        assert answer.status_code == 200 and answer.json() == {"outcome": "applied"}
        again = http.post("/stripe/webhooks", content=payload, headers={"Stripe-Signature": signature})
        assert again.json() == {"outcome": "duplicate"}
    assert _invoice(db, open_invoice.id).status is InvoiceStatus.PAID


def test_reissuing_an_invoice_in_stripe_voids_stripes_copy_and_pushes_the_new_one(
    db: Database, stripe_settings: Settings, invoice_id: uuid.UUID
) -> None:
    assert _sync(db, stripe_settings) == 1
    old = _invoice(db, invoice_id)
    assert old.stripe_invoice_id is not None
    with db.session() as session:
        bind(session, AccessScope.everything())
        reissued = invoices.reissue(session, OPERATOR, invoice_id, GRACE)
        reissued_id = reissued.id

    assert _sync(db, stripe_settings) == 1  # the new one
    voided = _invoice(db, invoice_id)
    assert voided.status is InvoiceStatus.VOID and voided.stripe_voided_at is not None
    remaining = [i.status for i in _stripe_invoices_of(stripe_settings, invoice_id)]
    assert remaining in ([], ["void"])  # a draft is deleted, an open one voided: it collects nothing
    assert [i.id for i in _stripe_invoices_of(stripe_settings, reissued_id)] == [
        _invoice(db, reissued_id).stripe_invoice_id
    ]
    assert _sync(db, stripe_settings) == 0  # and nothing more on the next run
