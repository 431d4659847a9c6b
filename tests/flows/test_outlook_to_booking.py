"""Meetings booked in Outlook become loans (SPEC §6), through the real flow against the twins."""

from __future__ import annotations

from datetime import timedelta

from app.platform.db import session_scope
from app.platform.models import JournalEntry
from app.sync import journal
from tests.flows.conftest import active_loans, assert_quiet, at, rooms_of
from tests.twins import World


def test_a_meeting_gives_a_loan_on_rounded_blocks(world: World) -> None:
    world.meeting("alice", ["atlas"], at(9, 10), at(9, 50))
    world.settle()
    [loan] = active_loans(world)
    assert (loan.start, loan.end) == (at(9), at(10))
    assert loan.requester.email == "alice@contoso.com" and rooms_of(loan) == ["atlas"]
    assert loan.origin is not None and loan.origin.system == "outlook"
    assert_quiet(world)


def test_a_meeting_with_two_rooms_gives_one_loan(world: World) -> None:
    world.meeting("bob", ["atlas", "cirrus"], at(11), at(12))
    world.settle()
    [loan] = active_loans(world)
    assert rooms_of(loan) == ["atlas", "cirrus"]
    assert_quiet(world)


def test_moving_the_meeting_moves_the_loan(world: World) -> None:
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(15), end=at(16, 30))
    world.settle()
    [loan] = active_loans(world)
    assert (loan.start, loan.end) == (at(15), at(16, 30))
    assert_quiet(world)


def test_a_change_an_admin_marked_handled_is_left_alone_until_a_newer_one(world: World) -> None:
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    [loan] = active_loans(world)
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(15), end=at(16))
    world.collect()  # the move's notification waits while the admin marks the meeting's entry handled
    with session_scope(world.rt.engine) as s:
        entry = s.get(JournalEntry, next(e.id for e in world.journal() if e.ical_uid))
        assert entry is not None
        journal.mark_handled(s, entry)
    world.settle()
    assert (world.booking.store.loan(loan.id).start, world.booking.store.loan(loan.id).end) == (at(9), at(10))
    world.clock.advance(timedelta(minutes=1))  # the twins' clock lags the real one the mark was stamped with
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(17), end=at(18))
    world.settle()
    assert (world.booking.store.loan(loan.id).start, world.booking.store.loan(loan.id).end) == (at(17), at(18))


def test_cancelling_the_meeting_cancels_the_loan(world: World) -> None:
    event_id = world.meeting("alice", ["atlas", "boreal"], at(9), at(10))
    world.settle()
    [loan] = active_loans(world)
    world.graph.users.cancel_event("alice@contoso.com", event_id)
    world.settle()
    assert world.booking.store.loan(loan.id).status == "cancelled"
    assert_quiet(world)


def test_a_room_that_is_busy_declines_and_is_not_in_the_loan(world: World) -> None:
    world.meeting("bob", ["atlas"], at(9), at(10))
    world.settle()
    world.meeting("alice", ["atlas", "dune"], at(9, 30), at(10, 30))
    world.settle()
    loans = sorted(active_loans(world), key=lambda loan: loan.start)
    assert [rooms_of(loan) for loan in loans] == [["atlas"], ["dune"]]
    assert loans[1].requester.email == "alice@contoso.com"
    assert_quiet(world)


def test_a_room_taken_off_the_meeting_leaves_the_loan(world: World) -> None:
    event_id = world.meeting("alice", ["atlas", "boreal"], at(9), at(10))
    world.settle()
    world.graph.users.update_event("alice@contoso.com", event_id, rooms=["boreal@contoso.com"])
    world.settle()
    [loan] = active_loans(world)
    assert rooms_of(loan) == ["boreal"]
    assert_quiet(world)


def test_duplicate_and_reordered_notifications_give_one_loan(world: World) -> None:
    event_id = world.meeting("alice", ["atlas", "boreal"], at(9), at(10))
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(13), end=at(14))
    jobs = list(reversed(world.collect())) * 2
    world.jobs[:] = jobs
    world.settle()
    [loan] = active_loans(world)
    assert (loan.start, rooms_of(loan)) == (at(13), ["atlas", "boreal"])
    assert world.booking.store.stats.loans_created <= 1
    assert_quiet(world)
