"""Issue 11 through the real flows against the twins: refusals declined on the room's behalf (1), rooms declining a
loan's event said as conflicts (2), early return and no-show freeing the room (3), all-day meetings (5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.adapters.booking.client import BookingUnavailable
from app.platform.db import session_scope
from app.platform.models import Integration, Room
from tests.flows.conftest import active_loans, assert_quiet, at, live_copy, rooms_of
from tests.twins import World
from tests.twins.world import email


def configure(world: World, **fields: Any) -> None:
    with session_scope(world.rt.engine) as s:
        integration = s.get(Integration, world.integration_id)
        assert integration is not None
        for name, value in fields.items():
            setattr(integration, name, value)


def declines(world: World) -> list[tuple[str, str, str]]:
    return list(world.graph.exchange.declines)


def attendee_response(world: World, organiser: str, event_id: str, room: str) -> str:
    event = world.organiser_event(organiser, event_id)
    assert event is not None
    return next(a.response for a in event.attendees if a.address.lower() == email(room))


def journal_text(world: World) -> str:
    return "\n".join(f"{e.action} {e.status} {e.message}" for e in world.journal())


# --- 1. refusals reach the organiser ---------------------------------------------------------------------------------

def test_a_room_busy_in_the_booking_system_declines_with_the_reason(world: World) -> None:
    world.booking.store.block(email("atlas"), at(9), at(10))
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    assert active_loans(world) == []
    [(room, uid, comment)] = declines(world)
    assert room == email("atlas") and "already booked" in comment and "another" in comment
    assert attendee_response(world, "alice", event_id, "atlas") == "declined"  # the organiser is told
    assert live_copy(world, "atlas", uid) is None  # the room's copy went
    assert "declined in Outlook" in journal_text(world)
    assert_quiet(world)  # the decline's own notification changes nothing


def test_journal_only_keeps_the_room_copy(world: World) -> None:
    configure(world, refusal_feedback="journal_only")
    world.booking.store.block(email("atlas"), at(9), at(10))
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    assert active_loans(world) == [] and declines(world) == []
    assert attendee_response(world, "alice", event_id, "atlas") == "accepted"
    assert "availability" in journal_text(world) or "not available" in journal_text(world)
    assert_quiet(world)


def test_only_the_busy_room_of_two_declines(world: World) -> None:
    world.booking.store.block(email("atlas"), at(9), at(10))
    event_id = world.meeting("alice", ["atlas", "boreal"], at(9), at(10))
    world.settle()
    [loan] = active_loans(world)
    assert rooms_of(loan) == ["boreal"]
    assert [d[0] for d in declines(world)] == [email("atlas")]
    assert attendee_response(world, "alice", event_id, "boreal") == "accepted"
    assert_quiet(world)


def test_a_room_dropped_at_update_declines(world: World) -> None:
    event_id = world.meeting("alice", ["atlas", "boreal"], at(9), at(10))
    world.settle()
    world.booking.store.block(email("atlas"), at(14), at(15))
    world.graph.users.update_event(email("alice"), event_id, start=at(14), end=at(15))
    world.settle()
    [loan] = active_loans(world)
    assert rooms_of(loan) == ["boreal"] and (loan.start, loan.end) == (at(14), at(15))
    assert [d[0] for d in declines(world)] == [email("atlas")]
    assert attendee_response(world, "alice", event_id, "atlas") == "declined"
    assert_quiet(world)


def test_an_outside_organiser_without_default_user_is_declined(world: World) -> None:
    configure(world, default_user_email=None)
    world.graph.users.add_user("zoe@fabrikam.com", "Zoe")
    world.graph.users.create_meeting("zoe@fabrikam.com", "Visit", at(9), at(10), rooms=[email("atlas")])
    world.settle()
    assert active_loans(world) == []
    [(_, _, comment)] = declines(world)
    assert "members of the organisation" in comment
    assert_quiet(world)


def test_a_loan_refused_in_the_booking_system_declines_its_rooms(world: World) -> None:
    event_id = world.meeting("alice", ["atlas", "boreal"], at(9), at(10))
    world.settle()
    [loan] = active_loans(world)
    world.booking.user_close_loan(loan.id, "refused")
    world.settle()
    assert sorted(d[0] for d in declines(world)) == [email("atlas"), email("boreal")]
    assert all("refused" in d[2] for d in declines(world))
    assert {attendee_response(world, "alice", event_id, r) for r in ("atlas", "boreal")} == {"declined"}
    assert_quiet(world)


def test_never_declined_for_an_outage(world: World) -> None:
    world.booking.faults.fail_next(lambda: BookingUnavailable("down", "unavailable", 503), times=3)
    event_id = world.meeting("alice", ["atlas"], at(9), at(10))
    world.settle()
    assert declines(world) == []
    [loan] = active_loans(world)  # the retries went through
    assert rooms_of(loan) == ["atlas"] and attendee_response(world, "alice", event_id, "atlas") == "accepted"


def test_skipped_meetings_are_not_declined(world: World) -> None:
    configure(world, exclude_subjects=["*private"])
    world.meeting("alice", ["atlas"], at(9), at(10), subject="Team private")
    world.settle()
    assert active_loans(world) == [] and declines(world) == []


# --- 2. both sides disagree → said, not hidden --------------------------------------------------------------------

def _room_taken_in_outlook_only(world: World) -> None:
    """Atlas busy in Outlook with a meeting the bridge does not sync (excluded), free in the booking system."""
    configure(world, exclude_subjects=["Outlook only*"])
    world.meeting("bob", ["atlas"], at(10), at(11), subject="Outlook only: interview")
    world.settle()
    assert active_loans(world) == []


def test_a_room_declining_a_loans_event_is_a_conflict(world: World) -> None:
    _room_taken_in_outlook_only(world)
    loan_id = world.loan("alice", ["atlas"], at(10), at(11))
    world.settle()
    [entry] = [e for e in world.journal() if e.status == "conflict"]
    assert "atlas@contoso.com declined" in entry.message and entry.loan_id == loan_id
    assert world.booking.store.notes(loan_id) == []  # conflict_note off (default)
    assert_quiet(world)


def test_conflict_note_marks_the_loan(world: World) -> None:
    configure(world, conflict_note=True)
    _room_taken_in_outlook_only(world)
    loan_id = world.loan("alice", ["atlas"], at(10), at(11))
    world.settle()
    [note] = world.booking.store.notes(loan_id)
    assert note.kind == "conflict" and "atlas@contoso.com declined" in note.message
    assert "marked in the booking system" in journal_text(world)
    assert_quiet(world)


def _later_answer(world: World, taken: bool) -> str:
    """A loan written to Outlook while the rooms' booking assistants have not answered yet (real Exchange answers
    seconds after the write): the write's answer says nothing; the room decides afterwards."""
    configure(world, conflict_note=True)
    if taken:
        _room_taken_in_outlook_only(world)
    world.graph.exchange.defer_room_answers = True
    loan_id = world.loan("alice", ["atlas"], at(10), at(11))
    world.settle()
    [event] = world.graph.events(email("alice"))
    assert next(a.response for a in event.attendees if a.address.lower() == email("atlas")) == "none"
    assert [e for e in world.journal() if e.status == "conflict"] == []
    assert world.graph.exchange.answer_rooms() == 1
    return loan_id


