"""Issue 11, the pure parts: seed 004's exclusion patterns (point 6), hidden labels / showAs / sensitivity of events
written from loans (point 4), early return and no-show (point 3), all-day meetings (point 5), refusal decisions and
their comments (point 1), sites (point 7), and the settings' validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from app.core.actions import DeleteEvent, Record, Refusal, ReleaseRooms, UpdateEvent
from app.core.booking_rules import ImportedRoom, desired_event
from app.core.contract import Loan, WorkingHours
from app.core.decide import decide_loan_change
from app.core.desired import DesiredEvent, DesiredLoan
from app.core.graph import Attendee, OutlookEvent
from app.core.link import LinkState, Synced
from app.core.outlook_rules import decline_comment, declines, evaluate, full_days
from app.core.policy import Policy, subject_matches
from app.sync.integrations import IntegrationFields

NOW = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
POLICY = Policy("int-1", frozenset({"contoso.com"}), "accueil@contoso.com")
ROOMS = [ImportedRoom("room-a@contoso.com", "Room A", "pl_a")]


def loan(**changes: object) -> Loan:
    data: dict[str, object] = {
        "id": "ln_1", "number": "PR-1001", "status": "approved",
        "requester": {"email": "alice@contoso.com", "name": "Alice Martin"},
        "start": "2030-03-04T09:00:00+00:00", "end": "2030-03-04T12:00:00+00:00", "store_id": "s",
        "items": [{"kind": "place", "id": "pl_a", "name": "Room A"}],
        "url": "https://booking.example.com/loans/ln_1", "version": 3, "updated_at": "2030-03-01T07:00:00+00:00"}
    data.update(changes)
    return Loan.model_validate(data)


def event_of(ln: Loan, policy: Policy = POLICY) -> DesiredEvent:
    d = desired_event(ln, policy, ROOMS)
    assert isinstance(d, DesiredEvent)
    return d


# --- point 6: exclusion patterns as seed 004 means them --------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "subject", "excluded"), [
    # no `*`: the subject contains it
    ("Test", "Test", True), ("Test", "A test of the projector", True), ("Test", "Contest", True),
    ("Test", "Tes t", False), ("Test", "Meeting", False),
    # `Test*`: starts with
    ("Test*", "Testing the room", True), ("Test*", "test", True), ("Test*", "A Test", False),
    # `*Test`: ends with
    ("*Test", "Final test", True), ("*Test", "TEST", True), ("*Test", "Test run", False),
    # `Test*Test`: starts and ends with (long enough for both)
    ("Test*Test", "Test and Test", True), ("Test*Test", "TestTest", True), ("Test*Test", "Test", False),
    ("Test*Test", "Test only", False), ("Test*Test", "Only test", False),
    # `*Test*`: contains
    ("*Test*", "A test here", True), ("*Test*", "Nothing", False),
    # `?` is a literal, not a one-character joker
    ("Why?", "Why? A meeting", True), ("Why?", "Whyx", False), ("?", "Questions?", True), ("?", "None", False),
    ("T?st*", "T?st run", True), ("T?st*", "Test run", False),
    # brackets are literal too (no fnmatch classes)
    ("[draft]", "Plan [DRAFT]", True), ("[draft]", "d", False),
])
def test_exclusion_patterns(pattern: str, subject: str, excluded: bool) -> None:
    assert subject_matches(pattern, subject) is excluded
    policy = replace(POLICY, exclude_subjects=(pattern,))
    assert (policy.excluded_subject(subject) == pattern) is excluded


def test_an_excluded_meeting_is_skipped_not_refused() -> None:
    ev = OutlookEvent("ev1", "room-a@contoso.com", "uid-1", "Weekly TEST", "alice@contoso.com", "Alice",
                      NOW + timedelta(hours=2), NOW + timedelta(hours=3),
                      (Attendee("room-a@contoso.com", "Room A", "resource", "accepted"),), response="accepted")
    out = evaluate(ev, replace(POLICY, exclude_subjects=("*test",)), {"room-a@contoso.com"}, NOW)
    assert isinstance(out, Refusal) and out.status == "skipped" and out.rule == "exclude_subjects"
    assert not declines(out)  # an exclusion is not a decision against the organiser: no decline


def test_exclusion_settings_are_validated() -> None:
    assert IntegrationFields(exclude_subjects=["Test*Test", "?"]).exclude_subjects == ["Test*Test", "?"]
    with pytest.raises(ValidationError):
        IntegrationFields(exclude_subjects=["**"])


# --- point 4: hidden labels, busy/free, private marking --------------------------------------------------------------

def test_subject_modes() -> None:
    assert event_of(loan()).subject == "PR-1001 – Alice Martin"
    fixed = replace(POLICY, subject_mode="fixed", subject_label="Room booked")
    assert event_of(loan(), fixed).subject == "Room booked"
    titled = replace(POLICY, subject_mode="loan_title")
    assert event_of(loan(title="Board\nmeeting"), titled).subject == "Board meeting"
    assert event_of(loan(), titled).subject == "PR-1001 – Alice Martin"  # no title: the default form


def test_a_fixed_label_hides_the_loan_and_its_change_rewrites_the_event() -> None:
    fixed = replace(POLICY, subject_mode="fixed", subject_label="Occupied")
    d = event_of(loan(), fixed)
    assert "Alice" not in d.subject and "PR-1001" not in d.subject
    assert d.fingerprint() != event_of(loan()).fingerprint()


def test_show_as_per_loan_status() -> None:
    assert [event_of(loan(status=s)).show_as for s in ("new", "pending", "approved")] == ["busy", "tentative", "busy"]
    assert event_of(loan(status="pending"), replace(POLICY, show_pending_as_tentative=False)).show_as == "busy"
    mapped = replace(POLICY, show_as=(("new", "tentative"), ("approved", "oof")))
    assert [event_of(loan(status=s), mapped).show_as for s in ("new", "pending", "approved")] == [
        "tentative", "tentative", "oof"]
    assert event_of(loan(status="approved"), mapped).write().show_as == "oof"


def test_private_marking() -> None:
    normal = event_of(loan())
    private = event_of(loan(), replace(POLICY, sensitivity="private"))
    assert (normal.write().sensitivity, private.write().sensitivity) == ("normal", "private")
    assert private.fingerprint() != normal.fingerprint()  # turning it on rewrites the events
    # links synced before the setting existed keep their fingerprint (normal adds nothing to the hash)
    assert normal.fingerprint() == replace(normal, sensitivity="normal").fingerprint()


def test_show_as_settings_are_validated() -> None:
    assert IntegrationFields(show_as={"pending": "free"}).show_as == {"pending": "free"}
    for bad in ({"pending": "invisible"}, {"lost": "busy"}, ["pending"]):
        with pytest.raises(ValidationError):
            IntegrationFields(show_as=bad)
    for name, value in (("subject_mode", "title"), ("event_sensitivity", "secret"), ("refusal_feedback", "email"),
                        ("all_day", "maybe"), ("alert_url", "http://alerts.example.com/x")):
        with pytest.raises(ValidationError):
            IntegrationFields(**{name: value})


# --- point 3: early return, no-show ----------------------------------------------------------------------------------

def booking_link(ln: Loan) -> LinkState:
    d = event_of(ln)
    return LinkState("uid-1", "booking", loan_id=ln.id, organizer_email=d.organizer, organizer_event_id="ev-org",
                     booking_hash=d.fingerprint(), booking_version=ln.version, booking_updated_at=ln.updated_at,
                     synced=Synced(d.organizer, "Alice Martin", d.start, d.end, d.room_emails))


def test_an_early_return_shortens_the_event_to_the_block() -> None:
    live = loan()
    returned = loan(status="returned", returned_at="2030-03-04T10:07:00+00:00", version=4,
                    updated_at="2030-03-04T10:07:00+00:00")
    action = decide_loan_change(returned, booking_link(live), event_of(returned), POLICY, NOW)
    assert isinstance(action, UpdateEvent)
    assert (action.desired.start, action.desired.end) == (live.start, datetime(2030, 3, 4, 10, 15, tzinfo=UTC))


def test_a_return_at_or_after_the_end_keeps_the_event() -> None:
    returned = loan(status="returned", returned_at="2030-03-04T12:00:00+00:00", version=4)
    assert isinstance(decide_loan_change(returned, booking_link(loan()), event_of(returned), POLICY, NOW), Record)
    old_contract = loan(status="returned", version=4)  # no returned_at: the event stays as it was
    assert isinstance(decide_loan_change(old_contract, booking_link(loan()), event_of(old_contract), POLICY, NOW),
                      Record)


def test_a_no_show_after_the_start_shortens_the_event_before_it_deletes() -> None:
    after = loan(status="cancelled", cancel_reason="no_show", version=4, updated_at="2030-03-04T09:20:00+00:00")
    action = decide_loan_change(after, booking_link(loan()), event_of(after), POLICY, NOW)
    assert isinstance(action, UpdateEvent) and action.desired.end == datetime(2030, 3, 4, 9, 30, tzinfo=UTC)
    before = loan(status="cancelled", cancel_reason="no_show", version=4, updated_at="2030-03-04T08:50:00+00:00")
    assert isinstance(decide_loan_change(before, booking_link(loan()), event_of(before), POLICY, NOW), DeleteEvent)
    other = loan(status="cancelled", cancel_reason="changed plans", version=4, updated_at="2030-03-04T09:20:00+00:00")
    assert isinstance(decide_loan_change(other, booking_link(loan()), event_of(other), POLICY, NOW), DeleteEvent)


def test_an_early_return_of_a_meeting_born_in_outlook_releases_its_rooms() -> None:
    ln = loan(status="returned", returned_at="2030-03-04T10:00:00+00:00", version=4,
              origin={"system": "outlook", "ref": "uid-1"})
    link = LinkState("uid-1", "outlook", loan_id=ln.id, booking_version=3,
                     synced=Synced("alice@contoso.com", "Alice", ln.start, ln.end, ("room-a@contoso.com",)))
    assert isinstance(decide_loan_change(ln, link, event_of(ln), POLICY, NOW), ReleaseRooms)


# --- point 5: all-day meetings ---------------------------------------------------------------------------------------

def all_day(day: datetime, zone_offset: timedelta = timedelta(0)) -> OutlookEvent:
    # Graph gives midnight to midnight in the zone the organiser wrote it in, converted to UTC here
    start = day - zone_offset
    return OutlookEvent("ev1", "room-a@contoso.com", "uid-1", "Offsite", "alice@contoso.com", "Alice", start,
                        start + timedelta(days=1), (Attendee("room-a@contoso.com", "Room A", "resource", "accepted"),),
                        is_all_day=True, response="accepted")


def test_an_all_day_meeting_is_a_full_day_loan_in_the_room_zone() -> None:
    day = datetime(2030, 3, 5, tzinfo=UTC)
    out = evaluate(all_day(day, timedelta(hours=1)), POLICY, {"room-a@contoso.com"}, NOW, "Europe/Paris")
    assert isinstance(out, DesiredLoan)
    assert (out.start, out.end) == (datetime(2030, 3, 4, 23, tzinfo=UTC), datetime(2030, 3, 5, 23, tzinfo=UTC))
    out = evaluate(all_day(day), POLICY, {"room-a@contoso.com"}, NOW, "America/New_York")
    assert isinstance(out, DesiredLoan) and (out.start, out.end) == (datetime(2030, 3, 5, 5, tzinfo=UTC),
                                                                     datetime(2030, 3, 6, 5, tzinfo=UTC))
    out = evaluate(all_day(day), POLICY, {"room-a@contoso.com"}, NOW, None)  # zone unknown: the UTC day
    assert isinstance(out, DesiredLoan) and (out.start, out.end) == (day, day + timedelta(days=1))


def test_all_day_skip() -> None:
    out = evaluate(all_day(datetime(2030, 3, 5, tzinfo=UTC)), replace(POLICY, all_day="skip"),
                   {"room-a@contoso.com"}, NOW, "Europe/Paris")
    assert isinstance(out, Refusal) and out.status == "skipped" and out.rule == "all_day" and not declines(out)


OFFICE = WorkingHours(days=["monday", "tuesday", "wednesday", "thursday", "friday"], start=time(8), end=time(18, 30))


def test_an_all_day_meeting_keeps_to_the_rooms_working_hours() -> None:
    day = datetime(2030, 3, 5, tzinfo=UTC)  # a Tuesday
    out = evaluate(all_day(day, timedelta(hours=1)), POLICY, {"room-a@contoso.com"}, NOW, "Europe/Paris", OFFICE)
    # 08:00–18:30 in Paris (UTC+1 in March)
    assert isinstance(out, DesiredLoan) and (out.start, out.end) == (datetime(2030, 3, 5, 7, tzinfo=UTC),
                                                                     datetime(2030, 3, 5, 17, 30, tzinfo=UTC))
    # Summer time: the same wall-clock hours, an hour earlier in UTC.
    july = datetime(2030, 7, 2, tzinfo=UTC)  # a Tuesday
    assert full_days(july - timedelta(hours=2), july + timedelta(hours=22), "Europe/Paris", OFFICE) == (
        datetime(2030, 7, 2, 6, tzinfo=UTC), datetime(2030, 7, 2, 16, 30, tzinfo=UTC))


def test_an_all_day_meeting_on_a_day_off_is_the_whole_day() -> None:
    saturday = datetime(2030, 3, 9, tzinfo=UTC)
    assert full_days(saturday, saturday + timedelta(days=1), None, OFFICE) == (saturday,
                                                                               saturday + timedelta(days=1))
    # Friday to Saturday: from Friday's opening to Saturday's midnight; Saturday to Monday: to Monday's closing.
    friday = datetime(2030, 3, 8, tzinfo=UTC)
    assert full_days(friday, friday + timedelta(days=2), None, OFFICE) == (
        friday + timedelta(hours=8), friday + timedelta(days=2))
    assert full_days(saturday, saturday + timedelta(days=3), None, OFFICE) == (
        saturday, saturday + timedelta(days=2, hours=18, minutes=30))
    # Hours that do not end after they start are not hours.
    odd = WorkingHours(days=["saturday"], start=time(18), end=time(8))
    assert full_days(saturday, saturday + timedelta(days=1), None, odd) == (saturday, saturday + timedelta(days=1))


def test_a_multi_day_all_day_meeting_and_a_bad_zone() -> None:
    start = datetime(2030, 3, 5, tzinfo=UTC)
    assert full_days(start, start + timedelta(days=3), "Not/AZone") == (start, start + timedelta(days=3))


# --- point 1: which refusals decline, in the organiser's words -------------------------------------------------------

def test_decisions_decline_skips_do_not() -> None:
    assert declines(Refusal("invalid", "availability", "busy"))
    assert declines(Refusal("invalid", "organizer", "outside"))
    assert declines(Refusal("invalid", "dates", "beyond the horizon"))
    assert declines(Refusal("invalid", "refused", "refused"))
    for skip in ("exclude_subjects", "private_events", "past", "not_eligible", "all_day"):
        assert not declines(Refusal("skipped", skip, "x"))
    assert not declines(Refusal("invalid", "rooms", "every room declined"))  # nothing left to decline


def test_decline_comments_say_which_rule_and_what_to_do() -> None:
    text = decline_comment(Refusal("invalid", "availability", "busy"), "Atlas")
    assert "Atlas" in text and "already booked" in text and "another" in text
    text = decline_comment(Refusal("invalid", "dates", "starts beyond the 180-day horizon"), "Atlas")
    assert "180-day horizon" in text and "change the dates" in text


# --- point 7: sites ---------------------------------------------------------------------------------------------------

def test_sites() -> None:
    assert POLICY.in_site(None) and POLICY.in_site("Anywhere")  # no limit
    limited = replace(POLICY, buildings=("Lyon HQ", "Paris"))
    assert limited.in_site("lyon hq") and limited.in_site(" Paris ")
    assert not limited.in_site("Nantes") and not limited.in_site(None)


def test_room_lists_setting() -> None:
    fields = IntegrationFields(room_lists=[" lyon-rooms@contoso.com", "Paris", "LYON-ROOMS@contoso.com"])
    assert fields.room_lists == ["lyon-rooms@contoso.com", "Paris"]  # trimmed, each list once
    assert IntegrationFields(room_lists=[]).room_lists == []  # no limit
    for bad in (["ok", ""], "paris", [["nested"]], ["x" * 321]):
        with pytest.raises(ValidationError):
            IntegrationFields(room_lists=bad)
