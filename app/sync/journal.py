"""The sync journal (SPEC §2): every decision that wrote, was refused, or failed, with the rule or error."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.platform.db import reader
from app.platform.logging import get_logger, request_id_var
from app.platform.models import JournalEntry, new_id, utcnow

# An `error` entry whose change later went through becomes `resolved`: `?status=error` lists only what still needs a
# person (issue 8). The entry keeps its text, with when and how it was resolved appended.
RESOLVED = "resolved"
# An entry an admin marked handled (issue 10, seed 000): its change is not run again — not by the failure policy's
# retries, nor by reconciliation or a backfill — until a newer change of that meeting or loan arrives.
HANDLED = "handled"
# What the admin sees, from what is stored: `ok` is a change synced; an error entry written while the job waits (e.g.
# the booking system unreachable) is `waiting`.
OUTCOMES = {"ok": "synced", "skipped": "skipped", "invalid": "invalid", "error": "error", "conflict": "synced",
            "handled": "handled", "resolved": "resolved"}

log = get_logger("roombridge.journal")


def record(
    session: Session,
    integration_id: str,
    direction: str,
    action: str,
    status: str,
    message: str = "",
    *,
    ical_uid: str | None = None,
    loan_id: str | None = None,
    rule: str | None = None,
    room_id: str | None = None,
    event_id: str | None = None,
) -> JournalEntry:
    if status == "error":
        again = _open_error_of(session, integration_id, direction, ical_uid, loan_id, event_id)
        if again is not None:
            # The same change failed again: one entry per change, with its attempts and first/last time.
            again.attempts += 1
            again.last_at = utcnow()
            again.action = action
            again.message = message
            again.request_id = request_id_var.get()
            session.add(again)
            log.info("journal", integration_id=integration_id, direction=direction, action=action, status=status,
                     loan_id=loan_id, attempts=again.attempts, detail=message)
            return again
    entry = JournalEntry(
        integration_id=integration_id,
        direction=direction,
        action=action,
        status=status,
        message=message,
        ical_uid=ical_uid,
        loan_id=loan_id,
        rule=rule,
        request_id=request_id_var.get(),
        room_id=room_id,
        event_id=event_id,
    )
    entry.last_at = entry.at
    session.add(entry)
    if status == "ok" and (ical_uid or loan_id):
        _resolve_same_change(session, integration_id, ical_uid, loan_id)
    log.info("journal", integration_id=integration_id, direction=direction, action=action, status=status,
             rule=rule, loan_id=loan_id, detail=message)
    return entry


def record_written(conn: Connection, integration_id: str, direction: str, action: str, status: str, message: str = "",
                   *, ical_uid: str | None = None, loan_id: str | None = None, rule: str | None = None) -> None:
    """`record` of an entry that is not an error (which never merges with an earlier one), on a Core connection in
    the caller's transaction: the same row and the same resolving of the change's earlier errors, without an ORM
    session (its unit of work was most of the cost of a worker's journal writes, issue 9.2)."""
    assert status != "error", "errors go through record(): a repeated error updates its open entry"
    now = utcnow()
    conn.execute(_INSERT, {"id": new_id(), "integration_id": integration_id, "at": now, "direction": direction,
                           "action": action, "status": status, "message": message, "ical_uid": ical_uid,
                           "loan_id": loan_id, "rule": rule, "request_id": request_id_var.get(), "room_id": None,
                           "event_id": None, "attempts": 1, "last_at": now, "handled_at": None, "subject": None})
    if status == "ok" and (ical_uid or loan_id):
        _resolve_same_change(conn, integration_id, ical_uid, loan_id)
    log.info("journal", integration_id=integration_id, direction=direction, action=action, status=status,
             rule=rule, loan_id=loan_id, detail=message)


_INSERT = insert(JournalEntry.__table__)  # type: ignore[attr-defined]


def resolve(session: Session, entry_ids: Iterable[str], how: str) -> int:
    """Mark these `error` entries resolved (e.g. the job they were written for went through later)."""
    ids = list(entry_ids)
    if not ids:
        return 0
    return _mark_resolved(session, how, col(JournalEntry.id).in_(ids))


def _resolve_same_change(session: Session | Connection, integration_id: str, ical_uid: str | None,
                         loan_id: str | None) -> None:
    """A change of this meeting or loan went through: its earlier errors need no one any more."""
    if isinstance(session, Connection):  # the hot path (state.save): a statement built once per shape
        stamp = f" — resolved {utcnow():%Y-%m-%d %H:%M:%S} UTC: a later change went through"
        session.execute(_resolve_statement(bool(ical_uid), bool(loan_id)),
                        {"w_integration_id": integration_id, "w_ical_uid": ical_uid, "w_loan_id": loan_id,
                         "stamp": stamp})
        return
    _mark_resolved(session, "a later change went through", col(JournalEntry.integration_id) == integration_id,
                   or_(*_same_change(ical_uid, loan_id)))


# Statements built once per shape (which of the change's names are known) instead of on every call: building and
# caching a statement cost a worker more CPU than running it (issue 9.2). The same SQL as the built-per-call ones.
_STATEMENTS: dict[tuple[str, bool, bool, bool], Any] = {}


def _same_change_params(ical_uid: bool, loan_id: bool, event_id: bool = False) -> list[Any]:
    same = [col(JournalEntry.ical_uid) == bindparam("w_ical_uid")] if ical_uid else []
    same += [col(JournalEntry.loan_id) == bindparam("w_loan_id")] if loan_id else []
    same += [col(JournalEntry.event_id) == bindparam("w_event_id")] if event_id else []
    return same


def _resolve_statement(ical_uid: bool, loan_id: bool) -> Any:
    key = ("resolve", ical_uid, loan_id, False)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = (
            update(JournalEntry)
            .where(col(JournalEntry.status) == "error",
                   col(JournalEntry.integration_id) == bindparam("w_integration_id"),
                   or_(*_same_change_params(ical_uid, loan_id)))
            .values(status=RESOLVED, message=col(JournalEntry.message) + bindparam("stamp")))
    return found


def _handled_statement(ical_uid: bool, loan_id: bool, event_id: bool) -> Any:
    key = ("handled", ical_uid, loan_id, event_id)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = (
            sa_select(col(JournalEntry.handled_at))
            .where(col(JournalEntry.integration_id) == bindparam("w_integration_id"),
                   col(JournalEntry.status) == HANDLED, or_(*_same_change_params(ical_uid, loan_id, event_id)))
            .order_by(col(JournalEntry.handled_at).desc()).limit(1))
    return found


def _mark_resolved(session: Session | Connection, how: str, *where: Any) -> int:
    stamp = f" — resolved {utcnow():%Y-%m-%d %H:%M:%S} UTC: {how}"
    # No ORM session synchronisation: evaluating the criteria against the session's objects cost a worker more CPU
    # than the UPDATE (issue 9.2); callers do not keep entries they read in the same session past this point.
    result = session.execute(update(JournalEntry).where(col(JournalEntry.status) == "error", *where)
                             .values(status=RESOLVED, message=col(JournalEntry.message) + stamp)
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def _same_change(ical_uid: str | None, loan_id: str | None, event_id: str | None = None) -> list[Any]:
    """Conditions naming one change: its meeting, its loan or its event (any of those given)."""
    same = [col(JournalEntry.ical_uid) == ical_uid] if ical_uid else []
    same += [col(JournalEntry.loan_id) == loan_id] if loan_id else []
    same += [col(JournalEntry.event_id) == event_id] if event_id else []
    return same


def _open_error_of(session: Session, integration_id: str, direction: str, ical_uid: str | None, loan_id: str | None,
                   event_id: str | None) -> JournalEntry | None:
    """The open error entry of the same change (same meeting, loan or event, same direction), if any."""
    same = _same_change(ical_uid, loan_id, event_id)
    if not same:
        return None
    q = (select(JournalEntry).where(col(JournalEntry.integration_id) == integration_id,
                                    col(JournalEntry.direction) == direction, col(JournalEntry.status) == "error",
                                    or_(*same))
         .order_by(col(JournalEntry.at).desc()).limit(1))
    return session.exec(q).first()


def outcome_of(entry: JournalEntry) -> str:
    """The outcome as the admin reads it (synced, skipped, invalid, waiting, error, handled, resolved)."""
    if entry.status == "error" and entry.action == "wait":
        return "waiting"
    return OUTCOMES.get(entry.status, entry.status)


def mark_handled(session: Session, entry: JournalEntry) -> None:
    """The admin took care of this change: never run it again until a newer change of it arrives."""
    now = utcnow()
    stamp = f" — marked handled {now:%Y-%m-%d %H:%M:%S} UTC"
    entry.message = entry.message + stamp if entry.status != HANDLED else entry.message
    entry.status = HANDLED
    entry.handled_at = now
    session.add(entry)


def handled(engine: Engine, integration_id: str, changed_at: datetime | None, *, ical_uid: str | None = None,
            loan_id: str | None = None, event_id: str | None = None) -> bool:
    """True when an admin marked this meeting/loan/event handled after its last change (`changed_at`, Graph's
    lastModifiedDateTime or the loan's updated_at): the flows then leave it alone. A change newer than the mark runs
    as usual; a change whose time is unknown is run."""
    same = _same_change(ical_uid, loan_id, event_id)
    if not same or changed_at is None:
        return False
    # One autocommit read through SQLAlchemy Core (no ORM session, no transaction): it runs for every change.
    q = _handled_statement(bool(ical_uid), bool(loan_id), bool(event_id))
    with reader(engine).connect() as conn:
        params = {"w_integration_id": integration_id, "w_ical_uid": ical_uid, "w_loan_id": loan_id,
                  "w_event_id": event_id}
        marked: datetime | None = conn.execute(q, params).scalar()
    if marked is None:
        return False
    if marked.tzinfo is None:
        marked = marked.replace(tzinfo=changed_at.tzinfo)
    return changed_at <= marked


def purge(session: Session, retention_days: int, now: datetime | None = None) -> int:
    """Delete entries older than the retention (the `journal_retention_days` setting, default 90)."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    result = session.execute(delete(JournalEntry).where(col(JournalEntry.at) < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
