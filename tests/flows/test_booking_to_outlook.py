"""Loans booked in the booking system become Outlook meetings (SPEC §7), through the real flow against the twins."""

from __future__ import annotations

from tests.flows.conftest import active_loans, assert_quiet, at, live_copy
from tests.twins import World


def test_a_loan_gives_an_event_in_the_requesters_calendar(world: World) -> None:
    loan_id = world.loan("bob", ["boreal", "cirrus"], at(10), at(11))
    world.settle()
    [event] = world.graph.events("bob@contoso.com")
    assert event.is_organizer and (event.start, event.end) == (at(10), at(11))
    assert event.subject.startswith("PR-") and "Bob Durand" in event.subject
    assert {a.address for a in event.attendees} == {"boreal@contoso.com", "cirrus@contoso.com"}
    assert all(live_copy(world, room, event.ical_uid) for room in ("boreal", "cirrus"))
    [link] = world.links()
    assert link.loan_id == loan_id and link.ical_uid == event.ical_uid
    assert_quiet(world)


def test_a_cancelled_loan_deletes_the_event(world: World) -> None:
    loan_id = world.loan("alice", ["atlas"], at(10), at(11))
    world.settle()
    [event] = world.graph.events("alice@contoso.com")
    world.booking.user_close_loan(loan_id, "cancelled")
    world.settle()
    assert world.graph.events("alice@contoso.com") == []
    copy = world.room_copy("atlas", event.ical_uid)
    assert copy is None or copy.is_cancelled
    assert_quiet(world)


def test_a_refused_loan_deletes_the_event(world: World) -> None:
    loan_id = world.loan("alice", ["atlas"], at(10), at(11))
    world.settle()
    world.booking.user_close_loan(loan_id, "refused")
    world.settle()
    assert world.graph.events("alice@contoso.com") == []
    assert_quiet(world)


def test_a_moved_loan_moves_the_event(world: World) -> None:
    loan_id = world.loan("alice", ["atlas"], at(10), at(11))
    world.settle()
    world.booking.user_update_loan(loan_id, start=at(12), end=at(13))
    world.settle()
    [event] = world.graph.events("alice@contoso.com")
    assert (event.start, event.end) == (at(12), at(13))
    assert (world.booking.store.loan(loan_id).start, world.booking.store.loan(loan_id).end) == (at(12), at(13))
    assert_quiet(world)


def test_echo_the_bridges_own_writes_coming_back_change_nothing(world: World) -> None:
    """Every notification and hook the bridge's writes caused, delivered again (late duplicates), writes nothing."""
    world.loan("alice", ["atlas", "boreal"], at(10), at(11))
    world.meeting("bob", ["cirrus"], at(14), at(15))
    delivered = []
    while world.collect():
        delivered.append(world.deliver(0))
    writes = world.writes
    world.jobs[:] = [job for job in delivered if job is not None]
    world.settle()
    assert world.writes == writes
    assert len(active_loans(world)) == 2
    assert_quiet(world)


def test_transient_failures_and_a_killed_job_are_retried_to_the_same_end(world: World) -> None:
    from app.adapters.booking.client import BookingUnavailable
    from app.adapters.graph.errors import GraphThrottled

    world.graph.faults.fail_next(lambda: GraphThrottled("429", 1.0, 429))
    world.booking.faults.fail_next(lambda: BookingUnavailable("503", status=503))
    world.graph.faults.kill_after_next_write()
    world.loan("alice", ["atlas"], at(10), at(11))
    world.settle()
    assert len(world.graph.events("alice@contoso.com")) == 1  # transactionId: the re-run did not create twice
    assert world.graph.faults.fired == 2 and world.booking.faults.fired == 1
    assert_quiet(world)
