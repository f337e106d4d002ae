"""Structured logs with structlog: key-value lines in a terminal, JSON in production."""

from __future__ import annotations

import logging

import structlog

from services.core.settings import Settings


def configure_logging(settings: Settings) -> None:
    renderer = structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
