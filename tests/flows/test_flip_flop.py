"""Issue 7: a room taken off a moved meeting keeps a *cancelled* copy with the old slot (Exchange does that); the
bridge must drop that room from the loan without taking the stale slot back (no flip-flop between the two slots).

Both fail on e9c36b8 (the loan ends back on 14:00–15:00); they pass with the fix in app/sync/outlook_to_booking.py."""

from __future__ import annotations

from tests.flows.conftest import active_loans, assert_quiet, at, rooms_of
from tests.twins import World


def assert_settled_on(world: World, loan_id: str, start, end, rooms: list[str]) -> None:  # type: ignore[no-untyped-def]
    loan = world.booking.store.loan(loan_id)
    assert (loan.start, loan.end, rooms_of(loan)) == (start, end, rooms)
    assert [loan.id for loan in active_loans(world)] == [loan_id]


def test_a_loan_moved_to_other_rooms_stays_on_its_new_slot(world: World) -> None:
    loan_id = world.loan("alice", ["atlas"], at(14), at(15))
    world.settle()
    world.booking.user_update_loan(loan_id, start=at(16), end=at(17, 30),
                                   places=["boreal@contoso.com", "dune@contoso.com"])
    world.settle()  # the bridge rewrites the event: Atlas keeps a cancelled copy at 14:00–15:00
    [event] = world.graph.events("alice@contoso.com")
    atlas = world.room_copy("atlas", event.ical_uid)
    assert atlas is not None and atlas.is_cancelled and (atlas.start, atlas.end) == (at(14), at(15))
    assert_settled_on(world, loan_id, at(16), at(17, 30), ["boreal", "dune"])
    world.reconcile()
    world.settle()
    assert_settled_on(world, loan_id, at(16), at(17, 30), ["boreal", "dune"])
    assert_quiet(world)


def test_an_organiser_moving_a_meeting_and_removing_a_room_keeps_the_new_slot(world: World) -> None:
    event_id = world.meeting("alice", ["atlas", "boreal"], at(14), at(15))
    world.settle()
    [loan] = active_loans(world)
    world.graph.users.update_event("alice@contoso.com", event_id, start=at(16), end=at(17, 30),
                                   rooms=["boreal@contoso.com"])
    # The live copy's notification first, the cancelled copy's (Atlas, still 14:00–15:00) last.
    atlas_id = world.room_ids["atlas@contoso.com"]
    world.collect().sort(key=lambda job: job.kind == "note" and job.key[0] == atlas_id)
    world.settle()
    assert_settled_on(world, loan.id, at(16), at(17, 30), ["boreal"])
    world.reconcile()
    world.settle()
    assert_settled_on(world, loan.id, at(16), at(17, 30), ["boreal"])
    assert_quiet(world)
