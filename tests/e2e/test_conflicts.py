"""Conflicts (SPEC §7): a meeting the bridge made from a loan is changed in Outlook *and* in the booking system before
the bridge syncs either change. The most recent change wins (event `lastModifiedDateTime` vs loan `updated_at`); on
a tie the booking system wins; the journal records the conflict.

What the bridge hears first is chosen, not timed: Outlook's notifications and the booking system's hooks are held
while both sides change, then one side is let go and its effect awaited before the other is (the test also passes
with the machine's cores busy)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.e2e.harness import WAIT, wait_for
from tests.e2e.two_way import ALICE, JUPITER, TwoWay, slot, stack_fixture  # noqa: F401 (the `stack` fixture)

pytestmark = pytest.mark.slow


def start_of(event: dict) -> str:
    return event["start"]["dateTime"][:19]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def linked_loan(tw: TwoWay):
    sb = tw.sandbox
    loan = sb.booking.create_loan(ALICE, *slot(hour=9), places=[JUPITER])
    [event] = wait_for(lambda: tw.organiser_events("alice@contoso.com"), WAIT, "the event")
    # The create's job ends after Graph has the event: wait for its journal entry before calling the bridge quiet
    # (on a loaded machine the job can stall for seconds between the two).
    wait_for(lambda: [e for e in tw.journal(status="ok") if e["loan_id"] == loan.id and e["action"] == "create"],
             WAIT, "the create journaled")
    tw.quiesce(stable_s=3.0)
    return loan, event


def both_change(tw: TwoWay, event: dict, loan_id: str, first: str, tie: bool = False) -> tuple[datetime, datetime]:
    """Outlook moves the meeting to 10:00, the booking system moves the loan to 14:00, `first` one first; then the
    booking system's hook is let go while Outlook's notifications stay held (the caller lets them go)."""
    sb = tw.sandbox
    outlook_start, outlook_end = slot(hour=10)
    booking_start, booking_end = slot(hour=14)
    sb.booking.hooks.hold()
    sb.graph.delivery.held = True
    changes = [lambda: sb.graph.update_event("alice@contoso.com", event["id"], start=outlook_start, end=outlook_end),
               lambda: sb.booking.update_loan(loan_id, start=booking_start, end=booking_end)]
    for change in changes if first == "outlook" else reversed(changes):
        change()
        time.sleep(0.05)  # distinct timestamps
    if tie:
        tenant = sb.graph.backend.tenant
        with tenant.lock:
            organiser = tenant.calendar(tenant.directory.require("alice@contoso.com")).events[event["id"]]
            organiser.last_modified = sb.booking.loan(loan_id).updated_at
    sb.booking.hooks.release()
    return outlook_start, booking_start


def conflicts(tw: TwoWay) -> list[dict]:
    return tw.journal(status="conflict")


def one_conflict(tw: TwoWay) -> dict:
    """The conflict, journaled once per side that saw it: the side whose change the bridge heard first, and possibly
    the other one too when a hint of its own change was still in flight (on a loaded machine) — both then give the
    same verdict on the same loan. Returns the first side's entry."""
    found = conflicts(tw)
    where = f"{len(found)} conflict entries: {found}\njournal: {tw.journal()}"
    assert 1 <= len(found) <= 2 and len({c["direction"] for c in found}) == len(found), where
    assert len({c["loan_id"] for c in found}) == 1, where
    assert len({c["message"].rsplit(" ", 2)[-2:][0] for c in found}) == 1, where  # "booking|outlook wins"
    return min(found, key=lambda c: c["at"])


