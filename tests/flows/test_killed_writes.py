"""Writes killed after the other side accepted them, and before the link recorded them (issue 7; found by the
convergence test with `CONVERGENCE_KILL_ANY=1`).

The bridge records each write before sending it (`app.core.link.Pending`). Without that record, the write coming back
looked like the other side's change: a loan PATCH like a change made in the booking system, the cancelled copy of a
room an event PATCH took off like the organiser removing it (the loan went back to the old slot), and the room copies
of a created event like a new meeting (a second loan). Each test fails without the record.

Also here: a room swap (one edit, one room off and another on) whose leaving copy is seen first, which used to cancel
the loan for good.
"""

from __future__ import annotations

from tests.flows.conftest import active_loans, assert_quiet, at, rooms_of
from tests.twins import World


def hook_last(world: World) -> None:
    """Put the booking side's pending jobs (a killed job's retry among them) behind the Outlook notifications."""
    world.collect().sort(key=lambda job: job.kind == "hook")


def statuses(world: World) -> list[str]:
    return [e.status for e in world.journal()]


def test_a_killed_loan_patch_is_recognised_as_the_bridges_own_write(world: World) -> None:
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    [loan] = active_loans(world)
    world.booking.faults.kill_after_next_write()
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(11), end=at(12))
    world.deliver(0)  # the PATCH lands, the job dies before the link records it
    assert world.booking.store.loan(loan.id).start == at(11)
    hook_last(world)  # the killed job's retry runs before the PATCH's own hook
    world.settle()
    loan = world.booking.store.loan(loan.id)
    assert (loan.start, loan.end, rooms_of(loan)) == (at(11), at(12), ["atlas"])
    # Neither a conflict ("booking wins") nor a booking-side change of a meeting born in Outlook is seen.
    assert "conflict" not in statuses(world) and "skipped" not in statuses(world), world.journal()
    assert_quiet(world)


def test_the_hook_of_a_killed_loan_patch_is_recognised_before_its_retry(world: World) -> None:
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    [loan] = active_loans(world)
    world.booking.faults.kill_after_next_write()
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(11), end=at(12))
    world.deliver(0)
    world.collect().sort(key=lambda job: job.kind != "hook")  # the hook first, then the retry
    world.settle()
    loan = world.booking.store.loan(loan.id)
    assert (loan.start, loan.end, rooms_of(loan)) == (at(11), at(12), ["atlas"])
    assert "conflict" not in statuses(world) and "skipped" not in statuses(world), world.journal()
    assert_quiet(world)


def test_a_killed_event_patch_that_took_a_room_off_keeps_the_loan_as_the_booking_system_has_it(world: World) -> None:
    loan_id = world.loan("alice", ["atlas", "boreal"], at(14), at(15))
    world.settle()
    world.graph.faults.kill_after_next_write()
    world.booking.user_update_loan(loan_id, start=at(16), end=at(17), places=["atlas@contoso.com"])
    world.deliver(0)  # the event is moved and Boreal taken off; the job dies before the link records it
    boreal = world.room_ids["boreal@contoso.com"]
    # Boreal's cancelled copy (still 14:00–15:00) first, then Atlas's moved copy, then the killed job's retry.
    world.collect().sort(key=lambda job: (job.kind == "hook", not (job.kind == "note" and job.key[0] == boreal)))
    before = world.booking.writes
    world.settle()
    assert world.booking.writes == before, "the bridge wrote the booking system's own change back to it"
    assert "conflict" not in statuses(world), world.journal()
    loan = world.booking.store.loan(loan_id)
    assert (loan.status, loan.start, loan.end, rooms_of(loan)) == ("new", at(16), at(17), ["atlas"])
    assert [ln.id for ln in active_loans(world)] == [loan_id]
    assert_quiet(world)


