"""The Outlook side meets a loan the booking system has already closed (found by the convergence test).

The booking system refuses a loan born there; before its hook is handled, the organiser cancels the meeting or takes a
room off it in Outlook. The Outlook side then cancels or patches a closed loan: the booking system answers 409
`loan_closed`. That is not a failure to retry: the loan is closed, and the booking side's own job (its hook, or the
loans' reconciliation) brings Outlook in line (SPEC §7: cancel / refuse). The Outlook side must leave the link to it —
recording the loan's version here would make the booking side take the refusal for its own write.
"""

from __future__ import annotations

from tests.flows.conftest import active_loans, assert_quiet, at
from tests.twins import World


def _refused_then_changed_in_outlook(world: World, change) -> str:  # type: ignore[no-untyped-def]
    loan_id = world.loan("alice", ["atlas", "boreal"], at(10), at(11))
    world.settle()
    [event] = world.graph.events("alice@contoso.com")
    world.booking.user_close_loan(loan_id, "refused")  # its hook waits behind the notifications below
    change(event.id)
    world.settle()  # room notifications first (World.collect), then the hook
    return loan_id


def test_cancelling_the_meeting_of_a_refused_loan(world: World) -> None:
    loan_id = _refused_then_changed_in_outlook(
        world, lambda event_id: world.graph.users.cancel_event("alice@contoso.com", event_id))
    assert world.booking.store.loan(loan_id).status == "refused"
    assert active_loans(world) == []
    [link] = world.links()
    assert link.state == "cancelled"
    assert_quiet(world)


def test_taking_a_room_off_the_meeting_of_a_refused_loan(world: World) -> None:
    loan_id = _refused_then_changed_in_outlook(
        world, lambda event_id: world.graph.users.update_event("alice@contoso.com", event_id,
                                                               rooms=["boreal@contoso.com"]))
    assert world.booking.store.loan(loan_id).status == "refused"
    assert world.graph.events("alice@contoso.com") == []  # the refusal deleted the event (SPEC §7)
    [link] = world.links()
    assert link.state == "cancelled"
    assert_quiet(world)
