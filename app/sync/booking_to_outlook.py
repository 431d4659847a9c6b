"""Booking → Outlook (SPEC §7): re-read a loan after a reverse hook, decide with the pure rules, write the event.

The hook is a hint: the loan is re-read (`GET /v1/loans/{id}`), so duplicate, late and reordered hooks converge, and a
burst of hooks for one loan is coalesced into one job (see `hint_key`). Each loan is processed under the lock
`loan:{integration}:{loan}`, and once it belongs to a meeting also under that meeting's lock (the one the Outlook side
takes). That is what makes a hook arriving before the bridge's own `POST /v1/loans` has returned harmless: the
Outlook-side job holds the meeting lock until its link records the loan version, and this job then sees its own write.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, delete, select

from app.adapters.booking.client import BookingNotFound
from app.adapters.graph.errors import GraphNotFound
from app.core.booking_rules import (
    Action,
    CreateEvent,
    DeleteEvent,
    DesiredEvent,
    ImportedRoom,
    Nothing,
    OutlookSeen,
    Record,
    Refuse,
    ReleaseRooms,
    ReplaceEvent,
    UpdateEvent,
    decide_loan_change,
    desired_event,
    organiser_copy_fingerprint,
    settle_conflict,
    synced_fields,
)
from app.core.contract import Loan
from app.core.graph import OutlookEvent
from app.core.outlook_rules import holds_live_copy
from app.core.policy import Policy
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import EventCopy, Integration, Link, Room, SeenDelivery, utcnow
from app.sync import journal
from app.sync.rooms import active_rooms
from app.sync.runtime import Runtime

DIRECTION = "booking_to_outlook"
SEEN_DELIVERY_RETENTION = timedelta(days=2)  # the booking system retries a delivery for hours, with the same id
PURGE_CHANCE = 0.01
log = get_logger("roombridge.booking_to_outlook")


def hint_key(integration_id: str, loan_id: str) -> str:
    """The coalescing mark of a loan (`Runtime.hints`): one pending job per loan, whatever the number of hooks."""
    return f"loan:{integration_id}:{loan_id}"


def process_loan(rt: Runtime, integration_id: str, loan_id: str) -> None:
    """Bring Outlook in line with the loan `loan_id` as the booking system has it now."""
    with session_scope(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if random.random() < PURGE_CHANCE:
            _purge_seen_deliveries(s)
    if integration is None or not integration.enabled:
        return
    policy = Policy.of(integration)
    if not policy.booking_to_outlook:
        return
    try:
        loan = rt.booking(integration).get_loan(loan_id)
    except BookingNotFound:
        log.info("hook for an unknown loan", loan_id=loan_id)
        return

    with _loan_locks(rt, integration.id, loan):
        with session_scope(rt.engine) as s:
            link = _link(s, integration.id, loan)
            rooms = _rooms(s, integration.id)
        if link is not None and link.booking_version is not None and loan.version < link.booking_version:
            # Read before the lock, while the Outlook side was writing a newer version: read again.
            loan = rt.booking(integration).get_loan(loan_id)
        desired = desired_event(loan, policy, rooms)
        action = decide_loan_change(loan, link, desired, policy, datetime.now(UTC))
        if isinstance(action, UpdateEvent) and link is not None:
            action = settle_conflict(action, link, loan, _seen(rt, integration, policy, rooms, link))
        _apply(rt, integration, policy, loan, link, action)


@contextmanager
def _loan_locks(rt: Runtime, integration_id: str, loan: Loan) -> Iterator[None]:
    """The loan's lock, then its meeting's (always in this order; the Outlook side only takes meeting locks)."""
    with rt.locks.hold(f"loan:{integration_id}:{loan.id}"):
        with session_scope(rt.engine) as s:
            link = _link(s, integration_id, loan)
        ical_uid = link.ical_uid if link else (
            loan.origin.ref if loan.origin is not None and loan.origin.system == "outlook" else None)
        with rt.locks.hold(f"meeting:{integration_id}:{ical_uid}") if ical_uid else nullcontext():
            yield


def _link(s: Session, integration_id: str, loan: Loan) -> Link | None:
    link = s.exec(select(Link).where(Link.integration_id == integration_id, Link.loan_id == loan.id)).first()
    if link is None and loan.origin is not None and loan.origin.system == "outlook":
        link = s.exec(select(Link).where(Link.integration_id == integration_id,
                                         Link.ical_uid == loan.origin.ref)).first()
    return link


def _rooms(s: Session, integration_id: str) -> list[ImportedRoom]:
    return [ImportedRoom(r.email, r.name, r.place_id) for r in active_rooms(s, integration_id)]


def _seen(rt: Runtime, integration: Integration, policy: Policy, rooms: list[ImportedRoom],
          link: Link) -> OutlookSeen | None:
    """The organiser's event now, fingerprinted as the Outlook side would (None if it is gone)."""
    assert link.organizer_email and link.organizer_event_id
    graph = rt.graph(integration)
    event = rt.graph_call(link.organizer_email, graph.get_event(link.organizer_email, link.organizer_event_id))
    if event is None:
        return None
    return OutlookSeen(organiser_copy_fingerprint(event, policy, {r.email for r in rooms}), event.last_modified)


