"""Pure rules of SPEC §7: from a loan (and what the link remembers) to what Outlook should show, and the action.

No I/O here. `app.sync.booking_to_outlook` reads the loan, the link and (for conflicts) the organiser's event, and
performs the action chosen by `app.core.decide.decide_loan_change` / `app.core.conflict.settle_conflict`.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.actions import Refusal
from app.core.contract import Loan
from app.core.desired import DesiredEvent, DesiredLoan, Requester, round_slot
from app.core.graph import OutlookEvent
from app.core.link import Synced
from app.core.policy import Policy

SUBJECT_MAX = 255  # Outlook's subject limit
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class ImportedRoom:
    email: str  # lower-case
    name: str
    place_id: str | None


def transaction_id(integration_id: str, loan_id: str, organizer: str) -> str:
    """Graph's create idempotency key: a retried create (crash after POST) returns the first event."""
    return hashlib.sha256(f"roombridge|{integration_id}|{loan_id}|{organizer}".encode()).hexdigest()[:40]


def subject(loan: Loan, policy: Policy | None = None) -> str:
    """The subject written to Outlook (`Policy.subject_mode`): `"{number} – {name}"` by default, a fixed label (the
    loan's details stay out of Outlook), or the loan's own title (the default form when it has none)."""
    mode = policy.subject_mode if policy is not None else "number_name"
    if mode == "fixed" and policy is not None:
        return _one_line(policy.subject_label)[:SUBJECT_MAX] or "Reserved"
    if mode == "loan_title" and loan.title and _one_line(loan.title):
        return _one_line(loan.title)[:SUBJECT_MAX]
    name = _one_line(loan.requester.name) or loan.requester.email
    return f"{_one_line(loan.number)} – {name}"[:SUBJECT_MAX]


def event_end(loan: Loan, block_minutes: int) -> datetime:
    """The end of the loan's event: the loan's end, or the time its room was given back (an early return, a no-show
    closed after the start: `Loan.freed_at`) rounded up to the block, never before the first block."""
    freed = loan.freed_at
    if freed is None:
        return loan.end
    end = round_slot(loan.start, freed, block_minutes)[1]
    return min(loan.end, max(end, loan.start + timedelta(minutes=block_minutes)))


def body_html(loan: Loan, rooms_by_place: dict[str, ImportedRoom]) -> str:
    """Every item of the loan (rooms and other assets) and a link to the loan, HTML-escaped."""
    esc = html.escape
    lines = []
    for item in loan.items:
        room = rooms_by_place.get(item.id)
        kind = "room" if item.kind == "place" else "asset"
        lines.append(f"<li>{esc(item.name or (room.name if room else item.id))} ({kind})</li>")
    url = loan.url.strip()
    # Only web links become clickable: a `javascript:` or `data:` URL from the booking system stays inert text.
    link = (f'<a href="{esc(url)}">{esc(url)}</a>' if url.lower().startswith(("https://", "http://"))
            else esc(url))
    return (f"<p>Loan {esc(loan.number)} for {esc(loan.requester.name or loan.requester.email)}</p>"
            f"<ul>{''.join(lines)}</ul><p>{link}</p>")


def loan_rooms(loan: Loan, rooms: list[ImportedRoom]) -> tuple[ImportedRoom, ...]:
    """The loan's places that are imported rooms (by booking id, else by e-mail), sorted by e-mail."""
    by_place = {r.place_id: r for r in rooms if r.place_id}
    by_email = {r.email: r for r in rooms}
    found: dict[str, ImportedRoom] = {}
    for item in loan.items:
        if item.kind != "place":
            continue
        room = by_place.get(item.id) or by_email.get((item.place_email or "").lower())
        if room is not None:
            found[room.email] = room
    return tuple(found[e] for e in sorted(found))


def desired_event(loan: Loan, policy: Policy, rooms: list[ImportedRoom]) -> DesiredEvent | Refusal:
    """SPEC §7 create/update: organiser, subject, body, slot, room attendees, showAs."""
    own_rooms = loan_rooms(loan, rooms)
    if not own_rooms:
        return Refusal("skipped", "not_eligible", "the loan holds no imported room")
    requester = loan.requester.email.lower()
    if policy.in_tenant(requester):
        organizer = requester
    elif policy.default_user_email:
        organizer = policy.default_user_email
    else:
        return Refusal("invalid", "organizer",
                       f"requester {requester} is outside the tenant and no default user is set")
    return DesiredEvent(
        loan_id=loan.id,
        organizer=organizer,
        subject=subject(loan, policy),
        body_html=body_html(loan, {r.place_id: r for r in own_rooms if r.place_id}),
        start=loan.start,
        end=event_end(loan, policy.block_minutes),
        rooms=tuple((r.email, r.name) for r in own_rooms),
        show_as=policy.show_as_of(loan.status),
        transaction_id=transaction_id(policy.integration_id, loan.id, organizer),
        sensitivity=policy.sensitivity,
    )


def booking_fingerprint(loan: Loan, policy: Policy, rooms: list[ImportedRoom]) -> str | None:
    """`link.booking_hash` for `loan`: the fingerprint of the event it should be (None if it should be none)."""
    desired = desired_event(loan, policy, rooms)
    return desired.fingerprint() if isinstance(desired, DesiredEvent) else None


def synced(loan: Loan, desired: DesiredEvent) -> Synced:
    """What the link remembers of the loan after writing its event, in the Outlook side's terms."""
    return Synced(desired.organizer, loan.requester.name or desired.organizer, desired.start, desired.end,
                  desired.room_emails)


def organiser_copy_fingerprint(event: OutlookEvent, policy: Policy, imported_rooms: set[str]) -> str | None:
    """The Outlook-side fingerprint of a meeting, read from its organiser's copy (which holds every room's answer).

    Comparable with `link.outlook_hash`; None if the copy no longer makes a loan (cancelled, no live room left).
    """
    if event.is_cancelled or event.start is None or event.end is None:
        return None
    rooms = tuple(sorted({a.email for a in event.attendees
                          if a.email in imported_rooms and a.response != "declined"}))
    requester = event.organizer_email if policy.in_tenant(event.organizer_email) else policy.default_user_email
    if not rooms or not requester:
        return None
    start, end = round_slot(event.start, event.end, policy.block_minutes)
    return DesiredLoan(event.ical_uid, Requester(requester, requester), start, end, rooms).fingerprint()


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()