def test_booking_newer_wins(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    _, booking_start = both_change(tw, event, loan.id, first="outlook")
    wait_for(lambda: start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(booking_start), WAIT,
             "the event rewritten from the loan")
    wait_for(lambda: conflicts(tw), WAIT, "the conflict journaled")
    sb.graph.delivery.held = False  # Outlook's notification of its (lost) change arrives late
    tw.quiesce()
    assert sb.booking.loan(loan.id).start == booking_start  # the late Outlook notification changed nothing
    assert sb.booking.stats.loan_writes == 0
    conflict = one_conflict(tw)
    assert conflict["loan_id"] == loan.id and "booking wins" in conflict["message"]


def test_outlook_newer_wins(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    writes = sb.graph.stats.http_event_writes
    outlook_start, _ = both_change(tw, event, loan.id, first="booking")
    wait_for(lambda: conflicts(tw), WAIT, "the conflict journaled")
    sb.graph.delivery.held = False  # Outlook's change, the newer one, reaches the loan through its notification
    wait_for(lambda: sb.booking.loan(loan.id).start == outlook_start, WAIT, "the loan moved to Outlook's slot")
    tw.quiesce()
    assert start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(outlook_start)
    assert sb.graph.stats.http_event_writes == writes  # Outlook was not rewritten
    conflict = one_conflict(tw)
    assert conflict["loan_id"] == loan.id and "outlook wins" in conflict["message"]


def test_tie_goes_to_the_booking_system(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    _, booking_start = both_change(tw, event, loan.id, first="outlook", tie=True)
    wait_for(lambda: start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(booking_start), WAIT,
             "the event rewritten from the loan")
    wait_for(lambda: conflicts(tw), WAIT, "the conflict journaled")
    sb.graph.delivery.held = False
    tw.quiesce()
    assert sb.booking.loan(loan.id).start == booking_start
    one_conflict(tw)
    # The hook was let go first: its side saw the tie (an Outlook side that saw it too read a room copy's time).
    conflict = next(c for c in conflicts(tw) if c["direction"] == "booking_to_outlook")
    updated_at = sb.booking.loan(loan.id).updated_at.isoformat()
    assert f"Outlook at {updated_at}, booking system at {updated_at}" in conflict["message"]
    assert "booking wins" in conflict["message"]


def both_change_outlook_seen_first(tw: TwoWay, event: dict, loan_id: str, first: str) -> tuple[datetime, datetime]:
    """Both sides change, but the bridge hears Outlook first: its PATCH carries If-Match on the version it last
    synced, the booking system answers 409, and the bridge resolves the conflict on the Outlook side."""
    sb = tw.sandbox
    sb.booking.hooks.hold()
    sb.graph.delivery.held = True  # both changes made before the bridge hears of either
    outlook_start, outlook_end = slot(hour=10)
    booking_start, booking_end = slot(hour=14)
    changes = [lambda: sb.graph.update_event("alice@contoso.com", event["id"], start=outlook_start, end=outlook_end),
               lambda: sb.booking.update_loan(loan_id, start=booking_start, end=booking_end)]
    for change in changes if first == "outlook" else reversed(changes):
        change()
        time.sleep(0.05)
    sb.graph.delivery.held = False
    wait_for(lambda: conflicts(tw), WAIT, "the conflict seen from the Outlook side")
    sb.booking.hooks.release()
    return outlook_start, booking_start


def test_outlook_first_booking_newer_wins(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    _, booking_start = both_change_outlook_seen_first(tw, event, loan.id, first="outlook")
    wait_for(lambda: start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(booking_start), 20,
             "the event rewritten from the loan")
    tw.quiesce()
    assert sb.booking.loan(loan.id).start == booking_start
    assert sb.booking.stats.loans_patched == 0  # the 409 was not a write
    assert all("booking wins" in c["message"] for c in conflicts(tw))


def test_outlook_first_outlook_newer_wins(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    writes = sb.graph.stats.http_event_writes
    outlook_start, _ = both_change_outlook_seen_first(tw, event, loan.id, first="booking")
    wait_for(lambda: sb.booking.loan(loan.id).start == outlook_start, WAIT, "the loan moved to Outlook's slot")
    tw.quiesce()
    assert start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(outlook_start)
    assert sb.graph.stats.http_event_writes == writes  # Outlook was not rewritten
    assert all("outlook wins" in c["message"] for c in conflicts(tw))
