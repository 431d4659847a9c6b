"""The meeting's subject in the journal, "as the organiser wrote it, when the integration allows it" (issue 10.2).

Off by default (`journal_subjects`): a subject is personal data (SPEC §2 hides private subjects). When on, after a
meeting's change was handled (`app/sync/outlook_to_booking.py` calls `note` once), its journal entries that have no
subject yet get the organiser's: a room's copy carries the organiser's name instead (Exchange), so the organiser's
own copy is read — one Graph read per change, none when `exclude_subjects` already read it. Private and
confidential meetings never have their subject kept. Turning the setting off clears the kept subjects
(`clear`, called by the admin API).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from app.core.graph import OutlookEvent
from app.core.policy import Policy
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration, JournalEntry
from app.sync.runtime import Runtime

MAX = 255  # JournalEntry.subject
HIDDEN = ("private", "confidential")
log = get_logger("roombridge.subjects")


def organiser_subject(rt: Runtime, integration: Integration, policy: Policy, event: OutlookEvent) -> str | None:
    """The subject as the organiser wrote it, or None (the setting off, a private meeting, unreadable)."""
    if not integration.journal_subjects or event.sensitivity in HIDDEN:
        return None
    if policy.exclude_subjects or not policy.in_tenant(event.organizer_email):
        # Already the organiser's (read for the exclusion patterns), or an outside organiser's copy is all there is.
        return event.subject
    try:
        graph = rt.graph(integration)
        original = rt.graph_call(event.organizer_email,
                                 graph.find_event_by_ical_uid(event.organizer_email, event.ical_uid))
    except Exception as e:  # noqa: BLE001 - the subject is a courtesy: the change itself went through already
        log.info("organiser's subject not read", ical_uid=event.ical_uid, error=type(e).__name__)
        return None
    return original.subject if original is not None else None


def note(rt: Runtime, integration: Integration, policy: Policy, event: OutlookEvent) -> None:
    """Give this meeting's journal entries without a subject the organiser's (when the integration allows it)."""
    subject = organiser_subject(rt, integration, policy, event)
    if not subject:
        return
    with session_scope(rt.engine) as s:
        s.execute(update(JournalEntry)
                  .where(col(JournalEntry.integration_id) == integration.id,
                         col(JournalEntry.ical_uid) == event.ical_uid, col(JournalEntry.subject).is_(None))
                  .values(subject=subject[:MAX]).execution_options(synchronize_session=False))


def clear(rt: Runtime, integration_id: str) -> int:
    """Forget every kept subject of this integration (the setting turned off)."""
    with session_scope(rt.engine) as s:
        result = s.execute(update(JournalEntry).where(col(JournalEntry.integration_id) == integration_id,
                                                      col(JournalEntry.subject).is_not(None))
                           .values(subject=None).execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)
