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
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlmodel import Session, col, delete, select

from app.adapters.booking.client import BookingError, BookingNotFound
from app.adapters.graph.errors import GraphNotFound
from app.core.actions import (
    CreateEvent,
    DeleteEvent,
    EventAction,
    Nothing,
    Record,
    Refusal,
    Refuse,
    ReleaseRooms,
    ReplaceEvent,
    UpdateEvent,
)
from app.core.booking_rules import ImportedRoom, desired_event, loan_rooms, organiser_copy_fingerprint, synced
from app.core.conflict import OutlookSeen, settle_conflict
from app.core.contract import ACTIVE_STATUSES, Loan, LoanNote
from app.core.decide import decide_loan_change
from app.core.desired import DesiredEvent
from app.core.graph import EventWrite, OutlookEvent
from app.core.link import LinkState, Pending, RoomCopy
from app.core.outlook_rules import decline_comment, holds_live_copy
from app.core.policy import Policy
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration, Room, SeenDelivery, utcnow
from app.sync import journal, state
from app.sync.integrations import policy_of
from app.sync.rooms import active_rooms
from app.sync.runtime import Runtime
from app.sync.state import Note

DIRECTION: Final = "booking_to_outlook"
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
    policy = policy_of(integration)
    if not policy.booking_to_outlook:
        return
    try:
        loan = rt.booking(integration).get_loan(loan_id)
    except BookingNotFound:
        log.info("hook for an unknown loan", loan_id=loan_id)
        return
    if journal.handled(rt.engine, integration.id, loan.updated_at, loan_id=loan.id):
        log.info("change marked handled by an admin: left alone", loan_id=loan.id)
        return

    with _loan_locks(rt, integration.id, loan):
        link = _link(rt, integration.id, loan)
        rooms = _rooms(rt, integration.id)
        if link is not None and link.booking_version is not None and loan.version < link.booking_version:
            # Read before the lock, while the Outlook side was writing a newer version: read again.
            loan = rt.booking(integration).get_loan(loan_id)
        desired = desired_event(loan, policy, rooms)
        link = _settle_loan_update(rt, integration.id, loan, rooms, link)
        if link is not None and link.pending_of("event_create") is not None:
            done, link = _finish_create(rt, integration, policy, loan, link, desired)
            if done:
                return
        action = decide_loan_change(loan, link, desired, policy, datetime.now(UTC))
        if isinstance(action, UpdateEvent) and link is not None:
            action = settle_conflict(action, link, loan, _seen(rt, integration, policy, rooms, link))
        _apply(rt, integration, policy, loan, link, action)


def placeholder_uid(loan_id: str) -> str:
    """The link key of a loan whose event is being created (its iCalUId is known once Graph answers)."""
    return f"roombridge-creating:{loan_id}"


def _settle_loan_update(rt: Runtime, integration_id: str, loan: Loan, rooms: list[ImportedRoom],
                        link: LinkState | None) -> LinkState | None:
    """A loan PATCH the Outlook side recorded and did not confirm (its job killed after the write): if the loan holds
    it, this version is the bridge's own write, not a change made in the booking system."""
    pending = link.pending_of("loan_update") if link is not None else None
    if link is None or pending is None or pending.synced is None:
        return link
    emails = tuple(r.email for r in loan_rooms(loan, rooms))
    landed = loan.status in ACTIVE_STATUSES and pending.synced.holds(loan.start, loan.end, emails)
    return state.save(rt.engine, integration_id, link.pending_adopted() if landed else link.without_pending())


