"""The schema is made by migrations, on SQLite and PostgreSQL, and it matches the models (no drift)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.db import make_engine
from app.migrate import downgrade, upgrade


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _drift(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_leaves_the_models_schema(database_url: str) -> None:
    upgrade(database_url)
    assert _tables(database_url) == set(SQLModel.metadata.tables)
    assert _drift(database_url) == []
    downgrade(database_url, "base")
    assert _tables(database_url) == set()
    upgrade(database_url)
    assert _drift(database_url) == []


def test_migrate_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert _drift(database_url) == []
