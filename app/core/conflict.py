"""The conflict rule (SPEC §7): both sides changed since the last sync → the most recent change wins; a tie goes to
the booking system. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.core.actions import Record, UpdateEvent
from app.core.contract import Loan
from app.core.link import LinkState

Winner = Literal["outlook", "booking"]


def resolve_conflict(outlook_modified: datetime, booking_updated: datetime) -> Winner:
    """The most recent change wins; on a tie, the booking system."""
    return "outlook" if outlook_modified > booking_updated else "booking"


@dataclass(frozen=True)
class OutlookSeen:
    """The organiser's event as read just before an update: its Outlook-side fingerprint and last change."""

    fingerprint: str | None  # None: the event no longer makes a valid loan (e.g. every room removed)
    last_modified: datetime | None


def settle_conflict(action: UpdateEvent, link: LinkState, loan: Loan,
                    seen: OutlookSeen | None) -> UpdateEvent | Record:
    """An update is about to overwrite the event: if Outlook changed it too since the last sync, resolve."""
    if seen is None:
        return Record("the event was deleted in Outlook; the Outlook side cancels the loan")
    own = link.pending_of("event_update")
    if seen.fingerprint == link.outlook_hash or (own is not None and seen.fingerprint == own.outlook_hash):
        return action  # unchanged since the last sync, or showing the bridge's own unconfirmed write
    outlook_at = seen.last_modified or datetime.min.replace(tzinfo=loan.updated_at.tzinfo)
    winner = resolve_conflict(outlook_at, loan.updated_at)
    text = (f"both sides changed since the last sync: Outlook at {outlook_at.isoformat()}, booking system at "
            f"{loan.updated_at.isoformat()} → {winner} wins")
    if winner == "booking":
        return UpdateEvent(action.desired, action.event_id, conflict=text)
    return Record(text, journal="conflict")