def _finish_create(rt: Runtime, integration: Integration, policy: Policy, loan: Loan, link: LinkState,
                   desired: DesiredEvent | Refusal) -> tuple[bool, LinkState | None]:
    """An event create recorded and never confirmed (`PendingKind` event_create): Graph may hold the event already.

    Still wanted: the create is sent again (its `transactionId` makes Graph answer with the first event) and recorded.
    No longer wanted as it was (the loan closed, its organiser changed): the event that create may have made is
    fetched the same way and deleted. Returns whether the loan is done with, and else the link to decide from."""
    pending = link.pending
    assert pending is not None and pending.transaction_id is not None
    now = datetime.now(UTC)
    if (isinstance(desired, DesiredEvent) and desired.organizer == pending.organizer
            and loan.status in ACTIVE_STATUSES and desired.end > now):
        action: EventAction = (ReplaceEvent(desired, link.organizer_email, link.organizer_event_id)
                               if link.organizer_email and link.organizer_event_id else CreateEvent(desired))
        _apply(rt, integration, policy, loan, link, action)
        return True, None
    graph = rt.graph(integration)
    organizer = pending.organizer or ""
    probe = EventWrite("", "", loan.start, loan.end, (), "free", pending.transaction_id)
    made = rt.graph_call(organizer, graph.create_event(organizer, probe))
    try:
        rt.graph_call(organizer, graph.delete_event(organizer, made.id))
    except GraphNotFound:
        pass
    if link.ical_uid == placeholder_uid(loan.id):
        state.forget(rt.engine, integration.id, link)
        return False, None
    # A re-create for another organiser: the old event's link decides again (delete it, or create for the new one).
    return False, state.save(rt.engine, integration.id, replace(link.without_pending(), status="active"))


def _outlook_ref(loan: Loan) -> str | None:
    return loan.origin.ref if loan.origin is not None and loan.origin.system == "outlook" else None


@contextmanager
def _loan_locks(rt: Runtime, integration_id: str, loan: Loan) -> Iterator[None]:
    """The loan's lock, then its meeting's (always in this order; the Outlook side only takes meeting locks)."""
    with rt.locks.hold(f"loan:{integration_id}:{loan.id}"):
        link = _link(rt, integration_id, loan)
        ical_uid = link.ical_uid if link else _outlook_ref(loan)
        with rt.locks.hold(f"meeting:{integration_id}:{ical_uid}") if ical_uid else nullcontext():
            yield


def _link(rt: Runtime, integration_id: str, loan: Loan) -> LinkState | None:
    return state.by_loan(rt.engine, integration_id, loan.id, _outlook_ref(loan))


def _rooms(rt: Runtime, integration_id: str) -> list[ImportedRoom]:
    with session_scope(rt.engine) as s:
        return [ImportedRoom(r.email, r.name, r.place_id) for r in active_rooms(s, integration_id)]


def _seen(rt: Runtime, integration: Integration, policy: Policy, rooms: list[ImportedRoom],
          link: LinkState) -> OutlookSeen | None:
    """The organiser's event now, fingerprinted as the Outlook side would (None if it is gone)."""
    assert link.organizer_email and link.organizer_event_id
    graph = rt.graph(integration)
    event = rt.graph_call(link.organizer_email, graph.get_event(link.organizer_email, link.organizer_event_id))
    if event is None:
        return None
    return OutlookSeen(organiser_copy_fingerprint(event, policy, {r.email for r in rooms}), event.last_modified)