def test_a_room_declining_a_loans_event_later_is_the_same_conflict(world: World) -> None:
    loan_id = _later_answer(world, taken=True)
    world.settle()  # the room copy's deletion is the news
    [entry] = [e for e in world.journal() if e.status == "conflict"]
    assert "atlas@contoso.com declined" in entry.message and entry.loan_id == loan_id
    [note] = world.booking.store.notes(loan_id)
    assert note.kind == "conflict" and "atlas@contoso.com declined" in note.message
    [loan] = active_loans(world)  # the booking system keeps its loan as it is: said, not undone
    assert loan.id == loan_id and rooms_of(loan) == ["atlas"]
    world.reconcile()
    world.settle()
    assert len([e for e in world.journal() if e.status == "conflict"]) == 1  # once
    assert len(world.booking.store.notes(loan_id)) == 1


def test_a_later_decline_seen_only_by_reconciliation(world: World) -> None:
    loan_id = _later_answer(world, taken=True)
    world.graph.take_notifications()  # the notifications are lost
    world.settle()
    assert [e for e in world.journal() if e.status == "conflict"] == []
    world.reconcile()
    world.settle()
    [entry] = [e for e in world.journal() if e.status == "conflict"]
    assert entry.loan_id == loan_id and len(world.booking.store.notes(loan_id)) == 1


