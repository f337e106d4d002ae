"""Typed request dependencies shared by every context's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from services.core.database import Database, discard, finish
from services.core.settings import Settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


async def _session(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work: committed when the endpoint returns, before
    the answer is sent (``scope="function"``), rolled back if it raised. Opening a
    session costs no I/O and a sync endpoint commits it in its own thread
    (``routing.UnitOfWorkRoute``), so the thread pool is rarely needed here."""
    session = _database(request).sessions()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request still gives its connection back
            await run_in_threadpool(discard, session)
        raise
    if session.in_transaction():
        await run_in_threadpool(finish, session)
    else:
        session.close()


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbSession = Annotated[Session, Depends(_session, scope="function")]
AppSettings = Annotated[Settings, Depends(_settings)]
