"""One synchronous engine per process, shared by Starlette (thread pool) and dramatiq worker threads."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Statements sent to the database (every engine of the process): with transactions (PostgreSQL's own
# `pg_stat_database`) the round trips a change costs, read by `bench workers` (issue 9.2).
SQL_STATEMENTS = Counter("roombridge_sql_statements_total", "SQL statements sent to the database")


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver we ship)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "before_cursor_execute", _count_statement)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10)
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", _ping_if_idle(engine.dialect))
    event.listen(engine, "before_cursor_execute", _count_statement)
    return engine


def _count_statement(*_args: Any) -> None:
    SQL_STATEMENTS.inc()


# A pooled connection idle this long is pinged before it is handed out (a database restart meanwhile is noticed and
# the connection replaced, as `pool_pre_ping` does); one given back moments ago is not: a ping on every checkout was
# about a quarter of a worker's database round trips per change (issue 9.2). A connection that died within the last
# second fails its statement, and the job is retried (the pool then replaces its connections).
PING_AFTER_IDLE_S = 1.0


def _checked_in(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: Any) -> Callable[..., None]:
    def checkout(dbapi_connection, record, proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as e:
            raise DisconnectionError(str(e)) from e  # the pool drops this connection and tries another

    return checkout


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


_readers: "weakref.WeakKeyDictionary[Engine, Engine]" = weakref.WeakKeyDictionary()


def reader(engine: Engine) -> Engine:
    """`engine` for reads that need no transaction (each statement sees committed data on its own): its connections
    run in autocommit, so a read is one round trip — no BEGIN before it, no ROLLBACK when the connection goes back to
    the pool (those were two of every three round trips of a worker's reads, issue 9.2). Same pool as `engine`."""
    found = _readers.get(engine)
    if found is None:
        found = _readers[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A short transaction: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