def _apply(rt: Runtime, integration: Integration, policy: Policy, loan: Loan, link: LinkState | None,
           action: EventAction) -> None:
    graph = rt.graph(integration)
    if isinstance(action, Nothing):
        log.debug("nothing to do", loan_id=loan.id, why=action.why)
        if link is not None and link.pending_of("event_update") is not None:
            state.save(rt.engine, integration.id, link.without_pending())
        return
    if isinstance(action, Refuse):
        r = action.refusal
        state.save(rt.engine, integration.id, None,
                   Note(DIRECTION, "skip" if r.status == "skipped" else "refuse", r.status, r.message, r.rule),
                   loan_id=loan.id)
        return
    if isinstance(action, CreateEvent | ReplaceEvent):
        d = action.desired
        earlier = link.pending_of("event_create") if link is not None else None
        # Recorded first: the room copies of a create whose job is killed before the link knows the event must not
        # look like a new meeting to the Outlook side (a second loan). See `PendingKind`.
        intent = state.save(rt.engine, integration.id, (
            link or LinkState(placeholder_uid(loan.id), "booking", loan_id=loan.id)).creating_event(
            Pending("event_create", datetime.now(UTC), transaction_id=d.transaction_id, organizer=d.organizer)))
        if isinstance(action, ReplaceEvent):
            try:
                rt.graph_call(action.old_organizer, graph.delete_event(action.old_organizer, action.old_event_id))
            except GraphNotFound:
                pass  # deleted by an earlier attempt of this job
        event = rt.graph_call(d.organizer, graph.create_event(d.organizer, d.write()))
        if earlier is not None and earlier.transaction_id == d.transaction_id:
            # A replay: Graph answered with the event the first attempt made, as it was then (the loan may have
            # moved since). Bring it to what the loan is now.
            event = rt.graph_call(d.organizer, graph.patch_event(d.organizer, event.id, d.write()))
        _record_event(rt, integration, policy, loan, intent, d, event.ical_uid, event.id,
                      "create" if isinstance(action, CreateEvent) else "update")
        _declined_in_outlook(rt, integration, policy, loan, d, event, event.ical_uid)
        return
    assert link is not None
    if isinstance(action, UpdateEvent):
        d = action.desired
        # Recorded first: a job killed after the PATCH must not leave its own write looking like the organiser's.
        state.save(rt.engine, integration.id, link.writing(Pending(
            "event_update", datetime.now(UTC), synced=synced(loan, d),
            outlook_hash=d.outlook_fingerprint(link.ical_uid, policy.block_minutes), version=loan.version)))
        try:
            written = rt.graph_call(d.organizer, graph.patch_event(d.organizer, action.event_id, d.write()))
        except GraphNotFound:
            # Deleted in Outlook meanwhile: the Outlook side cancels the loan when it sees the room copies go.
            state.save(rt.engine, integration.id, link.version_seen(loan.version, loan.updated_at))
            return
        if action.conflict:
            state.save(rt.engine, integration.id, None, Note(DIRECTION, "resolve", "conflict", action.conflict),
                       ical_uid=link.ical_uid, loan_id=loan.id)
        _record_event(rt, integration, policy, loan, link, d, link.ical_uid, action.event_id, "update")
        _declined_in_outlook(rt, integration, policy, loan, d, written, link.ical_uid, link.booking_hash)
        return
    if isinstance(action, DeleteEvent):
        rt.graph_call(action.organizer, graph.delete_event(action.organizer, action.event_id))
        state.save(rt.engine, integration.id, link.closed(loan.version, loan.updated_at),
                   Note(DIRECTION, "cancel", "ok", f"event deleted: {action.reason}"))
        return
    if isinstance(action, ReleaseRooms):
        mailboxes = _mailboxes(rt, [c.room_id for c in link.copies])
        # A refused loan: each room declines the meeting with the reason, so that its organiser learns it (SPEC §6);
        # otherwise (cancelled, returned early) the copies are removed and the rooms show free.
        refusal = Refusal("invalid", "refused", f"loan {loan.number} refused in the booking system")
        decline = loan.status == "refused" and policy.refusal_feedback == "decline"
        # The link is marked cancelled in the same lock, so the copies' deletions come back as "nothing to do".
        for copy in link.copies:
            mailbox, name = mailboxes.get(copy.room_id, (None, ""))
            if not mailbox:
                continue
            if decline:
                rt.graph_call(mailbox, graph.decline_event(mailbox, copy.event_id, decline_comment(refusal, name)))
            else:
                rt.graph_call(mailbox, graph.delete_event(mailbox, copy.event_id))
        done = "room copies declined with the reason" if decline else "room copies removed"
        state.save(rt.engine, integration.id, link.closed(loan.version, loan.updated_at),
                   Note(DIRECTION, "cancel", "ok", f"{done}: {action.reason}"))
        return
    assert isinstance(action, Record)
    log.debug("loan version recorded", loan_id=loan.id, version=loan.version, why=action.why)
    note = None
    if action.journal:
        note = Note(DIRECTION, "resolve" if action.journal == "conflict" else "skip", action.journal, action.why)
    state.save(rt.engine, integration.id, link.version_seen(loan.version, loan.updated_at), note)


