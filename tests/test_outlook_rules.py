"""The pure rules of SPEC §6 and the sync decision: no I/O, so every case is cheap to state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.actions import CancelLoan, CreateLoan, Nothing, Refuse, UpdateLoan
from app.core.decide import decide_outlook_change
from app.core.desired import EPOCH
from app.core.graph import Attendee, OutlookEvent
from app.core.link import LinkState
from app.core.outlook_rules import (
    DesiredLoan,
    Gone,
    Refusal,
    apply_availability,
    evaluate,
    holds_live_copy,
    round_slot,
)
from app.core.policy import Policy

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ROOMS = {"room-a@contoso.com"}  # rooms holding a live copy
POLICY = Policy("i1", frozenset({"contoso.com"}), "desk@contoso.com")


def meeting(**kw) -> OutlookEvent:
    base = dict(
        id="ev1", mailbox="room-a@contoso.com", ical_uid="uid-1", subject="Alice Martin",
        organizer_email="alice@contoso.com", organizer_name="Alice Martin",
        start=NOW + timedelta(hours=2, minutes=7), end=NOW + timedelta(hours=3, minutes=1),
        attendees=(Attendee("room-a@contoso.com", "Room A", "resource", "accepted"),),
        response="accepted",
    )
    base.update(kw)
    return OutlookEvent(**base)


def test_rounding_start_down_end_up() -> None:
    start, end = round_slot(datetime(2026, 1, 1, 9, 7, tzinfo=UTC), datetime(2026, 1, 1, 10, 1, tzinfo=UTC), 15)
    assert (start.time().isoformat(), end.time().isoformat()) == ("09:00:00", "10:15:00")


def test_rounding_keeps_aligned_times() -> None:
    a, b = datetime(2026, 1, 1, 9, 0, tzinfo=UTC), datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    assert round_slot(a, b, 15) == (a, b)


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
       st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=3)),
       st.sampled_from([5, 10, 15, 30, 60]))
def test_rounded_slot_covers_the_meeting_on_block_boundaries(start, length, block) -> None:
    s, e = round_slot(start, start + length, block)
    assert s <= start and e >= start + length
    on_boundary = [(t - EPOCH) % timedelta(minutes=block) == timedelta(0) for t in (s, e)]
    assert on_boundary == [True, True]
    assert start - s < timedelta(minutes=block) and e - (start + length) < timedelta(minutes=block)


def test_meeting_in_the_tenant_becomes_a_loan_for_the_organiser() -> None:
    out = evaluate(meeting(), POLICY, ROOMS, NOW)
    assert isinstance(out, DesiredLoan)
    assert out.requester.email == "alice@contoso.com"
    assert (out.start, out.end) == (NOW + timedelta(hours=2), NOW + timedelta(hours=3, minutes=15))
    assert out.rooms == ("room-a@contoso.com",)


def test_organiser_outside_the_tenant_books_as_the_default_user() -> None:
    out = evaluate(meeting(organizer_email="bob@fabrikam.com"), POLICY, ROOMS, NOW)
    assert isinstance(out, DesiredLoan) and out.requester.email == "desk@contoso.com"


def test_organiser_outside_without_default_user_is_invalid() -> None:
    policy = Policy("i1", frozenset({"contoso.com"}), None)
    out = evaluate(meeting(organizer_email="bob@fabrikam.com"), policy, ROOMS, NOW)
    assert out == Refusal("invalid", "organizer", out.message) and "fabrikam" in out.message


def test_extra_domains_count_as_the_tenant() -> None:
    policy = Policy("i1", frozenset({"contoso.com", "contoso.fr"}), None)
    out = evaluate(meeting(organizer_email="zoe@contoso.fr"), policy, ROOMS, NOW)
    assert isinstance(out, DesiredLoan) and out.requester.email == "zoe@contoso.fr"


@pytest.mark.parametrize("kw, why", [
    (dict(start=None), "missing"),
    (dict(start=NOW + timedelta(hours=3), end=NOW + timedelta(hours=2)), "not before"),
    (dict(start=NOW + timedelta(days=181), end=NOW + timedelta(days=181, hours=1)), "horizon"),
])
def test_invalid_dates(kw, why) -> None:
    out = evaluate(meeting(**kw), POLICY, ROOMS, NOW)
    assert isinstance(out, Refusal) and out.rule == "dates" and why in out.message


def test_past_meetings_are_skipped_quietly() -> None:
    out = evaluate(meeting(start=NOW - timedelta(hours=3), end=NOW - timedelta(hours=2)), POLICY, ROOMS, NOW)
    assert isinstance(out, Refusal) and out.rule == "past" and not out.worth_journaling
    assert isinstance(decide_outlook_change(out, None), Nothing)


def test_only_rooms_holding_a_live_copy_are_in_the_loan() -> None:
    ev = meeting(attendees=(Attendee("room-a@contoso.com", "A", "resource", "accepted"),
                            Attendee("room-b@contoso.com", "B", "resource", "accepted")))  # B's line may be stale
    out = evaluate(ev, POLICY, {"room-a@contoso.com"}, NOW)
    assert isinstance(out, DesiredLoan) and out.rooms == ("room-a@contoso.com",)


def test_a_copy_that_declined_or_was_cancelled_is_not_live() -> None:
    assert holds_live_copy(meeting())
    assert not holds_live_copy(meeting(response="declined"))
    assert not holds_live_copy(meeting(is_cancelled=True))


def test_no_live_room_left_is_invalid_or_gone() -> None:
    out = evaluate(meeting(response="declined"), POLICY, set(), NOW)
    assert isinstance(out, Refusal) and out.rule == "rooms"
    assert isinstance(evaluate(meeting(is_cancelled=True), POLICY, set(), NOW), Gone)


def test_an_entry_written_into_the_room_calendar_is_not_a_meeting_to_sync() -> None:
    ev = meeting(attendees=(), organizer_email="room-a@contoso.com")
    out = evaluate(ev, POLICY, {"room-a@contoso.com"}, NOW)
    assert isinstance(out, Refusal) and out.rule == "not_eligible" and not out.worth_journaling


def test_cancelled_meeting_is_gone_when_no_room_holds_it() -> None:
    assert isinstance(evaluate(meeting(is_cancelled=True), POLICY, set(), NOW), Gone)


def test_series_master_is_never_a_loan() -> None:
    out = evaluate(meeting(type="seriesMaster"), POLICY, ROOMS, NOW)
    assert isinstance(out, Refusal) and out.rule == "series_master"


def test_excluded_subject_and_private_skip() -> None:
    policy = Policy("i1", frozenset({"contoso.com"}), None, exclude_subjects=("*standup*",), private_events="skip")
    assert evaluate(meeting(subject="Daily STANDUP"), policy, ROOMS, NOW).rule == "exclude_subjects"
    assert evaluate(meeting(sensitivity="private"), policy, ROOMS, NOW).rule == "private_events"


def _desired(rooms=("room-a@contoso.com", "room-b@contoso.com")) -> DesiredLoan:
    from app.core.outlook_rules import Requester

    return DesiredLoan("uid-1", Requester("alice@contoso.com", "Alice"), NOW, NOW + timedelta(hours=1), rooms)


def test_availability_at_create_requires_every_room() -> None:
    out = apply_availability(_desired(), {"room-a@contoso.com": True, "room-b@contoso.com": False}, updating=False)
    assert isinstance(out, Refusal) and out.rule == "availability" and "room-b" in out.message


def test_availability_at_update_drops_the_busy_room_or_cancels() -> None:
    out = apply_availability(_desired(), {"room-a@contoso.com": True, "room-b@contoso.com": False}, updating=True)
    assert isinstance(out, DesiredLoan) and out.rooms == ("room-a@contoso.com",)
    assert isinstance(apply_availability(_desired(), {}, updating=True), Gone)


def _link(**kw) -> LinkState:
    return LinkState(ical_uid="uid-1", origin="outlook", loan_id="L1", **kw)


def test_decision_table() -> None:
    d = _desired()
    assert decide_outlook_change(d, None) == CreateLoan(d)
    assert decide_outlook_change(d, _link(outlook_hash=d.fingerprint())) == Nothing("loan already matches the meeting")
    assert decide_outlook_change(d, _link(outlook_hash="old")) == UpdateLoan(d, "L1")
    assert decide_outlook_change(Gone("x"), _link()) == CancelLoan("L1", "x")
    assert isinstance(decide_outlook_change(Gone("x"), None), Nothing)
    assert isinstance(decide_outlook_change(Gone("x"), _link(status="cancelled")), Nothing)
    refusal = Refusal("invalid", "rooms", "every room declined")
    assert decide_outlook_change(refusal, _link()) == CancelLoan("L1", "every room declined")
    assert decide_outlook_change(refusal, None) == Refuse(refusal)
    dates = Refusal("invalid", "dates", "over")
    assert decide_outlook_change(dates, _link()) == Refuse(dates)


# --- a copy that is no longer live (issue 7: the slot flip-flop) ---------------------------------------------------


def _linked(rooms: dict[str, str], start: datetime, end: datetime) -> LinkState:
    """A link whose loan holds `rooms` (room id → e-mail) at start–end, as last synced."""
    from app.core.link import RoomCopy, Synced

    return LinkState(ical_uid="uid-1", origin="booking", loan_id="L1", outlook_hash="h",
                     synced=Synced("desk@contoso.com", "Desk", start, end, tuple(sorted(rooms.values()))),
                     copies=tuple(RoomCopy(rid, email, f"ev-{rid}") for rid, email in rooms.items()))


def test_a_stale_cancelled_copy_never_supplies_the_slot() -> None:
    """The loan was moved to 16:00–17:30 on Boreal + Dune; Atlas's cancelled copy still says 14:00–15:00."""
    from app.core.outlook_rules import room_left

    moved = (NOW.replace(hour=16), NOW.replace(hour=17, minute=30))
    link = _linked({"r-boreal": "boreal@contoso.com", "r-dune": "dune@contoso.com"}, *moved)
    active = {"atlas@contoso.com", "boreal@contoso.com", "dune@contoso.com"}
    # Atlas is no longer one of the loan's rooms: its stale copy changes nothing.
    assert room_left(link, "r-atlas", "atlas@contoso.com", active, 15) is None
    # Had Atlas still been recorded, only Atlas would go: the slot and the other rooms come from the link.
    with_atlas = _linked({"r-atlas": "atlas@contoso.com", "r-boreal": "boreal@contoso.com",
                          "r-dune": "dune@contoso.com"}, *moved)
    out = room_left(with_atlas, "r-atlas", "atlas@contoso.com", active, 15)
    assert isinstance(out, DesiredLoan)
    assert (out.start, out.end, out.rooms) == (*moved, ("boreal@contoso.com", "dune@contoso.com"))
    assert out.requester.email == "desk@contoso.com"


def test_the_last_room_leaving_cancels_the_loan() -> None:
    from app.core.outlook_rules import room_left

    link = _linked({"r-atlas": "atlas@contoso.com"}, NOW.replace(hour=14), NOW.replace(hour=15))
    assert isinstance(room_left(link, "r-atlas", "atlas@contoso.com", {"atlas@contoso.com"}, 15), Gone)
    assert decide_outlook_change(Gone("x"), link) == CancelLoan("L1", "x")