def test_a_room_accepting_later_is_no_conflict(world: World) -> None:
    loan_id = _later_answer(world, taken=False)
    world.settle()
    assert [e for e in world.journal() if e.status == "conflict"] == []
    assert world.booking.store.notes(loan_id) == []
    assert [loan.id for loan in active_loans(world)] == [loan_id]
    assert_quiet(world)


# --- 3. early return and no-show free the room ------------------------------------------------------------------------

def _running_loan(world: World) -> tuple[str, datetime, datetime]:
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    end = start + timedelta(hours=4)
    loan_id = world.loan("alice", ["atlas"], start, end)
    world.settle()
    [event] = world.graph.events(email("alice"))
    assert (event.start, event.end) == (start, end)
    return loan_id, start, end


def test_an_early_return_shortens_the_event(world: World) -> None:
    loan_id, start, end = _running_loan(world)
    returned_at = start + timedelta(hours=1, minutes=7)
    world.booking.user_close_loan(loan_id, "returned", returned_at=returned_at)
    world.settle()
    [event] = world.graph.events(email("alice"))
    assert (event.start, event.end) == (start, start + timedelta(hours=1, minutes=15))
    copy = live_copy(world, "atlas", event.ical_uid)
    assert copy is not None and copy.end == start + timedelta(hours=1, minutes=15)  # the room shows free after
    assert_quiet(world)


def test_a_no_show_frees_the_room_from_the_closing(world: World) -> None:
    loan_id, start, end = _running_loan(world)
    world.booking.user_close_loan(loan_id, "cancelled", reason="no_show")
    closed = world.booking.store.loan(loan_id).updated_at
    world.settle()
    [event] = world.graph.events(email("alice"))
    assert event.start == start and closed <= event.end < closed + timedelta(minutes=15) and event.end < end
    assert_quiet(world)


def test_a_no_show_before_the_start_deletes_the_event(world: World) -> None:
    loan_id = world.loan("alice", ["atlas"], at(9), at(10))
    world.settle()
    world.booking.user_close_loan(loan_id, "cancelled", reason="no_show")
    world.settle()
    assert world.graph.events(email("alice")) == []
    assert_quiet(world)


def test_an_early_return_of_a_meeting_born_in_outlook_frees_its_room(world: World) -> None:
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    event_id = world.meeting("alice", ["atlas"], start, start + timedelta(hours=4))
    world.settle()
    [loan] = active_loans(world)
    world.booking.user_close_loan(loan.id, "returned", returned_at=now)
    world.settle()
    organiser = world.organiser_event("alice", event_id)
    assert organiser is not None and live_copy(world, "atlas", organiser.ical_uid) is None
    assert_quiet(world)


# --- 5. all-day meetings ----------------------------------------------------------------------------------------------

def _all_day(world: World, zone: str = "Europe/Paris") -> None:
    with session_scope(world.rt.engine) as s:
        room = s.get(Room, world.room_ids[email("atlas")])
        assert room is not None
        room.attributes = {**(room.attributes or {}), "time_zone": zone}
    paris = ZoneInfo("Europe/Paris")
    day = (datetime.now(paris) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    world.graph.users.create_meeting(email("alice"), "Offsite", day, day + timedelta(days=1), rooms=[email("atlas")],
                                     time_zone="Europe/Paris", is_all_day=True)


def test_an_all_day_meeting_is_a_full_day_loan_in_the_rooms_zone(world: World) -> None:
    _all_day(world)
    world.settle()
    [loan] = active_loans(world)
    local = loan.start.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (0, 0) and loan.end - loan.start == timedelta(days=1)
    assert_quiet(world)


def test_all_day_skip(world: World) -> None:
    configure(world, all_day="skip")
    _all_day(world)
    world.settle()
    assert active_loans(world) == [] and declines(world) == []
    assert "all_day" in journal_text(world)
