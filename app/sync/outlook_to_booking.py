"""Outlook → booking (SPEC §6): re-read a room's event after a hint, decide with the pure rules, write the loan.

Per meeting (iCalUId) the read-decide-write sequence runs under a lock, so that copies of one meeting arriving at
once in several workers give one loan. Writes are idempotent (Idempotency-Key from the meeting's identity), and the
link remembers what was synced (`app.sync.state`), so duplicate hints and the bridge's own writes coming back change
nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from sqlalchemy import bindparam
from sqlalchemy import select as core_select

from app.adapters.booking.client import BookingConflict, BookingError
from app.core.actions import CancelLoan, CreateLoan, LoanAction, Nothing, Refusal, Refuse, UpdateLoan
from app.core.conflict import resolve_conflict
from app.core.contract import ACTIVE_STATUSES, Loan, LoanCreate, LoanItemRef, LoanPatch, Origin
from app.core.contract import Requester as BookingRequester
from app.core.decide import decide_outlook_change
from app.core.desired import Requester
from app.core.graph import OutlookEvent
from app.core.link import LinkState, Pending, RoomCopy, Synced
from app.core.outlook_rules import (
    DesiredLoan,
    Gone,
    Outcome,
    apply_availability,
    decline_comment,
    declines,
    evaluate,
    holds_live_copy,
    room_left,
)
from app.core.policy import Policy
from app.platform.db import reader
from app.platform.locks import WriteInFlight
from app.platform.logging import get_logger
from app.platform.models import Integration, Room
from app.sync import journal, state, subjects
from app.sync.booking_to_outlook import room_declined_note
from app.sync.integrations import policy_of
from app.sync.rooms import hours_of
from app.sync.runtime import Runtime
from app.sync.state import Note

DIRECTION: Final = "outlook_to_booking"
# A write recorded before it was sent and still unconfirmed after this long lost its job for good (a killed job is
# retried within minutes): it is no longer waited for.
PENDING_GRACE: Final = timedelta(minutes=10)
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
    read_at = datetime.now(UTC)
    event = rt.graph_call(room.mailbox_id, rt.graph(integration).get_event(room.mailbox_id, event_id))
    if event is None:
        copy_gone(rt, integration, room, event_id)
        return
    handle_event(rt, integration, policy, room, event, read_at)


_INTEGRATION = Integration.__table__  # type: ignore[attr-defined]
_ROOM = Room.__table__  # type: ignore[attr-defined]
_CONTEXT = core_select(_INTEGRATION, *[c.label(f"room__{c.name}") for c in _ROOM.c]) \
    .select_from(_INTEGRATION.join(_ROOM, _ROOM.c.integration_id == _INTEGRATION.c.id)) \
    .where(_INTEGRATION.c.id == bindparam("integration_id"), _ROOM.c.id == bindparam("room_id"))


def room_context(rt: Runtime, integration_id: str, room_id: str) -> tuple[Integration, Policy, Room] | None:
    # The integration and the room in one autocommit query through SQLAlchemy Core, made into (detached) model
    # objects without the ORM's loading: it runs for every change, and the ORM session, query and identity map
    # cost a worker more than the read itself (issue 9.2).
    with reader(rt.engine).connect() as conn:
        row = conn.execute(_CONTEXT, {"integration_id": integration_id, "room_id": room_id}).first()
    if row is None:
        return None
    found = row._mapping
    integration = Integration.model_construct(**{c.name: found[c.name] for c in _INTEGRATION.c})
    room = Room.model_construct(**{c.name: found[f"room__{c.name}"] for c in _ROOM.c})
    if not integration.enabled or not room.active:
        return None
    policy = policy_of(integration)
    if not policy.outlook_to_booking:
        return None
    return integration, policy, room


def handle_event(rt: Runtime, integration: Integration, policy: Policy, room: Room, event: OutlookEvent,
                 read_at: datetime) -> None:
    """One event as read from `room`'s calendar at `read_at` (by a hint or by reconciliation)."""
    if event.type == "seriesMaster":
        # The series itself is never a loan; each occurrence in the window is (SPEC §6, recurring meetings).
        start, end = window(policy, datetime.now(UTC))
        graph = rt.graph(integration)
        read_at = datetime.now(UTC)
        for occurrence in rt.graph_call(room.mailbox_id, graph.instances(room.mailbox_id, event.id, start, end)):
            handle_event(rt, integration, policy, room, occurrence, read_at)
        return
    if journal.handled(rt.engine, integration.id, event.last_modified, ical_uid=event.ical_uid, event_id=event.id):
        log.info("change marked handled by an admin: left alone", ical_uid=event.ical_uid)
        return
    with rt.locks.hold(f"meeting:{integration.id}:{event.ical_uid}"):
        link = _recover(rt, integration, state.by_meeting(rt.engine, integration.id, event.ical_uid))
        if link is None:
            _check_own_create(rt, integration, event)
        if link is not None and link.changed_since(read_at):
            # Read before the bridge's own last write of this meeting (e.g. the booking side moved its event while
            # this job waited for the lock): believing the old read would write the old state back. Read again.
            fresh = rt.graph_call(room.mailbox_id, rt.graph(integration).get_event(room.mailbox_id, event.id))
            if fresh is None:
                _room_left_locked(rt, integration, policy, room, link, event.ical_uid, None)
                return
            event = fresh
        _handle_locked(rt, integration, policy, room, replace(event, mailbox=room.email), link)


