"""Booking → Outlook end to end (SPEC §7, §11 cases 8–10): a loan made in the booking system becomes a meeting in its
requester's calendar, follows the loan's changes, and goes when the loan is cancelled or refused — and the
notifications the bridge's own writes cause change nothing in the booking system."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.harness import WAIT, wait_for
from tests.e2e.two_way import ALICE, JUPITER, SATURNE, TwoWay, slot, stack_fixture  # noqa: F401 (the `stack` fixture)

pytestmark = pytest.mark.slow


def only_event(tw: TwoWay, user: str, timeout: float = 20) -> dict:
    def one() -> dict | None:
        events = tw.organiser_events(user)
        return events[0] if len(events) == 1 else None

    return wait_for(one, timeout, f"one event in {user}'s calendar")


def test_a_loan_becomes_a_meeting_in_the_requesters_calendar_and_causes_no_echo(stack: TwoWay) -> None:
    """Case 8."""
    tw, sb = stack, stack.sandbox
    start, end = slot(hour=9)
    loan = sb.booking.create_loan(ALICE, start, end, places=[JUPITER, SATURNE], assets=["Vidéoprojecteur <HD>"])

    event = only_event(tw, "alice@contoso.com")
    assert event["subject"] == f"{loan.number} – Alice Martin"
    assert event["transactionId"]
    assert event["showAs"] == "busy"
    assert event["start"]["dateTime"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert event["end"]["dateTime"].startswith(end.strftime("%Y-%m-%dT%H:%M:%S"))
    rooms = {a["emailAddress"]["address"]: a["type"] for a in event["attendees"]}
    assert rooms == {JUPITER: "resource", SATURNE: "resource"}
    body = event["body"]["content"]
    assert "Salle Jupiter" in body and "Salle Saturne" in body
    assert "Vidéoprojecteur &lt;HD&gt;" in body and "<HD>" not in body  # HTML-escaped
    assert f'href="{loan.url}"' in body
    # Both rooms accepted: each holds a copy of the meeting.
    for room in (JUPITER, SATURNE):
        assert [e["iCalUId"] for e in sb.graph.events(room)] == [event["iCalUId"]]

    tw.quiesce()
    # The room copies' notifications were read and recognised as the bridge's own write.
    assert sb.graph.stats.notifications_delivered >= 2
    assert sb.booking.stats.loan_writes == 0
    assert len(sb.booking.loans) == 1
    assert sb.graph.stats.http_event_writes == 1
    [link] = tw.links()
    assert (link["loan_id"], link["ical_uid"], link["origin"]) == (loan.id, event["iCalUId"], "booking")
    assert any(e["action"] == "create" and e["loan_id"] == loan.id for e in tw.journal(status="ok"))
    assert not tw.journal(status="invalid") and not tw.journal(status="error")


def test_requester_outside_the_tenant_gets_the_default_user_as_organiser(stack: TwoWay) -> None:
    """Case 9."""
    tw, sb = stack, stack.sandbox
    loan = sb.booking.create_loan({"email": "zoe@partner.example", "name": "Zoé"}, *slot(hour=11), places=[JUPITER])
    event = only_event(tw, "accueil@contoso.com")
    assert event["subject"] == f"{loan.number} – Zoé"
    assert event["organizer"]["emailAddress"]["address"] == "accueil@contoso.com"
    tw.quiesce()
    assert sb.booking.stats.loan_writes == 0
    assert sb.booking.loan(loan.id).requester.email == "zoe@partner.example"


def test_changes_are_rewritten_and_a_burst_of_hooks_is_one_graph_write(stack: TwoWay) -> None:
    tw, sb = stack, stack.sandbox
    loan = sb.booking.create_loan(ALICE, *slot(hour=13), places=[JUPITER], status="pending")
    event = only_event(tw, "alice@contoso.com")
    assert event["showAs"] == "tentative"  # pending, show_pending_as_tentative defaults to true
    tw.quiesce()
    writes = sb.graph.stats.http_event_writes

    # A burst: three changes in a row, each hook delivered twice with distinct delivery ids.
    sb.booking.hooks.duplicate, sb.booking.hooks.duplicate_new_id = 2, True
    start, end = slot(hour=15, minutes=90)
    sb.booking.update_loan(loan.id, start=start, end=end)
    sb.booking.update_loan(loan.id, places=[JUPITER, SATURNE])
    sb.booking.update_loan(loan.id, status="approved")
    tw.quiesce()
    assert sb.graph.stats.http_event_writes == writes + 1
    [event] = tw.organiser_events("alice@contoso.com")
    assert event["showAs"] == "busy"
    assert event["start"]["dateTime"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert {a["emailAddress"]["address"] for a in event["attendees"]} == {JUPITER, SATURNE}
    assert [e["iCalUId"] for e in sb.graph.events(SATURNE)] == [event["iCalUId"]]
    assert sb.booking.stats.loan_writes == 0

    # Duplicates and out-of-order deliveries of old hooks change nothing: the loan is re-read.
    sb.booking.hooks.duplicate = 1
    sb.booking.hooks.hold()
    sb.booking.update_loan(loan.id, end=end + timedelta(minutes=30))
    sb.booking.update_loan(loan.id, end=end + timedelta(minutes=15))
    sb.booking.hooks.release("reverse")
    tw.quiesce()
    [event] = tw.organiser_events("alice@contoso.com")
    assert event["end"]["dateTime"].startswith((end + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert sb.booking.stats.loan_writes == 0


@pytest.mark.parametrize("close", ["cancel_loan", "refuse_loan"])
def test_cancelled_or_refused_loan_deletes_the_event(stack: TwoWay, close: str) -> None:
    """Case 10."""
    tw, sb = stack, stack.sandbox
    loan = sb.booking.create_loan(ALICE, *slot(hour=8), places=[JUPITER])
    only_event(tw, "alice@contoso.com")
    getattr(sb.booking, close)(loan.id)
    wait_for(lambda: tw.organiser_events("alice@contoso.com") == [], WAIT, "the event deleted")
    # The rooms received the cancellation; the booking system saw no write from the bridge.
    assert all(e["isCancelled"] for e in sb.graph.events(JUPITER))
    tw.quiesce()
    assert sb.booking.stats.loan_writes == 0
    [link] = tw.links()
    assert link["state"] == "cancelled"


def test_event_already_deleted_counts_as_done(stack: TwoWay) -> None:
    """Case 10: the DELETE answers 404 → done, no error, no retry loop."""
    tw, sb = stack, stack.sandbox
    loan = sb.booking.create_loan(ALICE, *slot(hour=10), places=[SATURNE])
    event = only_event(tw, "alice@contoso.com")
    tw.quiesce()
    # The event vanishes without Graph telling anyone (as if deleted long ago, its notifications lost).
    tenant = sb.graph.backend.tenant
    with tenant.lock:
        tenant.calendar(tenant.directory.require("alice@contoso.com")).events.pop(event["id"])
    sb.booking.refuse_loan(loan.id)
    wait_for(lambda: [link for link in tw.links() if link["state"] == "cancelled"], WAIT, "the link closed")
    tw.quiesce()
    assert not tw.journal(status="error")
    assert any(e["action"] == "cancel" and e["loan_id"] == loan.id for e in tw.journal(status="ok"))


def test_direction_outlook_to_booking_ignores_the_booking_side(request) -> None:
    from tests.e2e.two_way import two_way

    with two_way(request, "embedded", direction="outlook_to_booking") as tw:
        tw.sandbox.booking.create_loan(ALICE, *slot(hour=9), places=[JUPITER])
        tw.quiesce()
        assert tw.organiser_events("alice@contoso.com") == []
        assert tw.sandbox.graph.stats.http_event_writes == 0


@pytest.mark.both_stacks
def test_lost_hooks_are_recovered_by_booking_side_reconciliation(stack: TwoWay) -> None:
    """SPEC §1.3: the booking system is re-readable (`GET /v1/loans?changed_since=`); a lost hook is caught up."""
    sb = stack.sandbox
    assert stack.bridge.api("POST", f"/api/integrations/{stack.integration_id}/reconcile").status_code == 202
    stack.quiesce()  # the first round sets the cursor
    sb.booking.hooks.drop = True
    loan = sb.booking.create_loan(ALICE, *slot(hour=11), places=[JUPITER])
    stack.quiesce()
    assert stack.organiser_events("alice@contoso.com") == []
    assert stack.bridge.api("POST", f"/api/integrations/{stack.integration_id}/reconcile").status_code == 202
    [event] = wait_for(lambda: stack.organiser_events("alice@contoso.com"), WAIT, "the event from reconciliation")
    assert event["subject"].startswith(sb.booking.loan(loan.id).number)
    stack.quiesce()
    assert sb.booking.stats.loan_writes == 0
