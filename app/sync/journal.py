"""The sync journal (SPEC §2): every decision that wrote, was refused, or failed, with the rule or error."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, update
from sqlmodel import Session, col

from app.platform.logging import get_logger, request_id_var
from app.platform.models import JournalEntry, utcnow

# An `error` entry whose change later went through becomes `resolved`: `?status=error` lists only what still needs a
# person (issue 8). The entry keeps its text, with when and how it was resolved appended.
RESOLVED = "resolved"

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
) -> JournalEntry:
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
    )
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
    stamp = f" — resolved {utcnow():%Y-%m-%d %H:%M:%S} UTC: {how}"
    result = session.execute(update(JournalEntry).where(col(JournalEntry.id).in_(ids),
                                                        col(JournalEntry.status) == "error")
                             .values(status=RESOLVED, message=col(JournalEntry.message) + stamp))
    return int(getattr(result, "rowcount", 0) or 0)


def _resolve_same_change(session: Session, integration_id: str, ical_uid: str | None, loan_id: str | None) -> None:
    """A change of this meeting or loan went through: its earlier errors need no one any more."""
    same = [col(JournalEntry.ical_uid) == ical_uid] if ical_uid else []
    same += [col(JournalEntry.loan_id) == loan_id] if loan_id else []
    stamp = f" — resolved {utcnow():%Y-%m-%d %H:%M:%S} UTC: a later change went through"
    session.execute(update(JournalEntry).where(col(JournalEntry.integration_id) == integration_id,
                                               col(JournalEntry.status) == "error", or_(*same))
                    .values(status=RESOLVED, message=col(JournalEntry.message) + stamp))
