"""The sync journal (SPEC §2): every decision that wrote, was refused, or failed, with the rule or error."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, or_, update
from sqlmodel import Session, col, select

from app.platform.logging import get_logger, request_id_var
from app.platform.models import JournalEntry, utcnow

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


def resolve(session: Session, entry_ids: Iterable[str], how: str) -> int:
    """Mark these `error` entries resolved (e.g. the job they were written for went through later)."""
    ids = list(entry_ids)
    if not ids:
        return 0
    return _mark_resolved(session, how, col(JournalEntry.id).in_(ids))


def _resolve_same_change(session: Session, integration_id: str, ical_uid: str | None, loan_id: str | None) -> None:
    """A change of this meeting or loan went through: its earlier errors need no one any more."""
    _mark_resolved(session, "a later change went through", col(JournalEntry.integration_id) == integration_id,
                   or_(*_same_change(ical_uid, loan_id)))


def _mark_resolved(session: Session, how: str, *where: Any) -> int:
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
    with Session(engine) as s:
        q = (select(JournalEntry.handled_at).where(col(JournalEntry.integration_id) == integration_id,
                                                    col(JournalEntry.status) == HANDLED, or_(*same))
             .order_by(col(JournalEntry.handled_at).desc()).limit(1))
        marked = s.exec(q).first()
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