def _handle_locked(rt: Runtime, integration: Integration, policy: Policy, room: Room, event: OutlookEvent,
                   link: LinkState | None, leaving: str | None = None) -> None:
    """`event` (read as the room's e-mail: the rules need to know whose copy this is) under the meeting's lock.
    `leaving`: a room whose copy is no longer live (known to the link), to drop at the same time."""
    if not holds_live_copy(event):
        _room_left_locked(rt, integration, policy, room, link, event.ical_uid, event)
        return
    if policy.exclude_subjects and policy.in_tenant(event.organizer_email):
        event = replace(event, subject=_organiser_subject(rt, integration, event))
    copy = RoomCopy(room.id, room.email, event.id, event.change_key)
    rooms = _active_rooms(rt, integration.id)
    live = (link.rooms_other_than(room.id) if link else set()) | {room.email}
    zone = (room.attributes or {}).get("time_zone")
    outcome = evaluate(event, policy, live & set(rooms), datetime.now(UTC), zone if isinstance(zone, str) else None,
                       hours_of(room.attributes))
    outcome, busy = _check_availability(rt, integration, outcome, rooms, link)
    _apply(rt, integration, rooms, link, event.ical_uid, outcome, copy, event.last_modified, leaving, busy)
    subjects.note(rt, integration, policy, event)  # the organiser's subject in the journal, if allowed (issue 10.2)


def copy_gone(rt: Runtime, integration: Integration, room: RoomLike, event_id: str) -> None:
    """A room's copy no longer exists: drop that room from the loan, or cancel the loan if it was the last one."""
    found = state.by_copy(rt.engine, room.id, event_id)
    if found is None:
        return
    with rt.locks.hold(f"meeting:{integration.id}:{found.ical_uid}"):
        link = _recover(rt, integration, state.by_meeting(rt.engine, integration.id, found.ical_uid))
        _room_left_locked(rt, integration, policy_of(integration), room, link, found.ical_uid, None)


def _room_left_locked(rt: Runtime, integration: Integration, policy: Policy, room: RoomLike, link: LinkState | None,
                      ical_uid: str, event: OutlookEvent | None) -> None:
    """`room`'s copy is gone, declined or cancelled: it may remove its own room from the loan, nothing more.
    The caller holds the meeting's lock."""
    outcome: Outcome | None
    rooms = _active_rooms(rt, integration.id)
    if link is None:
        if event is None:
            return
        # Never linked: the rules say why there is no loan (e.g. every room declined); no slot comes from here.
        outcome = evaluate(event, policy, (), datetime.now(UTC))
    else:
        if _declined_later(rt, integration, policy, room, link):
            return
        outcome = room_left(link, room.id, room.email, rooms, policy.block_minutes)
        if outcome is None:
            return  # not one of the loan's rooms (e.g. the bridge already took it off)
        if isinstance(outcome, Gone) and link.live_loan is not None:
            other = _other_live_copy(rt, integration, rooms, link, room, event)
            if other is not None:
                # The organiser swapped rooms in one edit and this copy's news came first: the meeting goes on in
                # a room whose copy the bridge has not seen yet. Its live copy decides, this room is dropped.
                other_room, other_event = other
                _handle_locked(rt, integration, policy, other_room, replace(other_event, mailbox=other_room.email),
                               link.without_copy(room.id), leaving=room.id)
                return
    _apply(rt, integration, rooms, link, ical_uid, outcome, None, None, leaving=room.id)