def _apply(rt: Runtime, integration: Integration, policy: Policy, loan: Loan, link: Link | None,
           action: Action) -> None:
    graph = rt.graph(integration)
    if isinstance(action, Nothing):
        log.debug("nothing to do", loan_id=loan.id, why=action.why)
        return
    if isinstance(action, Refuse):
        r = action.refusal
        with session_scope(rt.engine) as s:
            journal.record(s, integration.id, DIRECTION, "skip" if r.status == "skipped" else "refuse", r.status,
                           r.message, loan_id=loan.id, rule=r.rule)
        return
    if isinstance(action, CreateEvent):
        d = action.desired
        event = rt.graph_call(d.organizer, graph.create_event(d.organizer, d.write()))
        _record_event(rt, integration, policy, loan, None, d, event.ical_uid, event.id, "create")
        return
    assert link is not None
    if isinstance(action, ReplaceEvent):
        rt.graph_call(action.old_organizer, graph.delete_event(action.old_organizer, action.old_event_id))
        d = action.desired
        event = rt.graph_call(d.organizer, graph.create_event(d.organizer, d.write()))
        _record_event(rt, integration, policy, loan, link, d, event.ical_uid, event.id, "update")
        return
    if isinstance(action, UpdateEvent):
        d = action.desired
        try:
            rt.graph_call(d.organizer, graph.patch_event(d.organizer, action.event_id, d.write()))
        except GraphNotFound:
            # Deleted in Outlook meanwhile: the Outlook side cancels the loan when it sees the room copies go.
            _record_version(rt, link, loan, Record("the event was deleted in Outlook"))
            return
        if action.conflict:
            with session_scope(rt.engine) as s:
                journal.record(s, integration.id, DIRECTION, "resolve", "conflict", action.conflict,
                               ical_uid=link.ical_uid, loan_id=loan.id)
        _record_event(rt, integration, policy, loan, link, d, link.ical_uid, action.event_id, "update")
        return
    if isinstance(action, DeleteEvent):
        rt.graph_call(action.organizer, graph.delete_event(action.organizer, action.event_id))
        _close_link(rt, integration, loan, link, f"event deleted: {action.reason}")
        return
    if isinstance(action, ReleaseRooms):
        with session_scope(rt.engine) as s:
            copies = s.exec(select(EventCopy, Room).join(Room, col(Room.id) == EventCopy.room_id)
                            .where(EventCopy.link_id == link.id)).all()
        # The link is marked cancelled in the same lock, so the copies' deletions come back as "nothing to do".
        for copy, room in copies:
            rt.graph_call(room.mailbox_id, graph.delete_event(room.mailbox_id, copy.event_id))
        _close_link(rt, integration, loan, link, f"room copies removed: {action.reason}")
        return
    assert isinstance(action, Record)
    _record_version(rt, link, loan, action)
    if action.journal:
        with session_scope(rt.engine) as s:
            journal.record(s, integration.id, DIRECTION, "resolve" if action.journal == "conflict" else "skip",
                           action.journal, action.why, ical_uid=link.ical_uid, loan_id=loan.id)


