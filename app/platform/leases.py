"""Named leases in the database: one holder at a time (e.g. the active scheduler), kept alive by renewal.

Acquire and renew are the same conditional write — "take the lease if it is free, expired, or already mine" — so
two processes racing for it can never both win: PostgreSQL re-checks the UPDATE's condition on the row it waited
for, and the INSERT of a missing lease conflicts on the primary key. Times come from each process's clock: hosts
need NTP, and a TTL of tens of seconds tolerates ordinary skew.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from app.platform.models import Lease, utcnow

_OWN_SUFFIXES: set[str] = set()  # the holder ids this process made (see holder_is_dead)


def holder_id() -> str:
    """Unique per process start, readable by an operator: host, pid, and a random suffix (pids get reused)."""
    suffix = uuid.uuid4().hex[:8]
    _OWN_SUFFIXES.add(suffix)
    return f"{socket.gethostname()}:{os.getpid()}:{suffix}"


def holder_is_dead(holder: str) -> bool:
    """True if `holder` (see `holder_id`) was a process of this host that no longer runs: its lease can be taken at
    once instead of after its TTL. A pid of this host that runs (perhaps reused) counts as alive: the safe side."""
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return holder.rsplit(":", 1)[-1] not in _OWN_SUFFIXES  # the same pid in an earlier run (a container restart)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists, under another user
        return False
    return False


def acquire(engine: Engine, name: str, holder: str, ttl: timedelta, *, replacing: str | None = None) -> bool:
    """Take or extend the lease `name` for `ttl`; False when another holder has an unexpired one.

    `replacing`: also take it from that holder (one known to be dead) — only if it still holds it, so that two
    processes taking over the same dead holder cannot both win."""
    now = utcnow()
    table = Lease.__table__  # type: ignore[attr-defined]
    free = or_(table.c.holder == holder, table.c.expires_at < now)
    if replacing is not None:
        free = or_(free, table.c.holder == replacing)
    with engine.begin() as conn:
        taken = conn.execute(
            update(table)
            .where(table.c.name == name, free)
            .values(holder=holder, expires_at=now + ttl)
        )
        if taken.rowcount == 1:
            return True
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        created = conn.execute(
            insert(table).values(name=name, holder=holder, expires_at=now + ttl)
            .on_conflict_do_nothing(index_elements=["name"]).returning(table.c.name)
        )  # RETURNING, not rowcount: drivers report no rowcount for INSERT
        return created.first() is not None


def release(engine: Engine, name: str, holder: str) -> None:
    """Give the lease up (on a clean stop), so that a standby takes over at once instead of after the TTL."""
    table = Lease.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.name == name, table.c.holder == holder)
                     .values(expires_at=utcnow() - timedelta(seconds=1)))


def current_holder(engine: Engine, name: str) -> tuple[str, object] | None:
    """(holder, expires_at) of the lease, expired or not; None if it was never taken."""
    table = Lease.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        row = conn.execute(table.select().where(table.c.name == name)).first()
    return (row.holder, row.expires_at) if row else None
