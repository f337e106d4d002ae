"""Celery jobs of billing: closing periods (beat, every few minutes) and Stripe sync."""

from __future__ import annotations

from datetime import timedelta

from services.billing import periods
from services.core.background import celery_app, database
from services.core.settings import get_settings


@celery_app.task(name="billing.close_due", ignore_result=True)
def close_due() -> int:
    """Periods ended at midnight in each contract's timezone, and drafts whose grace is over."""
    grace = timedelta(hours=get_settings().invoice_grace_hours)
    return len(periods.close_all(database(), list(periods.due(database())), grace).invoices)
