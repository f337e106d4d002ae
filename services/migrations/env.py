"""Alembic environment: the metadata of every context, one connection, one transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import services.models  # noqa: F401  (registers every table on Base.metadata)
from services.core.database import Base, make_engine

config = context.config


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by services.migrations.alembic_config"
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            _migrate_with_keys_off(conn)
        else:
            _migrate(conn)
    engine.dispose()


def _migrate_with_keys_off(connection: Connection) -> None:
    """SQLite alters a table by copying it and dropping the original, and dropping a table
    with foreign keys on deletes what refers to it (ON DELETE CASCADE). So keys are off
    while migrating, as SQLite's own procedure for altering tables says, then checked."""
    raw = connection.connection.dbapi_connection
    assert raw is not None and not connection.in_transaction()
    raw.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, where SQLite honours it
    try:
        _migrate(connection)
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"rows whose foreign keys broke while migrating: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run bpo db upgrade")
run()
