"""The ``worker`` and ``beat`` process roles: the Celery application of
``services.core.background`` with every context's tables, observers and jobs loaded."""

from __future__ import annotations

import services.models  # noqa: F401  (every table; the SLA clocks observe task history)
from services.core.background import celery_app

__all__ = ["celery_app"]
