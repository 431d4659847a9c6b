"""Conflicts (SPEC §7): a meeting the bridge made from a loan is changed in Outlook *and* in the booking system before
the bridge syncs either change. The most recent change wins (event `lastModifiedDateTime` vs loan `updated_at`); on
a tie the booking system wins; the journal records the conflict.

Outlook's notifications are delayed so that the booking system's hook is processed first and sees both changes."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.e2e.harness import WAIT, wait_for
from tests.e2e.two_way import ALICE, JUPITER, TwoWay, slot, stack_fixture  # noqa: F401 (the `stack` fixture)

pytestmark = pytest.mark.slow
NOTIFICATION_DELAY_S = 4.0


def start_of(event: dict) -> str:
    return event["start"]["dateTime"][:19]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def linked_loan(tw: TwoWay):
    sb = tw.sandbox
    loan = sb.booking.create_loan(ALICE, *slot(hour=9), places=[JUPITER])
    [event] = wait_for(lambda: tw.organiser_events("alice@contoso.com"), WAIT, "the event")
    tw.quiesce()
    return loan, event


def both_change(tw: TwoWay, event: dict, loan_id: str, first: str, tie: bool = False) -> tuple[datetime, datetime]:
    """Outlook moves the meeting to 10:00, the booking system moves the loan to 14:00, `first` one first."""
    sb = tw.sandbox
    outlook_start, outlook_end = slot(hour=10)
    booking_start, booking_end = slot(hour=14)
    sb.booking.hooks.hold()
    sb.graph.delivery.delay = NOTIFICATION_DELAY_S
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


def test_booking_newer_wins(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    _, booking_start = both_change(tw, event, loan.id, first="outlook")
    wait_for(lambda: start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(booking_start), 20,
             "the event rewritten from the loan")
    sb.graph.delivery.delay = 0
    tw.quiesce()
    assert sb.booking.loan(loan.id).start == booking_start  # the late Outlook notification changed nothing
    assert sb.booking.stats.loan_writes == 0
    [conflict] = conflicts(tw)
    assert conflict["loan_id"] == loan.id and "booking wins" in conflict["message"]


def test_outlook_newer_wins(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    writes = sb.graph.stats.http_event_writes
    outlook_start, _ = both_change(tw, event, loan.id, first="booking")
    wait_for(lambda: conflicts(tw), WAIT, "the conflict journaled")
    wait_for(lambda: sb.booking.loan(loan.id).start == outlook_start, WAIT, "the loan moved to Outlook's slot")
    sb.graph.delivery.delay = 0
    tw.quiesce()
    assert start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(outlook_start)
    assert sb.graph.stats.http_event_writes == writes  # Outlook was not rewritten
    [conflict] = conflicts(tw)
    assert conflict["loan_id"] == loan.id and "outlook wins" in conflict["message"]


def test_tie_goes_to_the_booking_system(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan, event = linked_loan(tw)
    _, booking_start = both_change(tw, event, loan.id, first="outlook", tie=True)
    wait_for(lambda: start_of(tw.organiser_events("alice@contoso.com")[0]) == iso(booking_start), 20,
             "the event rewritten from the loan")
    sb.graph.delivery.delay = 0
    tw.quiesce()
    assert sb.booking.loan(loan.id).start == booking_start
    [conflict] = conflicts(tw)
    updated_at = sb.booking.loan(loan.id).updated_at.isoformat()
    assert f"Outlook at {updated_at}, booking system at {updated_at}" in conflict["message"]
    assert "booking wins" in conflict["message"]


def both_change_outlook_seen_first(tw: TwoWay, event: dict, loan_id: str, first: str) -> tuple[datetime, datetime]:
    """Both sides change, but the bridge hears Outlook first: its PATCH carries If-Match on the version it last
    synced, the booking system answers 409, and the bridge resolves the conflict on the Outlook side."""
    sb = tw.sandbox
    sb.booking.hooks.hold()
    outlook_start, outlook_end = slot(hour=10)
    booking_start, booking_end = slot(hour=14)
    changes = [lambda: sb.graph.update_event("alice@contoso.com", event["id"], start=outlook_start, end=outlook_end),
               lambda: sb.booking.update_loan(loan_id, start=booking_start, end=booking_end)]
    for change in changes if first == "outlook" else reversed(changes):
        change()
        time.sleep(0.05)
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
