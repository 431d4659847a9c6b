"""Pure rules of SPEC §7: from a loan (and what the link remembers) to what Outlook should show, and the action.

No I/O here. `booking_to_outlook` reads the loan, the link and (for conflicts) the organiser's event, and performs the
action chosen by `decide_loan_change` / `settle_conflict`.

Echo suppression rests on two records kept on the link by both directions:
- `booking_version`: the loan version the bridge last wrote or read. A loan at that version (or older) is the bridge's
  own write coming back, or a late hook: nothing to do.
- `outlook_hash`: the Outlook-side fingerprint (`outlook_rules.DesiredLoan.fingerprint`) of the meeting as last synced.
  After its own event write the bridge records the fingerprint the Outlook side will compute from each room copy, so
  the notifications its write causes change nothing in the booking system.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from app.core.contract import ACTIVE_STATUSES, Loan
from app.core.graph import EventWrite, OutlookEvent
from app.core.outlook_rules import DesiredLoan, Requester, round_slot
from app.core.policy import Policy
from app.platform.models import Link

SUBJECT_MAX = 255  # Outlook's subject limit
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
CLOSING_STATUSES = frozenset({"cancelled", "refused"})  # the event goes; `returned` keeps it (the meeting happened)

Winner = Literal["outlook", "booking"]


@dataclass(frozen=True)
class ImportedRoom:
    email: str  # lower-case
    name: str
    place_id: str | None


@dataclass(frozen=True)
class DesiredEvent:
    """The organiser's event a loan should be, according to the booking system."""

    loan_id: str
    organizer: str  # mailbox the event lives in (lower-case)
    subject: str
    body_html: str
    start: datetime
    end: datetime
    rooms: tuple[tuple[str, str], ...]  # (e-mail, name), sorted by e-mail
    show_as: str  # busy | tentative
    transaction_id: str

    @property
    def room_emails(self) -> tuple[str, ...]:
        return tuple(email for email, _ in self.rooms)

    def write(self) -> EventWrite:
        return EventWrite(self.subject, self.body_html, self.start, self.end, self.rooms, self.show_as,
                          self.transaction_id)

    def fingerprint(self) -> str:
        """Hash of every field the bridge writes (`link.booking_hash`): equal means no Graph write is needed."""
        data = [self.organizer, self.subject, self.body_html, self.start.isoformat(), self.end.isoformat(),
                [list(r) for r in self.rooms], self.show_as]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()

    def outlook_fingerprint(self, ical_uid: str, block_minutes: int) -> str:
        """What the Outlook side will compute from a room copy of this event (`link.outlook_hash`).

        The Outlook side's requester is the organiser (in the tenant, or the default user, which is who we organise
        as), its slot is rounded to blocks, and its rooms are the live room attendees.
        """
        start, end = round_slot(self.start, self.end, block_minutes)
        return DesiredLoan(ical_uid, Requester(self.organizer, self.organizer), start, end,
                           self.room_emails).fingerprint()


@dataclass(frozen=True)
class NoEvent:
    """The loan has no Outlook event: `skipped` (not ours, e.g. no imported room) or `invalid` (a rule failed)."""

    status: Literal["skipped", "invalid"]
    rule: str
    message: str


def transaction_id(integration_id: str, loan_id: str, organizer: str) -> str:
    """Graph's create idempotency key: a retried create (crash after POST) returns the first event."""
    return hashlib.sha256(f"roombridge|{integration_id}|{loan_id}|{organizer}".encode()).hexdigest()[:40]


def subject(loan: Loan) -> str:
    name = _one_line(loan.requester.name) or loan.requester.email
    return f"{_one_line(loan.number)} – {name}"[:SUBJECT_MAX]


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


def desired_event(loan: Loan, policy: Policy, rooms: list[ImportedRoom]) -> DesiredEvent | NoEvent:
    """SPEC §7 create/update: organiser, subject, body, slot, room attendees, showAs."""
    own_rooms = loan_rooms(loan, rooms)
    if not own_rooms:
        return NoEvent("skipped", "not_eligible", "the loan holds no imported room")
    requester = loan.requester.email.lower()
    if policy.in_tenant(requester):
        organizer = requester
    elif policy.default_user_email:
        organizer = policy.default_user_email
    else:
        return NoEvent("invalid", "organizer",
                       f"requester {requester} is outside the tenant and no default user is set")
    tentative = loan.status == "pending" and policy.show_pending_as_tentative
    return DesiredEvent(
        loan_id=loan.id,
        organizer=organizer,
        subject=subject(loan),
        body_html=body_html(loan, {r.place_id: r for r in own_rooms if r.place_id}),
        start=loan.start,
        end=loan.end,
        rooms=tuple((r.email, r.name) for r in own_rooms),
        show_as="tentative" if tentative else "busy",
        transaction_id=transaction_id(policy.integration_id, loan.id, organizer),
    )


def booking_fingerprint(loan: Loan, policy: Policy, rooms: list[ImportedRoom]) -> str | None:
    """`link.booking_hash` for `loan`: the fingerprint of the event it should be (None if it should be none)."""
    desired = desired_event(loan, policy, rooms)
    return desired.fingerprint() if isinstance(desired, DesiredEvent) else None


def resolve_conflict(outlook_modified: datetime, booking_updated: datetime) -> Winner:
    """Both sides changed since the last sync: the most recent change wins; on a tie, the booking system (SPEC §7)."""
    return "outlook" if outlook_modified > booking_updated else "booking"