def _declined_later(rt: Runtime, integration: Integration, policy: Policy, room: RoomLike, link: LinkState) -> bool:
    """Both sides disagree, said later (issue 11.2): Exchange's booking assistant answers some time after the bridge
    wrote a loan's event, so a room's decline is often seen only when its copy goes (or shows `declined`) on a later
    notification or reconciliation. When the event is the bridge's (the link was born in the booking system), the
    organiser's copy still stands and shows this room `declined`, that is the same conflict as a decline in the
    write's answer: the journal records it and, with `conflict_note`, the loan is marked; the loan itself is left
    as the booking system has it. Said once: the room's copy leaves the link in the same save, so later news of it
    find nothing. False when it is anything else (the organiser removed the room, or cancelled the meeting)."""
    if link.origin != "booking" or link.live_loan is None or link.copy_of(room.id) is None:
        return False
    if not link.organizer_email or not link.organizer_event_id:
        return False
    graph = rt.graph(integration)
    original = rt.graph_call(link.organizer_email, graph.get_event(link.organizer_email, link.organizer_event_id))
    if original is None or original.is_cancelled or not any(
            a.email == room.email and a.response == "declined" for a in original.attendees):
        return False
    loan_number, start, end = link.live_loan, original.start, original.end
    try:
        loan = rt.booking(integration).get_loan(link.live_loan)
        loan_number, start, end = loan.number, loan.start, loan.end
    except BookingError as e:
        log.info("loan not read for the conflict entry", loan_id=link.live_loan, error=e.code)
    note = room_declined_note(rt, integration, policy, link.live_loan, loan_number, [room.email],
                              start or datetime.now(UTC), end or datetime.now(UTC))
    state.save(rt.engine, integration.id, link.without_copy(room.id), note, ical_uid=link.ical_uid,
               loan_id=link.live_loan)
    return True


def _other_live_copy(rt: Runtime, integration: Integration, rooms: dict[str, RoomLike], link: LinkState, room: RoomLike,
                     event: OutlookEvent | None) -> tuple[Room, OutlookEvent] | None:
    """When the last room the link knows leaves a meeting: a live copy of that meeting in another imported room, found
    through the organiser's copy (its attendees), or None if the meeting holds no other room (it is gone)."""
    organizer = (event.organizer_email if event is not None else None) or link.organizer_email or (
        link.synced.requester_email if link.synced is not None else None)
    if not organizer or organizer.lower() in rooms:
        return None
    graph = rt.graph(integration)
    original = rt.graph_call(organizer, graph.find_event_by_ical_uid(organizer, link.ical_uid))
    if original is None or original.is_cancelled:
        return None
    for attendee in original.attendees:
        other = rooms.get(attendee.email)
        if other is None or other.id == room.id or attendee.response == "declined":
            continue
        copy = rt.graph_call(other.mailbox_id, graph.find_event_by_ical_uid(other.mailbox_id, link.ical_uid))
        if copy is not None and holds_live_copy(copy) and (found := _room(rt, other.id)) is not None:
            return found, copy  # the whole room: its copy is handled next, by its own time zone and hours
    return None


def _organiser_subject(rt: Runtime, integration: Integration, event: OutlookEvent) -> str:
    """Exchange replaces a room copy's subject with the organiser's name: exclusions need the organiser's copy.

    Only read when the integration has exclusion patterns, so that the usual path costs one Graph read per change.
    """
    graph = rt.graph(integration)
    original = rt.graph_call(event.organizer_email,
                             graph.find_event_by_ical_uid(event.organizer_email, event.ical_uid))
    return original.subject if original is not None else event.subject


