"""Typed request dependencies shared by every context's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
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
        await _in_own_thread(discard, session)
        raise
    if session.in_transaction():
        await _in_own_thread(finish, session)
    else:
        session.close()


async def _in_own_thread(end: Callable[[Session], None], session: Session) -> None:
    """End a unit of work in a worker thread that does not wait for the request limiter
    (as FastAPI's own ``contextmanager_in_threadpool``): a session that holds a connection
    must never queue behind requests waiting for one. Shielded: a cancelled request still
    gives its connection back."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(end, session, limiter=anyio.CapacityLimiter(1))


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbSession = Annotated[Session, Depends(_session, scope="function")]
AppSettings = Annotated[Settings, Depends(_settings)]
