"""The models and the migrations describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

import services.models  # noqa: F401
from services.core.database import Base, make_engine
from services.core.settings import Settings


def test_autogenerate_finds_no_difference_after_upgrade(engine: Engine, settings: Settings) -> None:
    owner = make_engine(settings.resolved_migration_url())
    try:
        with owner.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        owner.dispose()
    assert differences == []
