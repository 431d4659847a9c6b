"""The pure rules of booking → Outlook (SPEC §7): the event a loan should be, the action, conflicts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.core.actions import (
    CreateEvent,
    DeleteEvent,
    Nothing,
    Record,
    Refusal,
    Refuse,
    ReleaseRooms,
    ReplaceEvent,
    UpdateEvent,
)
from app.core.booking_rules import (
    ImportedRoom,
    booking_fingerprint,
    desired_event,
    organiser_copy_fingerprint,
    synced,
)
from app.core.conflict import OutlookSeen, resolve_conflict, settle_conflict
from app.core.contract import Loan
from app.core.decide import decide_loan_change
from app.core.desired import DesiredEvent, DesiredLoan, Requester, round_slot
from app.core.graph import Attendee, OutlookEvent
from app.core.link import LinkState, Synced
from app.core.policy import Policy

NOW = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
POLICY = Policy("int-1", frozenset({"contoso.com"}), "accueil@contoso.com")
ROOMS = [ImportedRoom("room-a@contoso.com", "Room A", "pl_a"), ImportedRoom("room-b@contoso.com", "Room B", "pl_b")]


def loan(**changes) -> Loan:
    data = {
        "id": "ln_1", "number": "PR-1001", "status": "new",
        "requester": {"email": "Alice@contoso.com", "name": "Alice"},
        "start": "2030-03-04T09:00:00+00:00", "end": "2030-03-04T10:00:00+00:00", "store_id": "s",
        "items": [{"kind": "place", "id": "pl_b", "name": "Room B", "place_email": "room-b@contoso.com"},
               {"kind": "asset", "id": "as_1", "name": "Projector"},
               {"kind": "place", "id": "pl_a", "name": "Room A"}],
        "url": "https://booking.example.com/loans/ln_1", "version": 3, "updated_at": "2030-03-01T07:00:00+00:00"}
    data.update(changes)
    return Loan.model_validate(data)


def desired(ln: Loan | None = None, policy: Policy = POLICY) -> DesiredEvent:
    d = desired_event(ln or loan(), policy, ROOMS)
    assert isinstance(d, DesiredEvent)
    return d


def booking_link(ln: Loan | None = None, **changes) -> LinkState:
    ln = ln or loan()
    d = desired(ln)
    link = LinkState(ical_uid="UID-1", loan_id=ln.id, origin="booking", status="active",
                     organizer_email=d.organizer, organizer_event_id="EV-1", booking_version=ln.version,
                     booking_hash=d.fingerprint(), outlook_hash=d.outlook_fingerprint("UID-1", 15),
                     synced=synced(ln, d))
    return replace(link, **changes)


def decide(ln: Loan, link: LinkState | None, policy: Policy = POLICY):
    return decide_loan_change(ln, link, desired_event(ln, policy, ROOMS), policy, NOW)


# --- the desired event ----------------------------------------------------------------------------------------


def test_event_of_a_loan_by_a_tenant_requester() -> None:
    d = desired()
    assert d.organizer == "alice@contoso.com"
    assert d.subject == "PR-1001 – Alice"
    assert d.rooms == (("room-a@contoso.com", "Room A"), ("room-b@contoso.com", "Room B"))
    assert d.show_as == "busy"
    assert (d.start, d.end) == (loan().start, loan().end)
    assert "Room A (room)" in d.body_html and "Room B (room)" in d.body_html and "Projector (asset)" in d.body_html
    assert '<a href="https://booking.example.com/loans/ln_1">' in d.body_html


def test_transaction_id_is_stable_per_loan_and_organiser() -> None:
    assert desired().transaction_id == desired(loan(version=9, start="2030-03-05T09:00:00+00:00",
                                                    end="2030-03-05T10:00:00+00:00")).transaction_id
    assert desired().transaction_id != desired(loan(id="ln_2")).transaction_id


def test_requester_outside_the_tenant_is_organised_by_the_default_user() -> None:
    d = desired(loan(requester={"email": "zoe@partner.example", "name": "Zoé"}))
    assert d.organizer == "accueil@contoso.com" and d.subject == "PR-1001 – Zoé"


def test_requester_outside_the_tenant_without_default_user_is_invalid() -> None:
    policy = Policy("int-1", frozenset({"contoso.com"}), None)
    result = desired_event(loan(requester={"email": "zoe@partner.example", "name": "Zoé"}), policy, ROOMS)
    assert isinstance(result, Refusal) and (result.status, result.rule) == ("invalid", "organizer")


def test_a_loan_without_imported_rooms_has_no_event() -> None:
    result = desired_event(loan(items=[{"kind": "asset", "id": "as_1", "name": "Projector"},
                                       {"kind": "place", "id": "pl_x", "name": "Elsewhere"}]), POLICY, ROOMS)
    assert isinstance(result, Refusal) and result.rule == "not_eligible"


@pytest.mark.parametrize(("status", "setting", "show_as"), [
    ("pending", True, "tentative"), ("pending", False, "busy"), ("new", True, "busy"), ("approved", True, "busy")])
def test_show_as(status: str, setting: bool, show_as: str) -> None:
    policy = Policy("int-1", frozenset({"contoso.com"}), None, show_pending_as_tentative=setting)
    assert desired(loan(status=status), policy).show_as == show_as


def test_everything_from_the_booking_system_is_html_escaped() -> None:
    d = desired(loan(number="<b>1</b>", requester={"email": "a@contoso.com", "name": "A & <script>"},
                     items=[{"kind": "place", "id": "pl_a", "name": "<img src=x onerror=alert(1)>"}],
                     url='https://x.example/"><script>'))
    assert "<script>" not in d.body_html and "<img" not in d.body_html and "<b>" not in d.body_html
    assert "&lt;img src=x onerror=alert(1)&gt;" in d.body_html and "A &amp; &lt;script&gt;" in d.body_html
    assert 'href="https://x.example/&quot;&gt;&lt;script&gt;"' in d.body_html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>", "ftp://x"])
def test_only_web_links_are_clickable(url: str) -> None:
    assert "href" not in desired(loan(url=url)).body_html


def test_subject_is_one_line_and_bounded() -> None:
    d = desired(loan(requester={"email": "a@contoso.com", "name": "A\r\nBcc: x" + "y" * 400}))
    assert "\n" not in d.subject and "\r" not in d.subject and len(d.subject) == 255
    assert desired(loan(requester={"email": "a@contoso.com", "name": ""})).subject == "PR-1001 – a@contoso.com"


def test_outlook_fingerprint_is_what_the_outlook_side_computes_from_a_room_copy() -> None:
    d = desired(loan(start="2030-03-04T09:07:00+00:00", end="2030-03-04T10:01:00+00:00"))
    start, end = round_slot(d.start, d.end, 15)
    expected = DesiredLoan("UID", Requester("alice@contoso.com", "Alice"), start, end,
                           ("room-a@contoso.com", "room-b@contoso.com"))
    assert d.outlook_fingerprint("UID", 15) == expected.fingerprint()


def test_booking_fingerprint_follows_what_outlook_shows() -> None:
    base = booking_fingerprint(loan(), POLICY, ROOMS)
    assert base == booking_fingerprint(loan(version=7, updated_at="2030-03-02T00:00:00+00:00"), POLICY, ROOMS)
    assert base != booking_fingerprint(loan(status="pending"), POLICY, ROOMS)
    assert base != booking_fingerprint(loan(items=loan().items[:2]), POLICY, ROOMS)
    assert booking_fingerprint(loan(items=[]), POLICY, ROOMS) is None


# --- decisions ------------------------------------------------------------------------------------------------


def test_a_new_booking_loan_creates_an_event() -> None:
    assert decide(loan(), None) == CreateEvent(desired())


@pytest.mark.parametrize("status", ["cancelled", "refused", "returned"])
def test_a_closed_loan_never_linked_creates_nothing(status: str) -> None:
    assert isinstance(decide(loan(status=status), None), Nothing)


def test_a_loan_born_in_outlook_never_creates_an_event() -> None:
    assert isinstance(decide(loan(origin={"system": "outlook", "ref": "UID-9"}), None), Nothing)


def test_past_loans_and_loans_beyond_the_horizon_get_no_event() -> None:
    assert isinstance(decide(loan(start="2030-02-01T09:00:00+00:00", end="2030-02-01T10:00:00+00:00"), None), Nothing)
    far = decide(loan(start="2031-03-04T09:00:00+00:00", end="2031-03-04T10:00:00+00:00"), None)
    assert isinstance(far, Refuse) and far.refusal.rule == "dates"


def test_invalid_organiser_is_journaled_and_a_loan_without_rooms_is_ignored() -> None:
    policy = Policy("int-1", frozenset({"contoso.com"}), None)
    refused = decide(loan(requester={"email": "z@partner.example", "name": "Z"}), None, policy)
    assert isinstance(refused, Refuse) and refused.refusal.rule == "organizer"
    assert isinstance(decide(loan(items=[{"kind": "asset", "id": "a", "name": "A"}]), None), Nothing)


@pytest.mark.parametrize("version", [2, 3])
def test_a_version_the_bridge_already_has_is_its_own_echo_or_a_late_hook(version: int) -> None:
    assert isinstance(decide(loan(version=version, start="2030-03-09T09:00:00+00:00",
                                  end="2030-03-09T10:00:00+00:00"), booking_link()), Nothing)


def test_a_change_is_an_update_of_the_linked_event() -> None:
    moved = loan(version=4, start="2030-03-04T11:00:00+00:00", end="2030-03-04T12:00:00+00:00")
    assert decide(moved, booking_link()) == UpdateEvent(desired(moved), "EV-1")


def test_a_new_version_that_changes_nothing_outlook_shows_is_only_recorded() -> None:
    assert isinstance(decide(loan(version=4, updated_at="2030-03-02T00:00:00+00:00"), booking_link()), Record)


@pytest.mark.parametrize("status", ["cancelled", "refused"])
def test_cancel_or_refuse_deletes_the_event(status: str) -> None:
    assert decide(loan(version=4, status=status), booking_link()) == DeleteEvent(
        "alice@contoso.com", "EV-1", f"loan PR-1001 {status}")


def test_returned_loan_keeps_its_event() -> None:
    assert isinstance(decide(loan(version=4, status="returned"), booking_link()), Record)


def test_losing_every_imported_room_deletes_the_event() -> None:
    action = decide(loan(version=4, items=[{"kind": "asset", "id": "a", "name": "A"}]), booking_link())
    assert isinstance(action, DeleteEvent)


def test_a_new_requester_in_another_mailbox_replaces_the_event() -> None:
    bob = loan(version=4, requester={"email": "bob@contoso.com", "name": "Bob"})
    assert decide(bob, booking_link()) == ReplaceEvent(desired(bob), "alice@contoso.com", "EV-1")


def test_an_event_already_removed_is_not_recreated() -> None:
    assert isinstance(decide(loan(version=4), booking_link(status="cancelled")), Record)


def outlook_link(**changes) -> LinkState:
    link = LinkState(ical_uid="UID-9", loan_id="ln_1", origin="outlook", status="active", booking_version=3,
                     synced=Synced("alice@contoso.com", "Alice", loan().start, loan().end,
                                   ("room-a@contoso.com", "room-b@contoso.com")))
    return replace(link, **changes)


@pytest.mark.parametrize("status", ["cancelled", "refused"])
def test_a_loan_born_in_outlook_closed_in_the_booking_system_releases_the_rooms(status: str) -> None:
    assert isinstance(decide(loan(version=4, status=status), outlook_link()), ReleaseRooms)
    assert isinstance(decide(loan(version=4, status=status), outlook_link(status="cancelled")), Record)


def test_a_loan_born_in_outlook_changed_in_the_booking_system_is_journaled_not_written() -> None:
    moved = decide(loan(version=4, start="2030-03-04T11:00:00+00:00", end="2030-03-04T12:00:00+00:00"),
                   outlook_link())
    assert isinstance(moved, Record) and moved.journal == "skipped"
    same = decide(loan(version=4), outlook_link())
    assert isinstance(same, Record) and same.journal is None


# --- conflicts ------------------------------------------------------------------------------------------------


T = datetime(2030, 3, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(("outlook", "booking", "winner"), [
    (T + timedelta(seconds=1), T, "outlook"),
    (T, T + timedelta(microseconds=1), "booking"),
    (T, T, "booking"),  # a tie goes to the booking system
])
def test_resolve_conflict(outlook: datetime, booking: datetime, winner: str) -> None:
    assert resolve_conflict(outlook, booking) == winner


def update_and_link():
    moved = loan(version=4, start="2030-03-04T11:00:00+00:00", end="2030-03-04T12:00:00+00:00",
                 updated_at=T.isoformat())
    link = booking_link()
    action = decide(moved, link)
    assert isinstance(action, UpdateEvent)
    return moved, link, action


def test_no_conflict_when_outlook_is_as_last_synced() -> None:
    moved, link, action = update_and_link()
    assert settle_conflict(action, link, moved, OutlookSeen(link.outlook_hash, T + timedelta(hours=1))) == action


def test_both_changed_booking_newer_or_tie_rewrites_outlook_and_says_so() -> None:
    moved, link, action = update_and_link()
    for outlook_at in (T - timedelta(seconds=1), T):
        settled = settle_conflict(action, link, moved, OutlookSeen("other", outlook_at))
        assert isinstance(settled, UpdateEvent) and settled.desired == action.desired
        assert settled.conflict and "booking wins" in settled.conflict


def test_both_changed_outlook_newer_keeps_outlook_and_journals() -> None:
    moved, link, action = update_and_link()
    settled = settle_conflict(action, link, moved, OutlookSeen("other", T + timedelta(seconds=1)))
    assert isinstance(settled, Record) and settled.journal == "conflict" and "outlook wins" in settled.why


def test_event_deleted_in_outlook_is_not_recreated() -> None:
    moved, link, action = update_and_link()
    assert isinstance(settle_conflict(action, link, moved, None), Record)


def room_attendee(email: str, response: str = "accepted") -> Attendee:
    return Attendee(email, email, "resource", response)


def organiser_copy(**changes) -> OutlookEvent:
    data = {"id": "EV-1", "mailbox": "alice@contoso.com", "ical_uid": "UID-1", "subject": "PR-1001 – Alice",
                "organizer_email": "alice@contoso.com", "organizer_name": "Alice",
                "start": loan().start, "end": loan().end,
                "attendees": (room_attendee("room-a@contoso.com"), room_attendee("room-b@contoso.com"))}
    data.update(changes)
    return OutlookEvent(**data)


def test_organiser_copy_fingerprint_matches_what_the_bridge_recorded() -> None:
    link = booking_link()
    imported = {r.email for r in ROOMS}
    assert organiser_copy_fingerprint(organiser_copy(), POLICY, imported) == link.outlook_hash
    moved = organiser_copy(start=loan().start + timedelta(hours=1), end=loan().end + timedelta(hours=1))
    assert organiser_copy_fingerprint(moved, POLICY, imported) != link.outlook_hash
    declined = organiser_copy(attendees=(room_attendee("room-a@contoso.com"),
                                         room_attendee("room-b@contoso.com", "declined")))
    assert organiser_copy_fingerprint(declined, POLICY, imported) != link.outlook_hash
    assert organiser_copy_fingerprint(organiser_copy(is_cancelled=True), POLICY, imported) is None
    assert organiser_copy_fingerprint(organiser_copy(attendees=()), POLICY, imported) is None
