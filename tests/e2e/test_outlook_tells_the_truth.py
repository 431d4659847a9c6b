"""Issue 11 end to end: real `roombridge` processes (PostgreSQL + Redis, two workers) against the simulators over
HTTP. Refusals declined with the reason (1), a room declining a loan's event marked as a conflict, in the write's
answer or later (2), early return and no-show (3), all-day meetings within the room's working hours (5), sites by
building and by room list (7), signed failure alerts, once per problem, a client secret expiring within 30 days
among them (8). The details of each behaviour are in tests/flows/test_outlook_tells_the_truth.py; here the same
paths run for real."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.core.signing import SIGNATURE_HEADER, verify
from simulators.graph.errors import GraphError as SimGraphError
from simulators.sandbox import ROOMS, GraphHost, Sandbox
from tests.e2e.harness import WAIT, Bridges, SharedBridge, wait_for
from tests.e2e.two_way import wired

pytestmark = pytest.mark.slow
PARIS = ZoneInfo("Europe/Paris")
JUPITER, SATURNE = "salle-jupiter@contoso.com", "salle-saturne@contoso.com"
ALERT_SECRET = "e2e-alert-secret-0123456789"


@pytest.fixture
def shared(request: pytest.FixtureRequest, bridges: Bridges) -> SharedBridge:
    return bridges.get(request, "postgres+redis", workers=2)


@contextmanager
def integration_on(shared: SharedBridge, sandbox: Sandbox, **settings: Any) -> Iterator[dict[str, Any]]:
    """The sandbox wired both ways (reverse hooks aimed at the bridge) through an integration with `settings`."""
    with wired(shared, sandbox, **settings) as tw:
        yield {"id": tw.integration_id}


def day(hour: int, days: int = 2) -> datetime:
    d = (datetime.now(PARIS) + timedelta(days=days)).date()
    return datetime(d.year, d.month, d.day, hour, tzinfo=PARIS)


def organiser_event(sandbox: Sandbox, organiser: str, ical_uid: str | None = None) -> Any:
    backend = sandbox.graph.backend
    events = backend.exchange.events_of(backend.tenant.directory.require(organiser))
    return next((e for e in events if ical_uid is None or e.ical_uid == ical_uid), None)


def response_of(event: Any, room: str) -> str:
    return next(a.response for a in event.attendees if a.address.lower() == room)


def journal(shared: SharedBridge, integration: dict[str, Any]) -> list[dict[str, Any]]:
    return shared.bridge.api("GET", f"/api/integrations/{integration['id']}/journal",
                             params={"limit": 200}).json()["items"]


# --- 1 ---------------------------------------------------------------------------------------------------------------

def test_a_meeting_refused_by_the_booking_system_is_declined_with_its_reason(shared, graph_host: GraphHost) -> None:
    with Sandbox.start(host=graph_host) as sandbox, integration_on(shared, sandbox) as integration:
        sandbox.booking.block(JUPITER, day(9), day(11))
        meeting = sandbox.graph.create_meeting("alice@contoso.com", "Budget", day(10), day(11), rooms=[JUPITER],
                                               time_zone="Romance Standard Time")
        declines = sandbox.graph.backend.exchange.declines
        wait_for(lambda: declines, WAIT, "the room's decline")
        [(room, ical_uid, comment)] = declines
        assert room == JUPITER and ical_uid == meeting["iCalUId"] and "already booked" in comment
        assert response_of(organiser_event(sandbox, "alice@contoso.com"), JUPITER) == "declined"
        sandbox.settle()
        assert sandbox.booking.loans == {} and len(declines) == 1  # its own notification changed nothing
        assert any("declined in Outlook" in e["message"] for e in journal(shared, integration))


# --- 2 ---------------------------------------------------------------------------------------------------------------

def test_a_room_declining_a_loans_event_is_a_conflict_and_marks_the_loan(shared, graph_host: GraphHost) -> None:
    with Sandbox.start(host=graph_host) as sandbox, integration_on(
            shared, sandbox, conflict_note=True, exclude_subjects=["Outlook only*"]) as integration:
        # Saturne is taken in Outlook by a meeting the bridge does not sync; the booking system thinks it is free.
        sandbox.graph.create_meeting("bob@contoso.com", "Outlook only: interview", day(14), day(15),
                                     rooms=[SATURNE], time_zone="Romance Standard Time")
        sandbox.settle()
        loan = sandbox.booking.create_loan({"email": "alice@contoso.com", "name": "Alice Martin"},
                                           day(14), day(15), places=[SATURNE])
        try:
            wait_for(lambda: sandbox.booking.notes(loan.id), WAIT, "the conflict note on the loan")
        except AssertionError:
            raise AssertionError(f"no conflict note; journal: {journal(shared, integration)}; Bob: "
                                 f"{sandbox.graph.events('alice@contoso.com')}") from None
        [note] = sandbox.booking.notes(loan.id)
        assert note.kind == "conflict" and SATURNE in note.message
        # The note is sent before the journal entry is written (same job): wait for the entry, don't race it.
        wait_for(lambda: any(e["status"] == "conflict" and SATURNE in e["message"]
                             for e in journal(shared, integration)), WAIT, "the conflict in the journal")


def test_a_room_declining_a_loans_event_after_the_write_is_the_same_conflict(shared, graph_host: GraphHost) -> None:
    with Sandbox.start(host=graph_host) as sandbox, integration_on(
            shared, sandbox, conflict_note=True, exclude_subjects=["Outlook only*"]) as integration:
        sandbox.graph.create_meeting("bob@contoso.com", "Outlook only: interview", day(14), day(15),
                                     rooms=[SATURNE], time_zone="Romance Standard Time")
        sandbox.settle()
        exchange = sandbox.graph.backend.exchange
        exchange.defer_room_answers = True  # the booking assistants answer after the write, as Exchange does
        loan = sandbox.booking.create_loan({"email": "alice@contoso.com", "name": "Alice Martin"},
                                           day(14), day(15), places=[SATURNE])
        wait_for(lambda: any(e["action"] == "create" and e["loan_id"] == loan.id and e["status"] == "ok"
                             for e in journal(shared, integration)), WAIT, "the loan's event written")
        sandbox.settle()
        assert response_of(organiser_event(sandbox, "alice@contoso.com"), SATURNE) == "none"
        assert sandbox.booking.notes(loan.id) == []
        assert exchange.answer_rooms() == 1  # Saturne is taken in Outlook: it declines now
        try:
            wait_for(lambda: sandbox.booking.notes(loan.id), WAIT, "the conflict note on the loan")
        except AssertionError:
            raise AssertionError(f"no conflict note; journal: {journal(shared, integration)}") from None
        [note] = sandbox.booking.notes(loan.id)
        assert note.kind == "conflict" and SATURNE in note.message
        wait_for(lambda: any(e["status"] == "conflict" and SATURNE in e["message"]
                             for e in journal(shared, integration)), WAIT, "the conflict in the journal")
        sandbox.settle()
        assert len(sandbox.booking.notes(loan.id)) == 1
        assert sandbox.booking.loans[loan.id].status not in ("cancelled", "refused")  # said, not undone


# --- 3 ---------------------------------------------------------------------------------------------------------------

def _running_loan(sandbox: Sandbox) -> tuple[str, datetime, Any]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    loan = sandbox.booking.create_loan({"email": "alice@contoso.com", "name": "Alice Martin"}, start,
                                       start + timedelta(hours=4), places=[JUPITER])
    event = wait_for(lambda: organiser_event(sandbox, "alice@contoso.com"), WAIT, "the loan's event")
    return loan.id, start, event


def test_an_early_return_frees_the_room_in_outlook(shared, graph_host: GraphHost) -> None:
    with Sandbox.start(host=graph_host) as sandbox, integration_on(shared, sandbox):
        loan_id, start, event = _running_loan(sandbox)
        sandbox.booking.return_loan(loan_id, returned_at=start + timedelta(hours=1, minutes=7))
        wanted = start + timedelta(hours=1, minutes=15)
        wait_for(lambda: organiser_event(sandbox, "alice@contoso.com").end == wanted, WAIT, "the event shortened")
        backend = sandbox.graph.backend
        copy = next(e for e in backend.exchange.events_of(backend.tenant.directory.require(JUPITER))
                    if e.ical_uid == event.ical_uid)
        assert copy.end == wanted and not copy.is_cancelled  # the room shows free after the return


def test_a_no_show_frees_the_room_in_outlook(shared, graph_host: GraphHost) -> None:
    with Sandbox.start(host=graph_host) as sandbox, integration_on(shared, sandbox):
        loan_id, start, event = _running_loan(sandbox)
        closed = sandbox.booking.no_show(loan_id).updated_at
        wait_for(lambda: organiser_event(sandbox, "alice@contoso.com").end < start + timedelta(hours=4), WAIT,
                 "the event shortened")
        end = organiser_event(sandbox, "alice@contoso.com").end
        assert closed <= end < closed + timedelta(minutes=15)


# --- 5 ---------------------------------------------------------------------------------------------------------------

def test_an_all_day_meeting_is_a_full_day_loan_and_can_be_skipped(shared, graph_host: GraphHost) -> None:
    with Sandbox.start(host=graph_host) as sandbox, integration_on(shared, sandbox) as integration:
        midnight = day(0, days=3)
        sandbox.graph.create_meeting("alice@contoso.com", "Offsite", midnight, midnight + timedelta(days=1),
                                     rooms=[JUPITER], time_zone="Romance Standard Time", is_all_day=True)
        [loan] = wait_for(lambda: list(sandbox.booking.loans.values()), WAIT, "the all-day loan")
        # The room's day in Paris, within its working hours (the simulator's rooms work 08:00–17:00, Monday–Friday).
        if midnight.weekday() < 5:
            assert (loan.start, loan.end) == (midnight + timedelta(hours=8), midnight + timedelta(hours=17))
        else:
            assert (loan.start, loan.end) == (midnight, midnight + timedelta(days=1))
        r = shared.bridge.api("PATCH", f"/api/integrations/{integration['id']}", json={"all_day": "skip"})
        assert r.status_code == 200 and r.json()["all_day"] == "skip"
        sandbox.graph.create_meeting("bob@contoso.com", "Seminar", midnight + timedelta(days=1),
                                     midnight + timedelta(days=2), rooms=[SATURNE],
                                     time_zone="Romance Standard Time", is_all_day=True)
        wait_for(lambda: any(e.get("rule") == "all_day" for e in journal(shared, integration)), WAIT,
                 "the all-day meeting skipped")
        assert len(sandbox.booking.loans) == 1


def test_an_all_day_meeting_keeps_to_the_rooms_working_hours(shared, graph_host: GraphHost) -> None:
    hours = {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
             "startTime": "07:30:00.0000000", "endTime": "19:00:00.0000000",
             "timeZone": {"name": "Romance Standard Time"}}
    rooms = [dict(r, working_hours=hours) if r["email"] == JUPITER else r for r in ROOMS]
    with Sandbox.start(rooms, host=graph_host) as sandbox, integration_on(shared, sandbox):
        midnight = day(0, days=4)
        # Two days: from the first day's opening to the second day's closing, Paris wall-clock.
        sandbox.graph.create_meeting("alice@contoso.com", "Workshop", midnight, midnight + timedelta(days=2),
                                     rooms=[JUPITER], time_zone="Romance Standard Time", is_all_day=True)
        [loan] = wait_for(lambda: list(sandbox.booking.loans.values()), WAIT, "the all-day loan")
        assert (loan.start, loan.end) == (midnight + timedelta(hours=7, minutes=30),
                                          midnight + timedelta(days=1, hours=19))
        assert loan.start.astimezone(PARIS).hour == 7 and loan.end.astimezone(PARIS).hour == 19


# --- 7 ---------------------------------------------------------------------------------------------------------------

def test_an_integration_limited_to_a_building_serves_only_that_site(shared, graph_host: GraphHost) -> None:
    rooms = [*ROOMS, dict(email="salle-lyon@contoso.com", display_name="Salle Lyon", capacity=8, building="Lyon",
                          floor_number=1, tags=[], time_zone="Romance Standard Time")]
    with Sandbox.start(rooms, host=graph_host) as sandbox, integration_on(shared, sandbox,
                                                                          buildings=["siège"]) as integration:
        imported = shared.bridge.api("GET", f"/api/integrations/{integration['id']}/rooms").json()["items"]
        assert sorted(r["email"] for r in imported if r["active"]) == [JUPITER, SATURNE]
        sandbox.graph.create_meeting("alice@contoso.com", "Lyon", day(9), day(10), rooms=["salle-lyon@contoso.com"],
                                     time_zone="Romance Standard Time")
        sandbox.graph.create_meeting("alice@contoso.com", "Paris", day(9), day(10), rooms=[JUPITER],
                                     time_zone="Romance Standard Time")
        wait_for(lambda: sandbox.booking.loans, WAIT, "the Paris loan")
        sandbox.settle()
        [loan] = sandbox.booking.loans.values()
        assert [i.place_email for i in loan.items] == [JUPITER]
        assert "salle-lyon@contoso.com" not in sandbox.booking.places or not sandbox.booking.places[
            "salle-lyon@contoso.com"].active


def test_an_integration_limited_to_a_room_list_imports_and_subscribes_only_its_rooms(shared,
                                                                                     graph_host: GraphHost) -> None:
    lyon = ["salle-rhone@contoso.com", "salle-saone@contoso.com"]
    rooms = [*ROOMS, *(dict(email=e, display_name=e.split("@")[0], capacity=8, building="Lyon", floor_number=1,
                            tags=[], time_zone="Romance Standard Time") for e in lyon)]
    with Sandbox.start(rooms, host=graph_host) as sandbox:
        sandbox.graph.add_room_list("paris-rooms@contoso.com", "Paris", [JUPITER, SATURNE])
        sandbox.graph.add_room_list("lyon-rooms@contoso.com", "Lyon", lyon)
        with integration_on(shared, sandbox, room_lists=["lyon-rooms@contoso.com"]) as integration:
            assert shared.bridge.api("GET", f"/api/integrations/{integration['id']}").json()["room_lists"] == [
                "lyon-rooms@contoso.com"]
            imported = shared.bridge.api("GET", f"/api/integrations/{integration['id']}/rooms").json()["items"]
            assert sorted(r["email"] for r in imported if r["active"]) == lyon
            assert sorted(sandbox.booking.places) == lyon
            subscribed = {sandbox.graph.user_id(e): e for e in [*lyon, JUPITER, SATURNE]}

            def resources() -> list[str]:
                return sorted(next((e for i, e in subscribed.items() if i in s["resource"]), s["resource"])
                              for s in sandbox.graph.subscriptions.values())
            wait_for(lambda: resources() == lyon, WAIT, "the Lyon rooms subscribed, and only them")
            sandbox.graph.create_meeting("alice@contoso.com", "Paris", day(9), day(10), rooms=[JUPITER],
                                         time_zone="Romance Standard Time")
            sandbox.graph.create_meeting("alice@contoso.com", "Lyon", day(9), day(10), rooms=[lyon[0]],
                                         time_zone="Romance Standard Time")
            wait_for(lambda: sandbox.booking.loans, WAIT, "the Lyon loan")
            sandbox.settle()
            [loan] = sandbox.booking.loans.values()
            assert [i.place_email for i in loan.items] == [lyon[0]]
            assert resources() == lyon
            # Another site by PATCH (a display name this time): the import runs again and swaps the rooms.
            r = shared.bridge.api("PATCH", f"/api/integrations/{integration['id']}", json={"room_lists": ["paris"]})
            assert r.status_code == 200 and r.json()["room_lists"] == ["paris"]

            def active() -> list[str]:
                items = shared.bridge.api("GET", f"/api/integrations/{integration['id']}/rooms").json()["items"]
                return sorted(room["email"] for room in items if room["active"])
            wait_for(lambda: active() == [JUPITER, SATURNE], WAIT, "the Paris rooms, and only them")
            wait_for(lambda: resources() == [JUPITER, SATURNE], WAIT, "the Paris rooms subscribed, and only them")
            assert not any(sandbox.booking.places[e].active for e in lyon)


# --- 8 ---------------------------------------------------------------------------------------------------------------

class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.received.append((json.loads(body), self.headers.get(SIGNATURE_HEADER, ""), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/roombridge-alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_rooms_fallen_back_to_polling_send_one_signed_alert(shared, graph_host: GraphHost, receiver: Receiver,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rooms = [*ROOMS, dict(email="salle-mars@contoso.com", display_name="Salle Mars", capacity=4, building="Siège",
                          floor_number=1, tags=[], time_zone="Romance Standard Time")]
    with Sandbox.start(rooms, host=graph_host) as sandbox:
        refused = {sandbox.graph.user_id(SATURNE), sandbox.graph.user_id("salle-mars@contoso.com")}
        subs = sandbox.graph.backend.subscriptions
        create = subs.create

        async def refusing(payload, app):  # type: ignore[no-untyped-def]  # an access policy excluding two rooms
            if any(r in payload.get("resource", "") for r in refused):
                raise SimGraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            return await create(payload, app)

        monkeypatch.setattr(subs, "create", refusing)
        r = shared.bridge.api("POST", "/api/integrations", json=sandbox.integration(
            alert_url=receiver.url, alert_secret=ALERT_SECRET))
        assert r.status_code == 201, r.text
        integration = r.json()
        assert "alert_secret" not in integration and integration["alert_secret_set"] is True
        try:
            def polled() -> bool:
                items = shared.bridge.api("GET", f"/api/integrations/{integration['id']}/rooms").json()["items"]
                return sum(1 for room in items if room.get("polling")) == 2
            wait_for(polled, WAIT, "two rooms polled")
            wait_for(lambda: receiver.received, WAIT, "the alert")
            sandbox.settle()
            [(message, signature, body)] = receiver.received  # two rooms fell back: one alert within the hour
            verify(ALERT_SECRET, body, signature)
            assert message["kind"] == "polling" and message["integration"]["id"] == integration["id"]
            assert ALERT_SECRET not in body.decode() and sandbox.client_secret not in body.decode()
        finally:
            wait_for(lambda: shared.bridge.api("PATCH", f"/api/integrations/{integration['id']}",
                                               json={"enabled": False}).status_code == 200, WAIT, "disabled")


def test_a_client_secret_expiring_within_30_days_sends_one_signed_alert(shared, graph_host: GraphHost,
                                                                         receiver: Receiver) -> None:
    with Sandbox.start(host=graph_host) as sandbox:
        end = (datetime.now(UTC) + timedelta(days=9)).replace(microsecond=0)
        sandbox.graph.set_secret_end(sandbox.client_id, end)
        r = shared.bridge.api("POST", "/api/integrations", json=sandbox.integration(
            alert_url=receiver.url, alert_secret=ALERT_SECRET))
        assert r.status_code == 201, r.text
        integration = r.json()
        try:
            wait_for(lambda: receiver.received, WAIT, "the secret-expiry alert")
            [(message, signature, body)] = receiver.received
            verify(ALERT_SECRET, body, signature)
            assert message["kind"] == "secret_expiring" and message["integration"]["id"] == integration["id"]
            assert message["details"]["expires_at"] == end.isoformat()
            assert sandbox.client_secret not in body.decode() and ALERT_SECRET not in body.decode()
            # The next import (a settings change) reads the same end date: the alert is not sent again this hour.
            def imports() -> set[tuple[str, str]]:
                return {(e["id"], e["last_at"]) for e in journal(shared, integration)
                        if e["direction"] == "rooms" and e["action"] == "import" and e["status"] == "ok"}
            first = wait_for(imports, WAIT, "the first import")
            r = shared.bridge.api("PATCH", f"/api/integrations/{integration['id']}", json={"ignore_tags": "x"})
            assert r.status_code == 200
            wait_for(lambda: imports() - first, WAIT, "the second import")
            sandbox.settle()
            assert len(receiver.received) == 1
        finally:
            wait_for(lambda: shared.bridge.api("PATCH", f"/api/integrations/{integration['id']}",
                                               json={"enabled": False}).status_code == 200, WAIT, "disabled")


def test_a_secret_graph_does_not_report_sends_no_alert(shared, graph_host: GraphHost, receiver: Receiver) -> None:
    with Sandbox.start(host=graph_host) as sandbox:
        sandbox.graph.set_secret_end(sandbox.client_id, datetime.now(UTC) + timedelta(days=3))
        sandbox.graph.backend.issuer.change(sandbox.client_id, denied=frozenset({"Application.Read.All"}))
        r = shared.bridge.api("POST", "/api/integrations", json=sandbox.integration(
            alert_url=receiver.url, alert_secret=ALERT_SECRET))
        assert r.status_code == 201, r.text
        integration = r.json()
        try:
            wait_for(lambda: any(e["direction"] == "rooms" and e["action"] == "import" and e["status"] == "ok"
                                 for e in journal(shared, integration)), WAIT, "the import")
            sandbox.settle()
            assert receiver.received == []  # 403 on the application: not reported, no alert, no error
            assert not [e for e in journal(shared, integration) if e["status"] == "error"]
        finally:
            wait_for(lambda: shared.bridge.api("PATCH", f"/api/integrations/{integration['id']}",
                                               json={"enabled": False}).status_code == 200, WAIT, "disabled")
