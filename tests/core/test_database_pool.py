"""A process keeps as many PostgreSQL connections open as it serves requests at once:
a connection opened and closed per use starts a server backend each time."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from services.core.database import Database
from services.core.settings import Settings


def test_the_pool_is_sized_by_settings() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://app:secret@127.0.0.1:1/none",  # never connected
        database_pool_size=7,
        database_max_overflow=3,
    )
    pool = Database.from_settings(settings).engine.pool
    assert (pool.size(), pool._max_overflow) == (7, 3)  # type: ignore[attr-defined]


def test_pool_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPO_DATABASE_POOL_SIZE", "12")
    monkeypatch.setenv("BPO_DATABASE_MAX_OVERFLOW", "0")
    assert (Settings().database_pool_size, Settings().database_max_overflow) == (12, 0)


@pytest.mark.postgres
def test_requests_at_once_within_the_pool_reuse_its_backends(database_url: str, is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("needs PostgreSQL (BPO_TEST_DATABASE_URL)")
    database = Database(database_url, pool_size=4, max_overflow=4)
    try:

        def backends_of_a_burst() -> set[int]:
            """The server processes serving 4 connections held at once."""
            pids: set[int] = set()
            lock, barrier = threading.Lock(), threading.Barrier(4)

            def hold() -> None:
                with database.engine.connect() as connection:
                    pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
                    barrier.wait(timeout=10)
                    with lock:
                        pids.add(pid)

            threads = [threading.Thread(target=hold) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return pids

        first = backends_of_a_burst()
        assert len(first) == 4
        assert backends_of_a_burst() == first  # no backend started for the second burst
    finally:
        database.engine.dispose()
