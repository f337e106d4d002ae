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
        _migrate(conn)
    engine.dispose()


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