def test_the_room_copies_of_a_killed_event_create_make_no_second_loan(world: World) -> None:
    world.graph.faults.kill_after_next_write()
    loan_id = world.loan("alice", ["atlas", "boreal"], at(9), at(10))
    world.deliver(0)  # Graph created the event; the job dies before the link knows its iCalUId
    hook_last(world)  # the rooms' copies are notified before the retry
    world.settle()
    assert [ln.id for ln in active_loans(world)] == [loan_id]
    assert len(world.booking.store.loans) == 1
    # Not taken for a new meeting: no loan attempted (the availability check refused it, as "invalid", before).
    assert statuses(world) == ["ok"], world.journal()
    [event] = world.graph.events("alice@contoso.com")
    [link] = world.links()
    assert (link.loan_id, link.ical_uid, link.state) == (loan_id, event.ical_uid, "active")
    assert_quiet(world)


def test_a_killed_event_create_of_a_loan_cancelled_since_leaves_no_event(world: World) -> None:
    world.graph.faults.kill_after_next_write()
    loan_id = world.loan("alice", ["atlas"], at(9), at(10))
    world.deliver(0)  # the event exists, no link names it
    world.booking.user_close_loan(loan_id, "cancelled")
    hook_last(world)
    world.settle()
    live = [e for e in world.graph.events("alice@contoso.com") if not e.is_cancelled]
    assert live == [] and active_loans(world) == [] and len(world.booking.store.loans) == 1
    assert world.links() == []
    assert_quiet(world)


def test_a_room_swap_whose_leaving_copy_is_seen_first_moves_the_loan(world: World) -> None:
    event_id = world.meeting("alice", ["boreal"], at(17), at(18, 30))
    world.settle()
    [loan] = active_loans(world)
    world.graph.users.update_event("alice@contoso.com", event_id, rooms=["atlas@contoso.com"])
    boreal = world.room_ids["boreal@contoso.com"]
    world.collect().sort(key=lambda job: not (job.kind == "note" and job.key[0] == boreal))
    world.settle()
    loan = world.booking.store.loan(loan.id)
    assert (loan.status, loan.start, loan.end, rooms_of(loan)) == ("new", at(17), at(18, 30), ["atlas"])
    assert [ln.id for ln in active_loans(world)] == [loan.id]
    assert_quiet(world)


def test_a_killed_event_create_replayed_after_the_loan_moved_shows_the_move(world: World) -> None:
    world.graph.faults.kill_after_next_write()
    loan_id = world.loan("alice", ["atlas"], at(9), at(10))
    world.deliver(0)  # Graph created the event at 09:00; the job dies before the link records it
    world.booking.user_update_loan(loan_id, start=at(11), end=at(12))
    hook_last(world)
    world.settle()  # the retry replays the create (Graph answers with the 09:00 event) and must move it
    [event] = [e for e in world.graph.events("alice@contoso.com") if not e.is_cancelled]
    assert (event.start, event.end) == (at(11), at(12))
    atlas = world.room_copy("atlas", event.ical_uid)
    assert atlas is not None and (atlas.start, atlas.end) == (at(11), at(12))
    assert [ln.id for ln in active_loans(world)] == [loan_id]
    assert_quiet(world)


def test_a_killed_event_create_whose_retry_is_lost_is_finished_by_the_room_copys_job(world: World) -> None:
    """Found by the convergence test exploring 1,500 examples: the booking job died after Graph created the event and
    its retry was lost (an embedded process killed with its in-memory queue). The rooms' copies waited for a write
    nobody would finish (`WriteInFlight`, until the record went stale 10 minutes later, when they looked like a new
    meeting refused as busy). The waiting job now runs the loan's job again, which replays the create under its
    transactionId and links the event."""
    world.graph.faults.kill_after_next_write()
    loan_id = world.loan("alice", ["atlas", "boreal"], at(9), at(10))
    world.deliver(0)  # Graph created the event; the job dies before the link knows its iCalUId
    world.collect()
    world.jobs[:] = [job for job in world.jobs if job.kind == "note"]  # the retry is lost; the copies' notes remain
    assert world.jobs
    world.settle()
    assert [ln.id for ln in active_loans(world)] == [loan_id]
    assert len(world.booking.store.loans) == 1
    [event] = world.graph.events("alice@contoso.com")
    assert not event.is_cancelled
    [link] = world.links()
    assert (link.loan_id, link.ical_uid, link.state) == (loan_id, event.ical_uid, "active")
    assert statuses(world) == ["ok"], world.journal()
    assert_quiet(world)