def synced_fields(loan: Loan, desired: DesiredEvent) -> dict[str, object]:
    """`link.synced`, in the keys the Outlook side uses (the last synced loan)."""
    return {"requester_email": loan.requester.email.lower(), "requester_name": loan.requester.name,
            "start": loan.start.isoformat(), "end": loan.end.isoformat(), "rooms": list(desired.room_emails)}


# --- actions ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateEvent:
    desired: DesiredEvent


@dataclass(frozen=True)
class UpdateEvent:
    desired: DesiredEvent
    event_id: str
    conflict: str | None = None  # set when both sides changed and the booking system won (journal text)


@dataclass(frozen=True)
class ReplaceEvent:
    """The organiser changed (a new requester): an event cannot move between mailboxes, so delete + create."""

    desired: DesiredEvent
    old_organizer: str
    old_event_id: str


@dataclass(frozen=True)
class DeleteEvent:
    organizer: str
    event_id: str
    reason: str


@dataclass(frozen=True)
class ReleaseRooms:
    """A loan born in Outlook was closed in the booking system: the rooms drop their copies; the meeting stays."""

    reason: str


@dataclass(frozen=True)
class Record:
    """Nothing to write to Outlook, but remember this loan version (and say why in the journal if `journal`)."""

    why: str
    journal: str | None = None  # journal status: "skipped" | "conflict"


@dataclass(frozen=True)
class Nothing:
    why: str


@dataclass(frozen=True)
class Refuse:
    """No event and nothing linked: the journal says which rule failed."""

    refusal: NoEvent


Action = CreateEvent | UpdateEvent | ReplaceEvent | DeleteEvent | ReleaseRooms | Record | Nothing | Refuse


def decide_loan_change(loan: Loan, link: Link | None, desired: DesiredEvent | NoEvent, policy: Policy,
                       now: datetime) -> Action:
    """What to do in Outlook for the loan as it is now, given what the link remembers (conflicts aside)."""
    if link is not None and link.booking_version is not None and loan.version <= link.booking_version:
        return Nothing("the bridge already synced this loan version (its own write, or a late hook)")
    born_in_outlook = (link.origin == "outlook") if link is not None else (
        loan.origin is not None and loan.origin.system == "outlook")
    live = link is not None and link.state == "active"

    if born_in_outlook:
        # Its meeting belongs to its organiser in Outlook: never created nor rewritten from here.
        if link is None:
            return Nothing("born in Outlook; the Outlook side links it")
        if live and loan.status in CLOSING_STATUSES:
            return ReleaseRooms(f"loan {loan.number} {loan.status} in the booking system")
        if live and loan.status in ACTIVE_STATUSES and _core_changed(loan, link, desired):
            return Record("changed in the booking system; a meeting born in Outlook is changed by its organiser",
                          journal="skipped")
        return Record("nothing Outlook shows changed")

    if link is None or not live:
        if link is not None:
            return Record("the event of this loan was already removed")
        if loan.status not in ACTIVE_STATUSES:
            return Nothing(f"loan is {loan.status}: no event to create")
        if isinstance(desired, NoEvent):
            return Refuse(desired) if desired.status == "invalid" else Nothing(desired.message)
        if desired.end <= now:
            return Nothing("the loan is over")
        if desired.start > now + timedelta(days=policy.horizon_days):
            return Refuse(NoEvent("skipped", "dates", f"starts beyond the {policy.horizon_days}-day horizon"))
        return CreateEvent(desired)

    # A live event the bridge created.
    if link.organizer_email is None or link.organizer_event_id is None:
        return Record("linked without an organiser's event")
    if loan.status in CLOSING_STATUSES:
        return DeleteEvent(link.organizer_email, link.organizer_event_id, f"loan {loan.number} {loan.status}")
    if loan.status not in ACTIVE_STATUSES:
        return Record(f"loan is {loan.status}: the event stays")
    if isinstance(desired, NoEvent):
        return DeleteEvent(link.organizer_email, link.organizer_event_id, desired.message)
    if desired.organizer != link.organizer_email:
        return ReplaceEvent(desired, link.organizer_email, link.organizer_event_id)
    if desired.fingerprint() == link.booking_hash:
        return Record("nothing Outlook shows changed")
    return UpdateEvent(desired, link.organizer_event_id)


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


@dataclass(frozen=True)
class OutlookSeen:
    """The organiser's event as read just before an update: its Outlook-side fingerprint and last change."""

    fingerprint: str | None  # None: the event no longer makes a valid loan (e.g. every room removed)
    last_modified: datetime | None


def settle_conflict(action: UpdateEvent, link: Link, loan: Loan, seen: OutlookSeen | None) -> UpdateEvent | Record:
    """An update is about to overwrite the event: if Outlook changed it too since the last sync, resolve (§7)."""
    if seen is None:
        return Record("the event was deleted in Outlook; the Outlook side cancels the loan")
    if seen.fingerprint == link.outlook_hash:
        return action
    outlook_at = seen.last_modified or datetime.min.replace(tzinfo=loan.updated_at.tzinfo)
    winner = resolve_conflict(outlook_at, loan.updated_at)
    text = (f"both sides changed since the last sync: Outlook at {outlook_at.isoformat()}, booking system at "
            f"{loan.updated_at.isoformat()} → {winner} wins")
    if winner == "booking":
        return UpdateEvent(action.desired, action.event_id, conflict=text)
    return Record(text, journal="conflict")


def _core_changed(loan: Loan, link: Link, desired: DesiredEvent | NoEvent) -> bool:
    synced = link.synced or {}
    rooms = list(desired.room_emails) if isinstance(desired, DesiredEvent) else []
    return (loan.start.isoformat() != synced.get("start") or loan.end.isoformat() != synced.get("end")
            or rooms != list(synced.get("rooms", rooms)))


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()
