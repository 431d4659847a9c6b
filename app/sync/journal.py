"""The sync journal (SPEC §2): every decision that wrote, was refused, or failed, with the rule or error."""

from __future__ import annotations

from sqlmodel import Session

from app.platform.logging import get_logger, request_id_var
from app.platform.models import JournalEntry

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
    log.info("journal", integration_id=integration_id, direction=direction, action=action, status=status,
             rule=rule, loan_id=loan_id, detail=message)
    return entry
