"""Typed request dependencies shared by every context's routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from services.core.database import Database
from services.core.settings import Settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def _session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed when the endpoint returns, before
    the answer is sent (``scope="function"``), rolled back if it raised."""
    with _database(request).session() as session:
        yield session


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbSession = Annotated[Session, Depends(_session, scope="function")]
AppSettings = Annotated[Settings, Depends(_settings)]
