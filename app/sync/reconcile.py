"""Reconciliation of one room (SPEC §1.3, §4): calendarView delta over the synced window, each change fed to the
same Outlook → booking path as a notification. It recovers what notifications missed (outages, `missed` lifecycle
events, expired subscriptions, rooms Graph refused to subscribe) and costs one delta round when nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from app.adapters.graph.errors import GraphGone
from app.core.link import Synced
from app.platform.db import session_scope
from app.platform.locks import WriteInFlight
from app.platform.logging import get_logger
from app.platform.models import EventCopy, Integration, Link, Room, utcnow
from app.sync import booking_to_outlook, journal
from app.sync.integrations import policy_of
from app.sync.outlook_to_booking import copy_gone, handle_event, room_context, window
from app.sync.runtime import Runtime

# The delta window is fixed by its token; start a new one daily so the horizon keeps rolling forward.
WINDOW_ROLL = timedelta(days=1)
log = get_logger("roombridge.reconcile")


def reconcile_room(rt: Runtime, room_id: str, full: bool = False, since: datetime | None = None) -> None:
    """Apply the room's calendar changes since the last round (`full`: every meeting of the window).

    `since` (a backfill) widens a full sync back to that date; meetings already over are still skipped by the rules.
    """
    with session_scope(rt.engine) as s:
        room = s.get(Room, room_id)
    if room is None:
        return
    context = room_context(rt, room.integration_id, room_id)
    if context is None:
        return
    integration, policy, room = context
    now = datetime.now(UTC)
    start, end = window(policy, now)
    if since is not None:
        start, full = min(start, since), True
    link = room.delta_link
    # The window's left edge moves with time; once it has moved more than WINDOW_ROLL, start a new window.
    if full or room.delta_window_start is None or start - room.delta_window_start > WINDOW_ROLL:
        link = None
    graph = rt.graph(integration)
    read_at = datetime.now(UTC)
    try:
        changed, removed, next_link = rt.graph_call(room.mailbox_id,
                                                    graph.calendar_delta(room.mailbox_id, start, end, link))
    except GraphGone:
        # The token expired: a full sync of the window. Links make it harmless (no duplicate loans, SPEC case 14).
        log.info("delta token expired, full resync", room=room.email)
        link = None
        read_at = datetime.now(UTC)
        changed, removed, next_link = rt.graph_call(room.mailbox_id, graph.calendar_delta(room.mailbox_id, start, end))
    window_start = room.delta_window_start if link is not None else start

    for event in changed:
        with _unless_in_flight(room.email, event.id):
            handle_event(rt, integration, policy, room, event, read_at)
    for event_id in removed:
        # `@removed` also reports items that merely left the window (SPEC case 15): re-read before believing it.
        found_at = datetime.now(UTC)
        found = rt.graph_call(room.mailbox_id, graph.get_event(room.mailbox_id, event_id))
        with _unless_in_flight(room.email, event_id):
            if found is None:
                copy_gone(rt, integration, room, event_id)
            else:
                handle_event(rt, integration, policy, room, found, found_at)

    if link is None:
        # A full sync lists what the window holds, not what left it: a copy the links know that it does not list is
        # re-read (e.g. a room's booking assistant declined a loan's event after the bridge wrote it, issue 11.2,
        # and the notification was lost).
        seen = {e.id for e in changed} | set(removed)
        for event_id in _known_copies(rt, room_id, start, end) - seen:
            found_at = datetime.now(UTC)
            found = rt.graph_call(room.mailbox_id, graph.get_event(room.mailbox_id, event_id))
            with _unless_in_flight(room.email, event_id):
                if found is None:
                    copy_gone(rt, integration, room, event_id)
                else:
                    handle_event(rt, integration, policy, room, found, found_at)

    with session_scope(rt.engine) as s:
        row = s.get(Room, room_id)
        if row is not None:
            row.delta_link, row.delta_window_start, row.reconciled_at = next_link, window_start, utcnow()
            s.add(row)
        if link is None:
            journal.record(s, integration.id, "reconcile", "reconcile", "ok",
                           f"{room.email}: full sync of the window, {len(changed)} events, {len(removed)} removed")


def _known_copies(rt: Runtime, room_id: str, start: datetime, end: datetime) -> set[str]:
    """The event ids of this room's copies of active links whose synced slot meets the window."""
    with session_scope(rt.engine) as s:
        rows = s.exec(select(EventCopy.event_id, Link.synced).join(Link, col(Link.id) == col(EventCopy.link_id))
                      .where(col(EventCopy.room_id) == room_id, col(Link.state) == "active")).all()
    found: set[str] = set()
    for event_id, data in rows:
        try:
            synced = Synced.from_json(dict(data) if data else None)
        except (TypeError, ValueError, KeyError):
            synced = None
        if synced is not None and _aware(synced.end) > start and _aware(synced.start) < end:
            found.add(event_id)
    return found


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@contextmanager
def _unless_in_flight(room: str, event_id: str) -> Iterator[None]:
    """An event the booking side is writing right now is left to that job (it records the meeting when its write is
    done): the rest of the pass goes on."""
    try:
        yield
    except WriteInFlight as e:
        log.info("left to the job writing it", room=room, event_id=event_id, why=str(e))


# Loans changed a little before the cursor are read again: the booking system's clock is not ours.
LOANS_OVERLAP = timedelta(minutes=5)


def reconcile_loans(rt: Runtime, integration_id: str, since: datetime | None = None) -> int:
    """The booking side of reconciliation (SPEC §1.3): every loan changed since the last round goes through the same
    path as a reverse hook, which recovers lost hooks. Returns how many loans were looked at."""
    with session_scope(rt.engine) as s:
        integration = s.get(Integration, integration_id)
    if integration is None or not integration.enabled or not policy_of(integration).booking_to_outlook:
        return 0
    started = utcnow()
    cursor = since or (integration.loans_synced_at - LOANS_OVERLAP if integration.loans_synced_at else None)
    seen = 0
    for loan in rt.booking(integration).changed_loans(cursor):
        booking_to_outlook.process_loan(rt, integration_id, loan.id)
        seen += 1
    with session_scope(rt.engine) as s:
        row = s.get(Integration, integration_id)
        if row is not None:
            row.loans_synced_at = started
            s.add(row)
        if seen:
            journal.record(s, integration_id, "reconcile", "reconcile", "ok",
                           f"{seen} loans changed since {cursor.isoformat() if cursor else 'the beginning'} re-read")
    return seen