class RoomLike(Protocol):
    """What the flow reads of a room: a `Room`, or a row of `_active_rooms` (without the room's attributes: the
    rules read those of the room whose copy is handled, a whole `Room`)."""

    @property
    def id(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def mailbox_id(self) -> str: ...
    @property
    def place_id(self) -> str | None: ...


# Without the rooms' attributes (JSON): decoding them for every room of the integration on every change was ~4 % of
# a worker's CPU (issue 9.2), and only the room whose copy is handled needs its own (`_room`).
_ACTIVE_ROOMS = core_select(_ROOM.c.id, _ROOM.c.email, _ROOM.c.name, _ROOM.c.mailbox_id, _ROOM.c.place_id) \
    .where(_ROOM.c.integration_id == bindparam("integration_id"), _ROOM.c.active.is_(True), _ROOM.c.place_id != "")
_ROOM_BY_ID = core_select(_ROOM).where(_ROOM.c.id == bindparam("room_id"))


def _active_rooms(rt: Runtime, integration_id: str) -> dict[str, RoomLike]:
    """The integration's active rooms that have a place, by e-mail: plain rows read in one autocommit query (ORM
    objects for every room on every change were ~15 % of a worker's CPU, issue 9.2)."""
    with reader(rt.engine).connect() as conn:
        return {r.email: r for r in conn.execute(_ACTIVE_ROOMS, {"integration_id": integration_id}).all()}


def _room(rt: Runtime, room_id: str) -> Room | None:
    """One room, whole (a detached model object, as `room_context` makes it)."""
    with reader(rt.engine).connect() as conn:
        row = conn.execute(_ROOM_BY_ID, {"room_id": room_id}).first()
    return None if row is None else Room.model_construct(**row._mapping)


def _check_availability(rt: Runtime, integration: Integration, outcome: Outcome, rooms: dict[str, RoomLike],
                        link: LinkState | None) -> tuple[Outcome, tuple[str, ...]]:
    """Rule 4 applied; and the rooms an update drops because the booking system has them busy (they decline)."""
    if not isinstance(outcome, DesiredLoan):
        return outcome, ()
    updating = link is not None and link.live_loan is not None
    if updating and link is not None and link.outlook_hash == outcome.fingerprint():
        return outcome, ()  # nothing changed: no need to ask
    place_ids = {rooms[e].place_id: e for e in outcome.rooms}
    answer = rt.booking(integration).availability(
        [p for p in place_ids if p], outcome.start, outcome.end,
        exclude_loan=link.live_loan if updating and link else None)
    by_room = {email: answer.get(pid, False) for pid, email in place_ids.items() if pid}
    busy = tuple(r for r in outcome.rooms if not by_room.get(r, False)) if updating else ()
    return apply_availability(outcome, by_room, updating), busy


def _decline(rt: Runtime, integration: Integration, policy: Policy, room: RoomLike, event_id: str,
             refusal: Refusal) -> bool:
    """Tell the organiser, as the room would, that the room gets no loan (SPEC §6 "Refusals reach the organiser"):
    the room's copy is declined with the reason. Only for a decision (`declines`), and only with
    `refusal_feedback: decline`. The copy goes (Exchange removes a declined copy): its notification then finds no
    link to that copy (the caller records the link without it in the same lock), so nothing comes back."""
    if policy.refusal_feedback != "decline" or not declines(refusal):
        return False
    graph = rt.graph(integration)
    rt.graph_call(room.mailbox_id, graph.decline_event(room.mailbox_id, event_id, decline_comment(refusal, room.name)))
    return True


def _apply(rt: Runtime, integration: Integration, rooms: dict[str, RoomLike], link: LinkState | None, ical_uid: str,
           outcome: Outcome, copy: RoomCopy | None, modified_at: datetime | None, leaving: str | None = None,
           busy: tuple[str, ...] = ()) -> None:
    """Perform the decided action on the booking system, then record it.

    `rooms`: the active rooms by e-mail the outcome was evaluated against; `copy`: the live copy just seen;
    `leaving`: the room whose copy is no longer live; `busy`: rooms an update drops (busy in the booking system),
    whose copies decline once the loan is written."""
    action: LoanAction = decide_outlook_change(outcome, link)
    booking = rt.booking(integration)
    loan: Loan | None = None
    if isinstance(action, CreateLoan):
        try:
            link, loan = _create_loan(rt, integration, link, action.desired, rooms, copy)
        except BookingConflict as e:
            if e.code != "place_unavailable":
                raise
            # Taken between our availability check and the write: the same refusal as rule 4.
            action = Refuse(Refusal("invalid", "availability", f"not available in the booking system: {e}"))
    elif isinstance(action, UpdateLoan | CancelLoan):
        assert link is not None
        try:
            if isinstance(action, UpdateLoan):
                loan = _update_loan(rt, integration, link, action, rooms, modified_at)
            else:
                loan = booking.cancel_loan(action.loan_id, action.reason)
        except BookingConflict as e:
            if e.code != "loan_closed":
                raise
            # Closed in the booking system meanwhile: its own job (hook or reconciliation) releases Outlook (SPEC §7).
            # Nothing is recorded here, or that job would take the closing for the bridge's own write.
            log.info("loan closed in the booking system: left to its hook", loan_id=action.loan_id, ical_uid=ical_uid)
            return
        if loan is None:
            return

    policy = policy_of(integration)
    declined: list[str] = []
    if isinstance(action, Refuse) and copy is not None and (link is None or link.live_loan is None):
        # The meeting gets no loan: this room's copy says so. (A meeting that has a loan keeps it as it was.)
        room = rooms.get(copy.room_email)
        if room is not None and _decline(rt, integration, policy, room, copy.event_id, action.refusal):
            declined.append(copy.room_id)
            copy = None  # declined: the room keeps no copy
    elif isinstance(action, UpdateLoan | CancelLoan) and busy and link is not None:
        refusal = Refusal("invalid", "availability", "not available in the booking system: " + ", ".join(busy))
        for email in busy:
            room = rooms.get(email)
            kept = None if room is None else link.copy_of(room.id) or (
                copy if copy is not None and copy.room_id == room.id else None)
            if room is not None and kept is not None and _decline(rt, integration, policy, room, kept.event_id,
                                                                  refusal):
                declined.append(room.id)
    after, note = _outcome_of(integration, link, ical_uid, action, loan)
    if declined and note is not None:
        note = replace(note, message=note.message + " — declined in Outlook with the reason")
    if after is not None:
        if copy is not None:
            after = after.with_copy(copy, modified_at)
        if leaving is not None:
            after = after.without_copy(leaving)
        for room_id in declined:
            after = after.without_copy(room_id)
    if isinstance(action, Nothing):
        log.debug("nothing to do", ical_uid=ical_uid, why=action.why)
    if after == link and note is None:
        return  # a duplicate hint: nothing learnt, nothing written
    state.save(rt.engine, integration.id, after, note, ical_uid=ical_uid, reread=False)


def _create_loan(rt: Runtime, integration: Integration, link: LinkState | None, d: DesiredLoan,
                 rooms: dict[str, RoomLike], copy: RoomCopy | None) -> tuple[LinkState, Loan]:
    """Create the meeting's loan under its Idempotency-Key. The create's body and the copy that asked for it are
    recorded first (`LinkState.creating`), so that a job killed after the booking system created the loan finds it
    again (`_recover_create`)."""
    wanted = Synced(d.requester.email, d.requester.name, d.start, d.end, d.rooms)
    intent = (link or LinkState(ical_uid=d.ical_uid, origin="outlook")).creating(wanted)
    if copy is not None:
        intent = intent.with_copy(copy)
    stored = state.save(rt.engine, integration.id, intent)
    assert stored is not None
    key = idempotency_key(integration.id, d.ical_uid)
    return stored, rt.booking(integration).create_loan(_loan_create(d, integration, rooms), key)


def _recover(rt: Runtime, integration: Integration, link: LinkState | None) -> LinkState | None:
    """Settle a write recorded before it was sent and never confirmed (`LinkState.pending`, `creating`) before
    anything else is decided for this meeting; or wait for the booking side's job that is still writing its event."""
    if link is None:
        return None
    if link.pending_create is not None:
        return _recover_create(rt, integration, link)
    pending = link.pending
    if pending is None:
        return link
    if pending.stale(datetime.now(UTC), PENDING_GRACE):
        log.warning("unconfirmed write abandoned", ical_uid=link.ical_uid, kind=pending.kind)
        return state.save(rt.engine, integration.id, replace(link.without_pending(),
                          status="active" if link.status == "creating" else link.status))
    if pending.kind in ("event_update", "event_create"):
        # The booking side is writing this meeting's event: until its job records the write, a copy showing the old
        # state (or the cancelled copy of a room it took off) is not the organiser's change. Its job is retried.
        raise WriteInFlight(f"the event of loan {link.loan_id} is being written", loan_id=link.loan_id)
    return _recover_update(rt, integration, link, pending)


def _recover_update(rt: Runtime, integration: Integration, link: LinkState, pending: Pending) -> LinkState | None:
    """A loan PATCH recorded before it was sent: if the loan holds it now, it is the bridge's own write (not a change
    made in the booking system); otherwise it never landed, and the change is decided again."""
    if link.live_loan is None or pending.synced is None:
        return state.save(rt.engine, integration.id, link.without_pending())
    loan = rt.booking(integration).get_loan(link.live_loan)
    if loan.status in ACTIVE_STATUSES and pending.synced.holds(loan.start, loan.end, _loan_rooms(rt, integration.id,
                                                                                               loan)):
        assert pending.outlook_hash is not None
        adopted = link.loan_written(loan.id, loan.version, loan.updated_at, pending.outlook_hash, pending.synced)
        return state.save(rt.engine, integration.id, adopted)
    return state.save(rt.engine, integration.id, link.without_pending())


def _loan_rooms(rt: Runtime, integration_id: str, loan: Loan) -> tuple[str, ...]:
    """The e-mails of the imported rooms a loan holds, sorted."""
    by_place = {r.place_id: email for email, r in _active_rooms(rt, integration_id).items()}
    return tuple(sorted({by_place[i.id] for i in loan.items if i.kind == "place" and i.id in by_place}))


def _check_own_create(rt: Runtime, integration: Integration, event: OutlookEvent) -> None:
    """A meeting with no link may be the event of a loan the booking side is creating (its job killed after Graph
    created it, or still running): its room copies must not make a second loan. Recognised by the create's
    `transactionId` on the organiser's copy; read only while such a create is unconfirmed."""
    organizer = (event.organizer_email or "").lower()
    now = datetime.now(UTC)
    creating = {p.transaction_id: link.loan_id for link in state.pending_event_creates(rt.engine, integration.id,
                                                                                         organizer)
                if (p := link.pending) is not None and not p.stale(now, PENDING_GRACE)}
    if not creating:
        return
    graph = rt.graph(integration)
    original = rt.graph_call(organizer, graph.find_event_by_ical_uid(organizer, event.ical_uid))
    if original is not None and original.transaction_id in creating:
        raise WriteInFlight(f"the event {event.ical_uid} is being created from a loan",
                            loan_id=creating[original.transaction_id])


def _recover_create(rt: Runtime, integration: Integration, link: LinkState) -> LinkState | None:
    """A create recorded (`LinkState.creating`) but never confirmed may have created the loan before its job died:
    replay its exact body under the same Idempotency-Key (the booking system answers with that loan, or creates it
    now) and link the loan before anything else is decided. Otherwise the bridge's own loan holds the rooms (rule 4
    then refuses the meeting it belongs to) and no later change of the meeting ever moves or cancels it.

    The replay is refused when one of its rooms is taken now: then the earlier attempt never created the loan (the
    key is still free) and the link stays as it is; so it does when a room is no longer imported.
    """
    earlier = link.pending_create
    if earlier is None:
        return link
    rooms = _active_rooms(rt, integration.id)
    if not all(r in rooms for r in earlier.rooms):
        return link
    replay = DesiredLoan(link.ical_uid, Requester(earlier.requester_email, earlier.requester_name), earlier.start,
                         earlier.end, earlier.rooms)
    try:
        loan = rt.booking(integration).create_loan(_loan_create(replay, integration, rooms),
                                                   idempotency_key(integration.id, link.ical_uid))
    except BookingConflict as e:
        if e.code != "place_unavailable":
            raise
        return link
    recovered = link.loan_written(loan.id, loan.version, loan.updated_at, replay.fingerprint(), earlier)
    return state.save(rt.engine, integration.id, recovered,
                      Note(DIRECTION, "create", "ok", f"loan {loan.number} of an interrupted create linked"))


def _outcome_of(integration: Integration, link: LinkState | None, ical_uid: str, action: LoanAction,
                loan: Loan | None) -> tuple[LinkState | None, Note | None]:
    """The link after `action` (None: no link to keep) and what the journal says."""
    if isinstance(action, Refuse):
        r = action.refusal
        return link, Note(DIRECTION, "skip" if r.status == "skipped" else "refuse", r.status, r.message, r.rule)
    if isinstance(action, Nothing):
        return link, None
    assert loan is not None
    current = link or LinkState(ical_uid=ical_uid, origin="outlook")
    if isinstance(action, CancelLoan):
        return (current.loan_cancelled(loan.id, loan.version, loan.updated_at),
                Note(DIRECTION, "cancel", "ok", action.reason))
    d = action.desired
    after = current.loan_written(loan.id, loan.version, loan.updated_at, d.fingerprint(),
                                 Synced(d.requester.email, d.requester.name, d.start, d.end, d.rooms))
    verb = "create" if isinstance(action, CreateLoan) else "update"
    message = f"loan {loan.number}: {', '.join(d.rooms)} {d.start:%Y-%m-%d %H:%M}–{d.end:%H:%M} UTC"
    return after, Note(DIRECTION, verb, "ok", message)


def _update_loan(rt: Runtime, integration: Integration, link: LinkState, action: UpdateLoan,
                 rooms: dict[str, RoomLike], modified_at: datetime | None) -> Loan | None:
    """PATCH the loan if the booking system has not changed it since the last sync (If-Match on its version).

    If it has, both sides changed: the most recent change wins, a tie goes to the booking system (SPEC §7). Returns
    None when the booking system wins: its own hook then rewrites Outlook (booking_to_outlook decides the same way).
    """
    booking = rt.booking(integration)
    d = action.desired
    # A booking-born meeting's organiser may be the default user standing in for an outside requester: keep the
    # loan's real requester.
    requester = None if link.origin == "booking" else BookingRequester(email=d.requester.email, name=d.requester.name)
    patch = LoanPatch(requester=requester, start=d.start, end=d.end,
                      items=_items(d, rooms))
    # Recorded first: a job killed after the PATCH landed must not take it for a change made in the booking system.
    state.save(rt.engine, integration.id, link.writing(Pending(
        "loan_update", datetime.now(UTC), synced=Synced(d.requester.email, d.requester.name, d.start, d.end, d.rooms),
        outlook_hash=d.fingerprint())), reread=False)
    try:
        return booking.patch_loan(action.loan_id, patch, if_match=link.booking_version)
    except BookingConflict as e:
        if e.code != "version_mismatch":
            raise
    now_loan = booking.get_loan(action.loan_id)
    outlook_at = modified_at or datetime.now(UTC)
    winner = resolve_conflict(outlook_at, now_loan.updated_at)
    state.save(rt.engine, integration.id, None,
               Note(DIRECTION, "resolve", "conflict",
                    f"both sides changed: Outlook at {outlook_at.isoformat()}, booking system at "
                    f"{now_loan.updated_at.isoformat()}: {winner} wins"),
               ical_uid=d.ical_uid, loan_id=now_loan.id)
    if winner == "booking":
        state.save(rt.engine, integration.id, link.without_pending())
        return None
    return booking.patch_loan(action.loan_id, patch)


def _loan_create(d: DesiredLoan, integration: Integration, rooms: dict[str, RoomLike]) -> LoanCreate:
    return LoanCreate(
        requester=BookingRequester(email=d.requester.email, name=d.requester.name),
        start=d.start,
        end=d.end,
        store_id=integration.default_store_id,
        items=_items(d, rooms),
        status="new",
        origin=Origin(system="outlook", ref=d.ical_uid),
    )


def _items(d: DesiredLoan, rooms: dict[str, RoomLike]) -> list[LoanItemRef]:
    """The loan's items: the booking system's places of the desired rooms (rooms are imported with a place id)."""
    return [LoanItemRef(id=place_id) for place_id in (rooms[r].place_id for r in d.rooms) if place_id]