def _record_event(rt: Runtime, integration: Integration, policy: Policy, loan: Loan, link: LinkState | None,
                  d: DesiredEvent, ical_uid: str, event_id: str, verb: str) -> None:
    """Remember what was written, so that the notifications this write causes change nothing (SPEC §7).

    A new meeting's lock is taken as soon as its iCalUId is known: the room copies' notifications wait for the link
    (they also wait out the Outlook side's coalescing window, which makes the gap before this lock harmless).
    """
    new_meeting = link is None or link.ical_uid != ical_uid
    with rt.locks.hold(f"meeting:{integration.id}:{ical_uid}") if new_meeting else nullcontext():
        # A room taken off the meeting loses its copy (Exchange cancels it); the rooms kept keep theirs.
        kept = () if link is None or new_meeting else tuple(c for c in link.copies if c.room_email in d.room_emails)
        known = {c.room_email for c in kept}
        # The Outlook side counts a room in the meeting when it has seen that room's live copy: record the copies.
        found = _find_copies(rt, integration, ical_uid, [e for e in d.room_emails if e not in known])
        current = link or state.by_meeting(rt.engine, integration.id, ical_uid) or LinkState(ical_uid, "booking")
        after = current.event_written(
            ical_uid=ical_uid, loan_id=loan.id, organizer=d.organizer, event_id=event_id,
            outlook_hash=d.outlook_fingerprint(ical_uid, policy.block_minutes), booking_hash=d.fingerprint(),
            version=loan.version, updated_at=loan.updated_at, synced=synced(loan, d), copies=kept + found)
        state.save(rt.engine, integration.id, after,
                   Note(DIRECTION, verb, "ok", f"event {d.subject!r} for {d.organizer}: {', '.join(d.room_emails)} "
                        f"{d.start:%Y-%m-%d %H:%M}–{d.end:%H:%M} UTC ({d.show_as})"))


def _mailboxes(rt: Runtime, room_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Room id → (mailbox id, display name)."""
    with session_scope(rt.engine) as s:
        rows = s.exec(select(Room).where(col(Room.id).in_(room_ids))).all()
        return {r.id: (r.mailbox_id, r.name) for r in rows}


def _declined_in_outlook(rt: Runtime, integration: Integration, policy: Policy, loan: Loan, d: DesiredEvent,
                         event: OutlookEvent, ical_uid: str, before: str | None = None) -> None:
    """Both sides disagree (issue 11.2): a room of the loan declined the event the bridge wrote (the room is booked in
    Outlook). Said, not hidden: the journal records a conflict, and with `conflict_note` the loan is marked in the
    booking system (`POST /v1/loans/{id}/notes`). Once per write that changed what Outlook shows."""
    if before is not None and before == d.fingerprint():
        return
    declined = sorted({a.email for a in event.attendees if a.response == "declined"} & set(d.room_emails))
    if not declined:
        return
    # Best effort: the event is written and recorded already, so a retry of this job would not come back here.
    state.save(rt.engine, integration.id, None,
               room_declined_note(rt, integration, policy, loan.id, loan.number, declined, d.start, d.end),
               ical_uid=ical_uid, loan_id=loan.id)


def room_declined_note(rt: Runtime, integration: Integration, policy: Policy, loan_id: str, loan_number: str,
                       declined: list[str], start: datetime, end: datetime) -> Note:
    """The journal's conflict entry for rooms that declined a loan's event (issue 11.2), the loan marked first in the
    booking system when `conflict_note` is set (best effort: a refused note is said in the entry). Also used when
    the room's answer comes later than the write (`outlook_to_booking`)."""
    message = (f"{', '.join(declined)} declined the event of loan {loan_number} in Outlook (booked there at "
               f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC): the two calendars disagree")
    if policy.conflict_note:
        try:
            rt.booking(integration).add_note(loan_id, LoanNote(kind="conflict", message=message))
            message += "; the loan is marked in the booking system"
        except BookingError as e:
            message += f"; the loan could not be marked in the booking system ({e.code})"
    return Note(DIRECTION, "conflict", "conflict", message, "room_declined")


def _find_copies(rt: Runtime, integration: Integration, ical_uid: str, emails: list[str]) -> tuple[RoomCopy, ...]:
    """The live copies of meeting `ical_uid` on these rooms' calendars (a room that declined keeps none)."""
    if not emails:
        return ()
    with session_scope(rt.engine) as s:
        rooms = s.exec(select(Room).where(Room.integration_id == integration.id,
                                          col(Room.email).in_(emails))).all()
    graph = rt.graph(integration)
    found = []
    for room in rooms:
        event = rt.graph_call(room.mailbox_id, graph.find_event_by_ical_uid(room.mailbox_id, ical_uid))
        if event is not None and holds_live_copy(event):
            found.append(RoomCopy(room.id, room.email, event.id, event.change_key))
    return tuple(found)


def _purge_seen_deliveries(s: Session) -> None:
    s.exec(delete(SeenDelivery).where(col(SeenDelivery.seen_at) < utcnow() - SEEN_DELIVERY_RETENTION))
