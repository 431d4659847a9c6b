"""Outlook → booking (SPEC §6): re-read a room's event after a hint, decide with the pure rules, write the loan.

Per meeting (iCalUId) the read-decide-write sequence runs under a lock, so that copies of one meeting arriving at
once in several workers give one loan. Writes are idempotent (Idempotency-Key from the meeting's identity), and the
link remembers what was synced, so duplicate hints and the bridge's own writes coming back change nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from app.adapters.booking.client import BookingConflict
from app.core.booking_rules import resolve_conflict
from app.core.contract import Loan, LoanCreate, LoanItemRef, LoanPatch, Origin
from app.core.contract import Requester as BookingRequester
from app.core.decide import CancelLoan, CreateLoan, Journal, Nothing, UpdateLoan, decide_outlook_change
from app.core.graph import OutlookEvent
from app.core.outlook_rules import (
    DesiredLoan,
    Gone,
    Outcome,
    Refusal,
    Requester,
    apply_availability,
    evaluate,
    holds_live_copy,
)
from app.core.policy import Policy
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import EventCopy, Integration, Link, Room, utcnow
from app.sync import journal
from app.sync.rooms import active_rooms
from app.sync.runtime import Runtime

DIRECTION = "outlook_to_booking"
log = get_logger("roombridge.outlook_to_booking")


def idempotency_key(integration_id: str, ical_uid: str) -> str:
    return hashlib.sha256(f"roombridge|{integration_id}|{ical_uid}".encode()).hexdigest()


def window(policy: Policy, now: datetime) -> tuple[datetime, datetime]:
    """The span of time synced: from a day ago (meetings in progress) to the horizon."""
    return now - timedelta(days=1), now + timedelta(days=policy.horizon_days)


def process_room_event(rt: Runtime, integration_id: str, room_id: str, event_id: str) -> None:
    """Bring the loan of the meeting behind `event_id` (on `room_id`'s calendar) in line with Outlook."""
    context = room_context(rt, integration_id, room_id)
    if context is None:
        return
    integration, policy, room = context
    event = rt.graph_call(room.mailbox_id, rt.graph(integration).get_event(room.mailbox_id, event_id))
    if event is None:
        copy_gone(rt, integration, room, event_id)
        return
    handle_event(rt, integration, policy, room, event)


def room_context(rt: Runtime, integration_id: str, room_id: str) -> tuple[Integration, Policy, Room] | None:
    with session_scope(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        room = s.get(Room, room_id)
    if integration is None or room is None or not integration.enabled or not room.active:
        return None
    policy = Policy.of(integration)
    if not policy.outlook_to_booking:
        return None
    return integration, policy, room


def handle_event(rt: Runtime, integration: Integration, policy: Policy, room: Room, event: OutlookEvent) -> None:
    """One event as read from `room`'s calendar (by a hint or by reconciliation)."""
    if event.type == "seriesMaster":
        # The series itself is never a loan; each occurrence in the window is (SPEC §6, recurring meetings).
        start, end = window(policy, datetime.now(UTC))
        graph = rt.graph(integration)
        for occurrence in rt.graph_call(room.mailbox_id, graph.instances(room.mailbox_id, event.id, start, end)):
            handle_event(rt, integration, policy, room, occurrence)
        return
    # Read as the room's e-mail: the rules need to know whose copy this is.
    event = replace(event, mailbox=room.email)
    own_live = holds_live_copy(event)
    if own_live and policy.exclude_subjects and policy.in_tenant(event.organizer_email):
        event = replace(event, subject=_organiser_subject(rt, integration, event))
    seen = CopySeen(room, event.id, own_live, event.change_key, event.last_modified)
    with rt.locks.hold(f"meeting:{integration.id}:{event.ical_uid}"):
        with session_scope(rt.engine) as s:
            link = _link(s, integration.id, event.ical_uid)
            rooms = _active_rooms(s, integration.id)
            live = _other_live_rooms(s, link, room.id) | ({room.email} if own_live else set())
        outcome = evaluate(event, policy, live & set(rooms), datetime.now(UTC))
        outcome = _check_availability(rt, integration, outcome, rooms, link)
        _apply(rt, integration, link, event.ical_uid, outcome, seen)


def _organiser_subject(rt: Runtime, integration: Integration, event: OutlookEvent) -> str:
    """Exchange replaces a room copy's subject with the organiser's name: exclusions need the organiser's copy.

    Only read when the integration has exclusion patterns, so that the usual path costs one Graph read per change.
    """
    graph = rt.graph(integration)
    original = rt.graph_call(event.organizer_email,
                             graph.find_event_by_ical_uid(event.organizer_email, event.ical_uid))
    return original.subject if original is not None else event.subject


def copy_gone(rt: Runtime, integration: Integration, room: Room, event_id: str) -> None:
    """A room's copy no longer exists: drop that room from the loan, or cancel the loan if it was the last one."""
    with session_scope(rt.engine) as s:
        copy = s.exec(select(EventCopy).where(EventCopy.room_id == room.id, EventCopy.event_id == event_id)).first()
        link = s.get(Link, copy.link_id) if copy else None
    if link is None:
        return
    seen = CopySeen(room, event_id, live=False)
    with rt.locks.hold(f"meeting:{integration.id}:{link.ical_uid}"):
        with session_scope(rt.engine) as s:
            link = s.get(Link, link.id)
            others = _other_live_rooms(s, link, room.id) & set(_active_rooms(s, integration.id))
        if link is None:
            return
        outcome: Outcome
        if not others or not link.synced:
            outcome = Gone(f"the meeting is gone from {room.email}")
        else:
            outcome = DesiredLoan(
                link.ical_uid,
                Requester(link.synced["requester_email"], link.synced["requester_name"]),
                datetime.fromisoformat(link.synced["start"]),
                datetime.fromisoformat(link.synced["end"]),
                tuple(sorted(others)),
            )
        _apply(rt, integration, link, link.ical_uid, outcome, seen)


@dataclass(frozen=True)
class CopySeen:
    """What was just learnt of one room's copy of the meeting."""

    room: Room
    event_id: str
    live: bool
    change_key: str | None = None
    last_modified: datetime | None = None


def _other_live_rooms(s: Session, link: Link | None, room_id: str) -> set[str]:
    """Rooms other than `room_id` whose own calendars were last seen holding a live copy of the linked meeting."""
    if link is None:
        return set()
    rows = s.exec(select(Room.email).join(EventCopy, EventCopy.room_id == Room.id)
                  .where(EventCopy.link_id == link.id, EventCopy.room_id != room_id)).all()
    return set(rows)


def _link(s: Session, integration_id: str, ical_uid: str) -> Link | None:
    return s.exec(select(Link).where(Link.integration_id == integration_id, Link.ical_uid == ical_uid)).first()


def _active_rooms(s: Session, integration_id: str) -> dict[str, Room]:
    return {r.email: r for r in active_rooms(s, integration_id) if r.place_id}


def _check_availability(
    rt: Runtime, integration: Integration, outcome: Outcome, rooms: dict[str, Room], link: Link | None
) -> Outcome:
    if not isinstance(outcome, DesiredLoan):
        return outcome
    updating = link is not None and link.state == "active" and link.loan_id is not None
    if updating and link is not None and link.outlook_hash == outcome.fingerprint():
        return outcome  # nothing changed: no need to ask
    place_ids = {rooms[e].place_id: e for e in outcome.rooms}
    answer = rt.booking(integration).availability(
        list(place_ids), outcome.start, outcome.end, exclude_loan=link.loan_id if updating and link else None
    )
    by_room = {email: answer.get(pid, False) for pid, email in place_ids.items()}
    return apply_availability(outcome, by_room, updating)


def _apply(
    rt: Runtime,
    integration: Integration,
    link: Link | None,
    ical_uid: str,
    outcome: Outcome,
    seen: CopySeen,
) -> None:
    action = decide_outlook_change(outcome, link)
    booking = rt.booking(integration)
    with session_scope(rt.engine) as s:
        rooms = _active_rooms(s, integration.id)
    loan = None
    if isinstance(action, CreateLoan):
        try:
            loan = booking.create_loan(_loan_create(action.desired, integration, rooms),
                                       idempotency_key(integration.id, ical_uid))
        except BookingConflict as e:
            if e.code != "place_unavailable":
                raise
            # Taken between our availability check and the write: the same refusal as rule 4.
            action = Journal(Refusal("invalid", "availability", f"not available in the booking system: {e}"))
    elif isinstance(action, UpdateLoan):
        loan = _update_loan(rt, integration, link, action, rooms, seen)
        if loan is None:
            return
    elif isinstance(action, CancelLoan):
        loan = booking.cancel_loan(action.loan_id, action.reason)

    with session_scope(rt.engine) as s:
        current = _link(s, integration.id, ical_uid)
        if isinstance(action, Journal):
            r = action.refusal
            journal.record(s, integration.id, DIRECTION, "skip" if r.status == "skipped" else "refuse", r.status,
                           r.message, ical_uid=ical_uid, rule=r.rule, loan_id=current.loan_id if current else None)
        elif isinstance(action, Nothing):
            log.debug("nothing to do", ical_uid=ical_uid, why=action.why)
        else:
            assert loan is not None
            if current is None:
                current = Link(integration_id=integration.id, ical_uid=ical_uid, origin="outlook")
            current.loan_id = loan.id
            current.booking_version = loan.version
            current.booking_updated_at = loan.updated_at
            current.updated_at = utcnow()
            if isinstance(action, CancelLoan):
                current.state = "cancelled"
                verb, message = "cancel", action.reason
            else:
                d = action.desired
                current.state = "active"
                current.outlook_hash = d.fingerprint()
                current.synced = {"requester_email": d.requester.email, "requester_name": d.requester.name,
                                  "start": d.start.isoformat(), "end": d.end.isoformat(), "rooms": list(d.rooms)}
                verb = "create" if isinstance(action, CreateLoan) else "update"
                message = f"loan {loan.number}: {', '.join(d.rooms)} {d.start:%Y-%m-%d %H:%M}–{d.end:%H:%M} UTC"
            s.add(current)
            s.flush()
            journal.record(s, integration.id, DIRECTION, verb, "ok", message, ical_uid=ical_uid, loan_id=loan.id)
        if current is not None:
            _remember_copy(s, current, seen)


def _update_loan(rt: Runtime, integration: Integration, link: Link | None, action: UpdateLoan,
                 rooms: dict[str, Room], seen: CopySeen) -> Loan | None:
    """PATCH the loan if the booking system has not changed it since the last sync (If-Match on its version).

    If it has, both sides changed: the most recent change wins, a tie goes to the booking system (SPEC §7). Returns
    None when the booking system wins: its own hook then rewrites Outlook (booking_to_outlook decides the same way).
    """
    booking = rt.booking(integration)
    d = action.desired
    # A booking-born meeting's organiser may be the default user standing in for an outside requester: keep the
    # loan's real requester.
    requester = None if link is not None and link.origin == "booking" else BookingRequester(
        email=d.requester.email, name=d.requester.name)
    patch = LoanPatch(requester=requester, start=d.start, end=d.end,
                      items=[LoanItemRef(id=rooms[r].place_id) for r in d.rooms])
    try:
        return booking.patch_loan(action.loan_id, patch, if_match=link.booking_version if link else None)
    except BookingConflict as e:
        if e.code != "version_mismatch":
            raise
    now_loan = booking.get_loan(action.loan_id)
    outlook_at = seen.last_modified or datetime.now(UTC)
    winner = resolve_conflict(outlook_at, now_loan.updated_at)
    with session_scope(rt.engine) as s:
        journal.record(s, integration.id, DIRECTION, "resolve", "conflict",
                       f"both sides changed: Outlook at {outlook_at.isoformat()}, booking system at "
                       f"{now_loan.updated_at.isoformat()}: {winner} wins", ical_uid=d.ical_uid, loan_id=now_loan.id)
    if winner == "booking":
        return None
    return booking.patch_loan(action.loan_id, patch)


def _remember_copy(s: Session, link: Link, seen: CopySeen) -> None:
    """Keep one row per room holding a live copy; a copy that declined, was cancelled or vanished loses its row."""
    s.flush()
    rows = s.exec(select(EventCopy).where(EventCopy.link_id == link.id, EventCopy.room_id == seen.room.id)).all()
    if not seen.live:
        for row in rows:
            s.delete(row)
        return
    row = rows[0] if rows else EventCopy(link_id=link.id, room_id=seen.room.id, event_id=seen.event_id)
    row.event_id, row.change_key = seen.event_id, seen.change_key
    link.outlook_change_key = seen.change_key
    link.outlook_modified_at = seen.last_modified
    s.add(row)
    s.add(link)


def _loan_create(d: DesiredLoan, integration: Integration, rooms: dict[str, Room]) -> LoanCreate:
    return LoanCreate(
        requester=BookingRequester(email=d.requester.email, name=d.requester.name),
        start=d.start,
        end=d.end,
        store_id=integration.default_store_id,
        items=[LoanItemRef(id=rooms[r].place_id) for r in d.rooms],
        status="new",
        origin=Origin(system="outlook", ref=d.ical_uid),
    )
