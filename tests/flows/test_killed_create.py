"""A loan create killed after the booking system accepted it (SPEC §8 Idempotency-Key; found by the convergence test).

The bridge records the create's body before the POST (`LinkState` status "creating"). When the job dies after the
booking system created the loan, the loan exists but no link names it: the next job for that meeting must find it
again (replay the recorded body under the same key) before anything else — otherwise the availability check sees
the bridge's own loan holding the room and refuses the meeting, and the loan is orphaned for ever.
"""

from __future__ import annotations

from tests.flows.conftest import active_loans, assert_quiet, at, rooms_of
from tests.twins import World


def test_the_next_copy_finds_the_loan_a_killed_create_left(world: World) -> None:
    world.booking.faults.kill_after_next_write()
    world.meeting("alice", ["atlas", "boreal"], at(8), at(8, 30))
    world.collect()
    world.jobs.clear()  # the notifications are lost: the reconciliation reads atlas, then boreal
    world.reconcile()  # atlas's create is killed after the POST and retried at once, before boreal is read
    world.settle()
    [loan] = active_loans(world)
    assert rooms_of(loan) == ["atlas", "boreal"] and (loan.start, loan.end) == (at(8), at(8, 30))
    [link] = world.links()
    assert (link.loan_id, link.state) == (loan.id, "active")
    assert len(world.booking.store.loans) == 1
    assert_quiet(world)


def test_a_killed_create_then_a_cancelled_meeting_cancels_the_loan(world: World) -> None:
    world.booking.faults.kill_after_next_write()
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.deliver(0)  # killed after the POST: the loan exists, the link does not name it
    world.jobs.clear()  # and the retry is lost
    [orphan] = active_loans(world)
    world.graph.users.cancel_event("alice@contoso.com", event_id)
    world.settle()
    assert world.booking.store.loan(orphan.id).status == "cancelled"
    assert active_loans(world) == []
    assert_quiet(world)


def test_a_killed_create_then_a_moved_meeting_moves_the_loan(world: World) -> None:
    world.booking.faults.kill_after_next_write()
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.deliver(0)
    world.jobs.clear()
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(14), end=at(15))
    world.settle()
    [loan] = active_loans(world)
    assert (loan.start, loan.end, rooms_of(loan)) == (at(14), at(15), ["atlas"])
    assert len(world.booking.store.loans) == 1
    assert_quiet(world)
