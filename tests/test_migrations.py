"""The schema is made by migrations, on SQLite and PostgreSQL, and it matches the models (no drift)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import app.platform.models  # noqa: F401
from app.platform.db import make_engine
from app.platform.migrate import downgrade, upgrade


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


def _seed_integration_and_room(engine) -> None:  # type: ignore[no-untyped-def]
    """Integration 'i1' and its room 'r1', in the columns of revision 0001 (every later one keeps them)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO integration (id, name, enabled, tenant_domain, extra_domains, tenant_id, client_id, "
            "client_secret_enc, booking_base_url, booking_api_key_enc, hook_secret_enc, default_store_id, "
            "ignore_tags, block_minutes, horizon_days, direction, private_events, exclude_subjects, "
            "show_pending_as_tentative, created_at, updated_at) VALUES ('i1', 'n', true, 'contoso.com', '[]', "
            "'t', 'c', 'x', 'https://b', 'x', 'x', 's', '[]', 15, 180, 'both', 'sync_hidden', '[]', true, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO room (id, integration_id, email, name, mailbox_id, active, attributes, "
                          "updated_at) VALUES ('r1', 'i1', 'a@contoso.com', 'A', 'm', true, '{}', "
                          "CURRENT_TIMESTAMP)"))


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


def test_upgrade_keeps_existing_rows(database_url: str) -> None:
    """Each revision applies to a database holding data written by the previous one."""
    from sqlalchemy import text

    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    try:
        _seed_integration_and_room(engine)
        upgrade(database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT polling FROM room WHERE id = 'r1'")).scalar() in (False, 0)
    finally:
        engine.dispose()
    assert _drift(database_url) == []


def _primary_key(url: str, table: str) -> list[str]:
    engine = make_engine(url)
    try:
        return inspect(engine).get_pk_constraint(table)["constrained_columns"]
    finally:
        engine.dispose()


def test_0004_delivery_ids_per_integration_keeps_rows_and_downgrades(database_url: str) -> None:
    """Issue 8: seen_delivery's key becomes (integration_id, delivery_id); the rows seen before are kept."""
    from sqlalchemy import text

    integration = (
        "INSERT INTO integration (id, name, enabled, tenant_domain, extra_domains, tenant_id, client_id, "
        "client_secret_enc, booking_base_url, booking_api_key_enc, hook_secret_enc, default_store_id, "
        "ignore_tags, block_minutes, horizon_days, direction, private_events, exclude_subjects, "
        "show_pending_as_tentative, created_at, updated_at) VALUES (:id, 'n', true, 'contoso.com', '[]', "
        "'t', 'c', 'x', 'https://b', 'x', 'x', 's', '[]', 15, 180, 'both', 'sync_hidden', '[]', true, "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    seen = "INSERT INTO seen_delivery (integration_id, delivery_id, seen_at) VALUES (:i, :d, :at)"
    upgrade(database_url, "0003")
    assert _primary_key(database_url, "seen_delivery") == ["delivery_id"]
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for iid in ("ia", "ib"):
                conn.execute(text(integration), {"id": iid})
            conn.execute(text(seen), {"i": "ia", "d": "1", "at": "2030-01-01 00:00:00"})
            conn.execute(text(seen), {"i": "ib", "d": "2", "at": "2030-01-01 00:00:00"})
        upgrade(database_url, "0004")
        assert _primary_key(database_url, "seen_delivery") == ["integration_id", "delivery_id"]
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT integration_id, delivery_id FROM seen_delivery ORDER BY 1, 2")).all()
            assert [tuple(r) for r in rows] == [("ia", "1"), ("ib", "2")]
            # The same delivery id for another integration is a row of its own now.
            conn.execute(text(seen), {"i": "ib", "d": "1", "at": "2030-01-02 00:00:00"})
        downgrade(database_url, "0003")
        assert _primary_key(database_url, "seen_delivery") == ["delivery_id"]
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT integration_id, delivery_id FROM seen_delivery ORDER BY 2")).all()
            assert [tuple(r) for r in rows] == [("ia", "1"), ("ib", "2")]  # the earliest of the two '1' kept
    finally:
        engine.dispose()
    upgrade(database_url)
    assert _drift(database_url) == []


def test_downgrade_through_batch_operations_keeps_the_rows_that_reference_the_table(database_url: str) -> None:
    """On SQLite a batch operation recreates the table: with foreign keys on, dropping the old `integration` table
    cascade-deleted its rooms (seen on the downgrade of 0010 and 0009). Rows are kept on both databases."""
    from sqlalchemy import text

    upgrade(database_url, "0008")
    engine = make_engine(database_url)
    try:
        _seed_integration_and_room(engine)
        upgrade(database_url)
        downgrade(database_url, "0008")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM integration")).scalar() == 1
            assert conn.execute(text("SELECT integration_id FROM room")).scalars().all() == ["i1"]
        upgrade(database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM room")).scalar() == 1
    finally:
        engine.dispose()
    assert _drift(database_url) == []
