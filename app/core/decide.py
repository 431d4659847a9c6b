"""The sync decisions, pure: what one side says × what the link remembers → one action (`app.core.actions`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.core.actions import (
    CancelLoan,
    CreateEvent,
    CreateLoan,
    DeleteEvent,
    EventAction,
    LoanAction,
    Nothing,
    Record,
    Refusal,
    Refuse,
    ReleaseRooms,
    ReplaceEvent,
    UpdateEvent,
    UpdateLoan,
)
from app.core.contract import ACTIVE_STATUSES, Loan
from app.core.desired import DesiredEvent
from app.core.link import LinkState
from app.core.outlook_rules import Gone, Outcome
from app.core.policy import Policy

# The event goes; `returned` keeps it (the meeting happened), shortened when returned early (`Loan.freed_at`), as is a
# no-show closed after the start.
CLOSING_STATUSES = frozenset({"cancelled", "refused"})


def decide_outlook_change(outcome: Outcome, link: LinkState | None) -> LoanAction:
    """Outlook → booking (SPEC §6): what Outlook says the loan should be × the link → the loan write."""
    live_loan = link.live_loan if link is not None else None
    if isinstance(outcome, Gone):
        return CancelLoan(live_loan, outcome.reason) if live_loan else Nothing("no live loan to cancel")
    if isinstance(outcome, Refusal):
        if live_loan and outcome.rule == "rooms":
            return CancelLoan(live_loan, outcome.message)
        return Refuse(outcome) if outcome.worth_journaling else Nothing(outcome.message)
    if live_loan is None:
        if link is not None and link.status == "cancelled":
            return Nothing("the loan of this meeting was cancelled")
        return CreateLoan(outcome)
    if link is not None and link.outlook_hash == outcome.fingerprint():
        return Nothing("loan already matches the meeting")
    return UpdateLoan(outcome, live_loan)


def decide_loan_change(loan: Loan, link: LinkState | None, desired: DesiredEvent | Refusal, policy: Policy,
                       now: datetime) -> EventAction:
    """Booking → Outlook (SPEC §7): the loan as it is now × the link → the event write (conflicts aside)."""
    if link is not None and link.is_own_version(loan.version):
        return Nothing("the bridge already synced this loan version (its own write, or a late hook)")
    born_in_outlook = (link.origin == "outlook") if link is not None else (
        loan.origin is not None and loan.origin.system == "outlook")
    live = link is not None and link.status == "active"

    if born_in_outlook:
        # Its meeting belongs to its organiser in Outlook: never created nor rewritten from here.
        if link is None:
            return Nothing("born in Outlook; the Outlook side links it")
        if live and loan.status in CLOSING_STATUSES:
            return ReleaseRooms(f"loan {loan.number} {loan.status} in the booking system")
        if live and loan.freed_at is not None:
            # Returned early: the rooms are free again; the organiser's meeting is not the bridge's to shorten.
            return ReleaseRooms(f"loan {loan.number} returned at {loan.freed_at:%H:%M} UTC")
        if live and loan.status in ACTIVE_STATUSES and _core_changed(loan, link, desired):
            return Record("changed in the booking system; a meeting born in Outlook is changed by its organiser",
                          journal="skipped")
        return Record("nothing Outlook shows changed")

    if link is None or not live:
        if link is not None:
            return Record("the event of this loan was already removed")
        if loan.status not in ACTIVE_STATUSES:
            return Nothing(f"loan is {loan.status}: no event to create")
        if isinstance(desired, Refusal):
            return Refuse(desired) if desired.status == "invalid" else Nothing(desired.message)
        if desired.end <= now:
            return Nothing("the loan is over")
        if desired.start > now + timedelta(days=policy.horizon_days):
            return Refuse(Refusal("skipped", "dates", f"starts beyond the {policy.horizon_days}-day horizon"))
        return CreateEvent(desired)

    # A live event the bridge created.
    if link.organizer_email is None or link.organizer_event_id is None:
        return Record("linked without an organiser's event")
    freed = loan.freed_at  # an early return or a no-show after the start: the event is shortened, not deleted
    if loan.status in CLOSING_STATUSES and freed is None:
        return DeleteEvent(link.organizer_email, link.organizer_event_id, f"loan {loan.number} {loan.status}")
    if loan.status not in ACTIVE_STATUSES and freed is None:
        return Record(f"loan is {loan.status}: the event stays")
    if isinstance(desired, Refusal):
        return DeleteEvent(link.organizer_email, link.organizer_event_id, desired.message)
    if desired.organizer != link.organizer_email:
        return ReplaceEvent(desired, link.organizer_email, link.organizer_event_id)
    if desired.fingerprint() == link.booking_hash:
        return Record("nothing Outlook shows changed")
    return UpdateEvent(desired, link.organizer_event_id)


def _core_changed(loan: Loan, link: LinkState, desired: DesiredEvent | Refusal) -> bool:
    """Whether the booking system changed what Outlook shows of a meeting born there (slot or rooms)."""
    synced = link.synced
    if synced is None:
        return True
    rooms = desired.room_emails if isinstance(desired, DesiredEvent) else ()
    return loan.start != synced.start or loan.end != synced.end or rooms != synced.rooms
