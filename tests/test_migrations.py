"""The models and the migrations describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

import services.models  # noqa: F401
from services.core.database import Base, Database, make_engine
from services.core.settings import Settings
from services.migrations import alembic_config, upgrade
from tests.factories import make_org, make_queue, make_task


def test_autogenerate_finds_no_difference_after_upgrade(engine: Engine, settings: Settings) -> None:
    owner = make_engine(settings.resolved_migration_url())
    try:
        with owner.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        owner.dispose()
    assert differences == []


def test_altering_a_referenced_table_on_sqlite_keeps_the_rows_that_refer_to_it(tmp_path: Path) -> None:
    """SQLite alters a table by copying it: with foreign keys on, dropping the old ``tasks``
    would delete every history entry (ON DELETE CASCADE). The migration keeps them."""
    url = f"sqlite:///{tmp_path / 'migrated.sqlite'}"
    upgrade(url)
    db = Database(url)
    task = make_task(db, make_queue(db, make_org(db)))

    def history_rows() -> int:
        with db.engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT count(*) FROM task_events").scalar_one())

    assert history_rows() == 1
    command.downgrade(alembic_config(url), "0003")  # the tasks table is copied both ways
    assert history_rows() == 1
    upgrade(url)
    assert history_rows() == 1
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT task_id FROM task_events").scalar_one() == task.id.hex
    db.engine.dispose()
