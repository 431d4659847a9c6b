"""A room copy read before the bridge's own write of the same meeting must not be believed.

Seen in the echo test under load: a notification (or a reconcile's delta page) reads a room copy; before its job gets
the meeting's lock, the booking side moves the loan and rewrites the event; the late job then evaluated the old copy
and PATCHed the loan back to the old slot. The job now reads the copy again when the link was stored after its read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.graph import OutlookEvent
from app.platform.db import session_scope
from app.platform.models import Integration, Room
from app.sync import outlook_to_booking
from app.sync.integrations import policy_of
from tests.flows.conftest import active_loans, assert_quiet, at, rooms_of
from tests.twins import World
from tests.twins.graph import to_outlook_event


def handle(world: World, room_name: str, copy: OutlookEvent, read_at: datetime) -> None:
    """What a notification job does once it has read `copy` at `read_at`."""
    with session_scope(world.rt.engine) as s:
        integration = s.get(Integration, world.integration_id)
        room = s.get(Room, world.room_ids[f"{room_name}@contoso.com"])
    assert integration is not None and room is not None
    outlook_to_booking.handle_event(world.rt, integration, policy_of(integration), room, copy, read_at)


def read_copy(world: World, room_name: str, ical_uid: str) -> OutlookEvent:
    found = world.room_copy(room_name, ical_uid)
    assert found is not None
    return to_outlook_event(found, f"{room_name}@contoso.com")


def test_a_copy_read_before_the_bridge_moved_the_event_is_read_again(world: World) -> None:
    loan_id = world.loan("alice", ["atlas"], at(14), at(15))
    world.settle()
    [event] = world.graph.events("alice@contoso.com")
    read_at = datetime.now(UTC)
    stale = read_copy(world, "atlas", event.ical_uid)  # a notification's read, 14:00–15:00
    assert (stale.start, stale.end) == (at(14), at(15))

    # Before that job runs, the loan is moved in the booking system and the bridge rewrites the event.
    world.booking.user_update_loan(loan_id, start=at(16), end=at(17))
    world.settle()
    writes = world.writes

    handle(world, "atlas", stale, read_at)

    loan = world.booking.store.loan(loan_id)
    assert (loan.start, loan.end, rooms_of(loan)) == (at(16), at(17), ["atlas"])
    assert world.writes == writes, "the old copy was written back"
    assert [ln.id for ln in active_loans(world)] == [loan_id]
    assert_quiet(world)


def test_a_copy_read_after_the_last_write_costs_no_second_read(world: World) -> None:
    world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    [loan] = active_loans(world)
    [event] = world.graph.events("alice@contoso.com")
    read_at = datetime.now(UTC)
    copy = read_copy(world, "atlas", event.ical_uid)
    calls, writes = world.graph.calls, world.writes
    handle(world, "atlas", copy, read_at)
    # A duplicate notification: no second Graph read, nothing written.
    assert (world.graph.calls, world.writes) == (calls, writes)
    assert world.booking.store.loan(loan.id).start == at(9)
