"""SPEC §11 acceptance cases for Outlook → booking, on the embedded default and on PostgreSQL + Redis with two
worker processes. The bridge runs as real `roombridge` processes; Graph and the booking system are the simulators."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import WAIT, wait_for

pytestmark = pytest.mark.slow
PARIS = ZoneInfo("Europe/Paris")
JUPITER, SATURNE = "salle-jupiter@contoso.com", "salle-saturne@contoso.com"


def tomorrow(hour: int, minute: int = 0, days: int = 1) -> datetime:
    d = (datetime.now(PARIS) + timedelta(days=days)).date()
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=PARIS)


def book(setup, rooms=(JUPITER,), start=None, end=None, organizer="alice@contoso.com", subject="Réunion"):
    start = start or tomorrow(10, 7)
    end = end or start + timedelta(minutes=54)
    return setup.graph.create_meeting(organizer, subject, start, end, rooms=list(rooms),
                                      time_zone="Romance Standard Time")


def only_loan(setup):
    return wait_for(lambda: (lambda loans: loans[0] if len(loans) == 1 else None)(list(setup.booking.loans.values())),
                    WAIT, "exactly one loan")


def test_case_01_three_updated_notifications_give_one_booking_write(setup) -> None:
    meeting = book(setup)
    loan = only_loan(setup)
    setup.settle()
    setup.booking.stats.reset()
    setup.graph.stats.reset()
    setup.graph.delivery.duplicates = 3
    setup.graph.update_event("alice@contoso.com", meeting["id"], start=tomorrow(14), end=tomorrow(15),
                             time_zone="Romance Standard Time")
    wait_for(lambda: setup.booking.loan(loan.id).start == tomorrow(14), WAIT, "the loan to move")
    setup.settle()
    assert setup.booking.stats.loans_patched == 1
    assert setup.booking.stats.loans_created == 0
    room_id = setup.graph.user_id(JUPITER)
    assert setup.graph.stats.event_reads[room_id] == 1  # three notifications, one read


def test_case_02_created_then_spurious_updated_gives_one_loan_and_no_outlook_write(setup) -> None:
    setup.graph.delivery.spurious_updated = True
    book(setup)
    only_loan(setup)
    setup.settle()
    assert setup.booking.stats.loans_created == 1 and setup.booking.stats.loans_patched == 0
    assert setup.graph.stats.http_event_writes == 0


@pytest.mark.both_stacks
def test_case_03_two_rooms_notified_at_once_give_one_loan_with_both(setup) -> None:
    book(setup, rooms=(JUPITER, SATURNE))
    loan = only_loan(setup)
    wait_for(lambda: len(setup.booking.loan(loan.id).items) == 2, WAIT, "both rooms on the loan")
    setup.settle()
    assert len(setup.booking.loans) == 1
    assert sorted(i.place_email for i in setup.booking.loan(loan.id).items) == [SATURNE, JUPITER][::-1]
    assert setup.booking.stats.loans_created == 1
    # Both copies asked for the same meeting: the meeting lock made the second see the first one's link.
    assert sum(setup.booking.stats.creates_by_key.values()) == 1


def test_case_04_organiser_outside_the_tenant_books_as_the_default_user(setup) -> None:
    setup.graph.add_user("bob@fabrikam.com", "Bob Fabrikam")
    book(setup, organizer="bob@fabrikam.com")
    loan = only_loan(setup)
    assert loan.requester.email == "accueil@contoso.com"


def test_case_04_without_default_user_no_loan_and_the_journal_says_why(setup) -> None:
    assert setup.api("PATCH", "", json={"default_user_email": None}).status_code == 200
    setup.graph.add_user("bob@fabrikam.com", "Bob Fabrikam")
    meeting = book(setup, organizer="bob@fabrikam.com")
    entry = wait_for(lambda: next((e for e in setup.journal(status="invalid") if e["rule"] == "organizer"), None),
                     WAIT, "the journal entry")
    assert "bob@fabrikam.com" in entry["message"] and entry["ical_uid"] == meeting["iCalUId"]
    setup.settle()
    assert setup.booking.loans == {}


def test_case_05_a_declining_room_is_not_in_the_loan(setup) -> None:
    # Saturne is already taken in Exchange (a direct booking on its calendar, which is nobody's meeting to sync).
    setup.graph.create_event(SATURNE, {"subject": "Travaux", "start": {"dateTime": tomorrow(9).isoformat(),
                             "timeZone": "Europe/Paris"}, "end": {"dateTime": tomorrow(12).isoformat(),
                             "timeZone": "Europe/Paris"}})
    book(setup, rooms=(JUPITER, SATURNE))
    loan = only_loan(setup)
    setup.settle()
    assert [i.place_email for i in setup.booking.loan(loan.id).items] == [JUPITER]


def test_case_05_all_rooms_declining_gives_no_loan(setup) -> None:
    for room in (JUPITER, SATURNE):
        setup.graph.create_event(room, {"subject": "Travaux", "start": {"dateTime": tomorrow(9).isoformat(),
                                 "timeZone": "Europe/Paris"}, "end": {"dateTime": tomorrow(12).isoformat(),
                                 "timeZone": "Europe/Paris"}})
    book(setup, rooms=(JUPITER, SATURNE))
    setup.settle()
    assert setup.booking.loans == {}


def test_case_06_room_busy_in_the_booking_system_at_create(setup) -> None:
    setup.booking.block(JUPITER, tomorrow(10), tomorrow(11))
    book(setup)
    entry = wait_for(lambda: next((e for e in setup.journal(status="invalid") if e["rule"] == "availability"), None),
                     WAIT, "the journal entry")
    assert JUPITER in entry["message"]
    setup.settle()
    assert setup.booking.loans == {}


def test_case_06_room_busy_at_update_is_dropped(setup) -> None:
    meeting = book(setup, rooms=(JUPITER, SATURNE))
    loan = only_loan(setup)
    wait_for(lambda: len(setup.booking.loan(loan.id).items) == 2, WAIT, "both rooms")
    setup.booking.block(SATURNE, tomorrow(15), tomorrow(17))
    setup.graph.update_event("alice@contoso.com", meeting["id"], start=tomorrow(15), end=tomorrow(16),
                             time_zone="Romance Standard Time")
    wait_for(lambda: setup.booking.loan(loan.id).start == tomorrow(15), WAIT, "the move")
    setup.settle()
    moved = setup.booking.loan(loan.id)
    assert [i.place_email for i in moved.items] == [JUPITER] and moved.status == "new"


def test_case_07_moved_meeting_moves_the_loan_and_cancel_cancels_it(setup) -> None:
    meeting = book(setup)
    loan = only_loan(setup)
    setup.graph.update_event("alice@contoso.com", meeting["id"], start=tomorrow(16, 5), end=tomorrow(16, 50),
                             time_zone="Romance Standard Time")
    wait_for(lambda: setup.booking.loan(loan.id).start == tomorrow(16), WAIT, "the move")
    assert setup.booking.loan(loan.id).end == tomorrow(17)  # 16:50 rounded up to the 15-minute block
    setup.graph.cancel_event("alice@contoso.com", meeting["id"])
    wait_for(lambda: setup.booking.loan(loan.id).status == "cancelled", WAIT, "the cancellation")


def test_case_14_expired_delta_token_means_a_full_resync_without_duplicates(setup) -> None:
    book(setup)
    only_loan(setup)
    assert setup.api("POST", "/reconcile").status_code == 202  # first round: the delta tokens are stored
    setup.settle()
    setup.graph.expire_delta_tokens()
    setup.graph.delivery.drop_next = 1000  # the second meeting is only found by reconciliation
    book(setup, start=tomorrow(15), end=tomorrow(16))
    setup.settle()
    assert len(setup.booking.loans) == 1
    assert setup.api("POST", "/reconcile").status_code == 202
    wait_for(lambda: len(setup.booking.loans) == 2, WAIT, "the second loan")
    setup.settle()
    assert len(setup.booking.loans) == 2 and setup.booking.stats.loans_created == 2


@pytest.mark.both_stacks
def test_case_15_removed_outside_the_window_does_not_cancel(setup) -> None:
    assert setup.api("PATCH", "", json={"horizon_days": 5}).status_code == 200
    meeting = book(setup)
    loan = only_loan(setup)
    assert setup.api("POST", "/reconcile").status_code == 202
    setup.settle()
    # The meeting moves beyond the 5-day horizon: its copy leaves the delta window and comes back `@removed`.
    setup.graph.delivery.drop_next = 1000
    setup.graph.update_event("alice@contoso.com", meeting["id"], start=tomorrow(10, days=20),
                             end=tomorrow(11, days=20), time_zone="Romance Standard Time")
    assert setup.api("POST", "/reconcile").status_code == 202
    setup.settle()
    assert setup.booking.loan(loan.id).status == "new"
    assert any(e["rule"] == "dates" and "horizon" in e["message"] for e in setup.journal())


def test_case_16_graph_429_is_waited_out_and_mailbox_concurrency_stays_under_4(setup) -> None:
    room_id = setup.graph.user_id(JUPITER)
    setup.graph.inject(429, count=1, retry_after=2, mailbox=room_id)
    t0 = datetime.now()
    book(setup)
    loan = only_loan(setup)
    assert (datetime.now() - t0).total_seconds() >= 2  # the Retry-After was honoured
    assert loan.requester.email == "alice@contoso.com"
    assert setup.graph.stats.faults_injected == 1
    assert all(v <= 4 for v in setup.graph.stats.max_in_flight.values())


def test_excluded_subject_is_skipped_though_room_copies_carry_the_organisers_name(setup) -> None:
    """Exchange replaces a room copy's subject with the organiser's name: the bridge reads the organiser's subject."""
    assert setup.api("PATCH", "", json={"exclude_subjects": ["*entretien*"]}).status_code == 200
    book(setup, subject="Entretien annuel")
    book(setup, subject="Réunion d'équipe", start=tomorrow(15), end=tomorrow(16))
    loan = only_loan(setup)
    setup.settle()
    assert loan.start == tomorrow(15)
    assert any(e["rule"] == "exclude_subjects" and e["status"] == "skipped" for e in setup.journal())


def test_private_meetings_are_skipped_when_the_integration_says_so(setup) -> None:
    assert setup.api("PATCH", "", json={"private_events": "skip"}).status_code == 200
    setup.graph.create_meeting("alice@contoso.com", "Médecin", tomorrow(10), tomorrow(11), rooms=[JUPITER],
                               sensitivity="private")
    wait_for(lambda: any(e["rule"] == "private_events" for e in setup.journal()), WAIT, "the skip journaled")
    setup.settle()
    assert setup.booking.loans == {}


@pytest.mark.both_stacks
def test_case_17_booking_system_down_for_a_while(setup) -> None:
    """Changes wait while the booking system is down and go through after; none lost; the journal shows the error."""
    setup.booking.down()
    book(setup)
    book(setup, rooms=(SATURNE,), start=tomorrow(15), end=tomorrow(16))
    wait_for(lambda: [e for e in setup.journal(status="error") if e["action"] == "wait"], 30,
             "the outage in the journal")
    assert setup.booking.loans == {}
    setup.booking.up()
    wait_for(lambda: len(setup.booking.loans) == 2, WAIT, "both loans after the outage")
    setup.settle()
    assert len(setup.booking.loans) == 2 and setup.booking.stats.loans_created == 2