def _record_event(rt: Runtime, integration: Integration, policy: Policy, loan: Loan, link: Link | None,
                  d: DesiredEvent, ical_uid: str, event_id: str, verb: str) -> None:
    """Remember what was written, so that the notifications this write causes change nothing (SPEC §7).

    A new meeting's lock is taken as soon as its iCalUId is known: the room copies' notifications wait for the link
    (they also wait out the Outlook side's coalescing window, which makes the gap before this lock harmless).
    """
    new_meeting = link is None or link.ical_uid != ical_uid
    with rt.locks.hold(f"meeting:{integration.id}:{ical_uid}") if new_meeting else nullcontext():
        with session_scope(rt.engine) as s:
            known = {} if link is None or new_meeting else _copies(s, link.id)
        # The Outlook side counts a room in the meeting when it has seen that room's live copy: record the copies.
        found = _find_copies(rt, integration, ical_uid, [e for e in d.room_emails if e not in known])
        with session_scope(rt.engine) as s:
            current = s.get(Link, link.id) if link is not None else None
            if current is None:
                current = s.exec(select(Link).where(Link.integration_id == integration.id,
                                                    Link.ical_uid == ical_uid)).first()
            if current is None:
                current = Link(integration_id=integration.id, ical_uid=ical_uid, origin="booking")
            current.ical_uid = ical_uid
            current.loan_id = loan.id
            current.state = "active"
            current.organizer_email = d.organizer
            current.organizer_event_id = event_id
            current.outlook_hash = d.outlook_fingerprint(ical_uid, policy.block_minutes)
            current.booking_hash = d.fingerprint()
            current.booking_version = loan.version
            current.booking_updated_at = loan.updated_at
            current.synced = synced_fields(loan, d)
            current.updated_at = utcnow()
            s.add(current)
            s.flush()
            for email, row in known.items():
                if email not in d.room_emails:
                    s.delete(row)  # a room taken off the meeting: its copy is cancelled
            if new_meeting and link is not None:
                s.exec(delete(EventCopy).where(EventCopy.link_id == current.id))  # type: ignore[call-overload, arg-type]
            for room, event in found:
                s.add(EventCopy(link_id=current.id, room_id=room.id, event_id=event.id, change_key=event.change_key))
            journal.record(s, integration.id, DIRECTION, verb, "ok",
                           f"event {d.subject!r} for {d.organizer}: {', '.join(d.room_emails)} "
                           f"{d.start:%Y-%m-%d %H:%M}–{d.end:%H:%M} UTC ({d.show_as})",
                           ical_uid=ical_uid, loan_id=loan.id)


def _copies(s: Session, link_id: str) -> dict[str, EventCopy]:
    rows = s.exec(select(EventCopy, Room.email).join(Room, col(Room.id) == EventCopy.room_id)
                  .where(EventCopy.link_id == link_id)).all()
    return {email: copy for copy, email in rows}


def _find_copies(rt: Runtime, integration: Integration, ical_uid: str,
                 emails: list[str]) -> list[tuple[Room, OutlookEvent]]:
    """The live copies of meeting `ical_uid` on these rooms' calendars (a room that declined keeps none)."""
    if not emails:
        return []
    with session_scope(rt.engine) as s:
        rooms = s.exec(select(Room).where(Room.integration_id == integration.id,
                                          col(Room.email).in_(emails))).all()
    graph = rt.graph(integration)
    found = []
    for room in rooms:
        event = rt.graph_call(room.mailbox_id, graph.find_event_by_ical_uid(room.mailbox_id, ical_uid))
        if event is not None and holds_live_copy(event):
            found.append((room, event))
    return found


def _close_link(rt: Runtime, integration: Integration, loan: Loan, link: Link, message: str) -> None:
    with session_scope(rt.engine) as s:
        current = s.get(Link, link.id)
        if current is None:
            return
        current.state = "cancelled"
        s.exec(delete(EventCopy).where(EventCopy.link_id == current.id))  # type: ignore[call-overload, arg-type]
        current.booking_version = loan.version
        current.booking_updated_at = loan.updated_at
        current.updated_at = utcnow()
        s.add(current)
        journal.record(s, integration.id, DIRECTION, "cancel", "ok", message, ical_uid=link.ical_uid,
                       loan_id=loan.id)


def _record_version(rt: Runtime, link: Link, loan: Loan, action: Record) -> None:
    log.debug("loan version recorded", loan_id=loan.id, version=loan.version, why=action.why)
    with session_scope(rt.engine) as s:
        current = s.get(Link, link.id)
        if current is None:
            return
        current.booking_version = max(loan.version, current.booking_version or 0)
        current.booking_updated_at = loan.updated_at
        s.add(current)


def _purge_seen_deliveries(s: Session) -> None:
    s.exec(delete(SeenDelivery).where(col(SeenDelivery.seen_at) < utcnow() - SEEN_DELIVERY_RETENTION))  # type: ignore[call-overload]

