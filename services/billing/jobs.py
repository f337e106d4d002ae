"""Celery jobs of billing: closing periods (beat, every few minutes) and Stripe sync."""

from __future__ import annotations

from datetime import timedelta

from services.billing import periods, stripe_sync
from services.core.background import celery_app, database
from services.core.settings import get_settings


@celery_app.task(name="billing.close_due", ignore_result=True)
def close_due() -> int:
    """Periods ended at midnight in each contract's timezone, and drafts whose grace is over."""
    grace = timedelta(hours=get_settings().invoice_grace_hours)
    return len(periods.close_all(database(), list(periods.due(database())), grace).invoices)


@celery_app.task(name="billing.sync_stripe", ignore_result=True)
def sync_stripe() -> int:
    """Finalised invoices into Stripe (retried with backoff while Stripe is away)."""
    return stripe_sync.sync_pending(database(), get_settings())
