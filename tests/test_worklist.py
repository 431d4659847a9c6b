"""The admin's work list (issue 10.2-10.4), against the simulated tenant and booking system over HTTP, on SQLite +
in-process queue and on PostgreSQL + Redis (the `live` bridge of tests/test_rooms_import.py, plus a real dramatiq
worker with the failure policy):

- retry: a change the failure policy gave up on runs again through the job a hook would run, and goes through;
- mark-handled: the change is then left alone by the hook's job and by the booking-side reconciliation, until a newer
  change of the loan arrives;
- test-connection: each failure (wrong secret, expired secret, unknown tenant, consent missing, a missing Graph
  permission, booking key refused) gives its own message, and the last result is kept;
- stats count what the journal holds; the journal's filters and cursor paging.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlmodel import Session, select
from starlette.testclient import TestClient

from app.platform.db import session_scope
from app.platform.migrate import upgrade
from app.platform.models import Integration, JournalEntry, Link
from app.sync import journal
from app.web.app import create_app
from app.workers import actors
from app.workers.broker import start_worker
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.test_rooms_import import JUPITER, SATURNE, Live, live_fixture, stack_urls_fixture  # noqa: F401 - fixtures

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALICE = {"email": "alice@contoso.com", "name": "Alice Martin"}
DEADLINE_S = 120.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def api(live: Live, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, live.base_url + path, headers=AUTH, timeout=60, **kw)


def slot(days: int, hour: int) -> tuple[datetime, datetime]:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


def deny(live: Live, *permissions: str) -> None:
    live.sandbox.graph.backend.issuer.change(live.sandbox.client_id, denied=frozenset(permissions))


def link_of(live: Live, loan_id: str) -> Link | None:
    with Session(live.rt.engine) as s:
        return s.exec(select(Link).where(Link.loan_id == loan_id)).first()


def entry(live: Live, entry_id: str) -> JournalEntry:
    with Session(live.rt.engine) as s:
        row = s.get(JournalEntry, entry_id)
        assert row is not None
        return row


def error_of(live: Live, loan_id: str) -> JournalEntry | None:
    with Session(live.rt.engine) as s:
        return s.exec(select(JournalEntry).where(JournalEntry.loan_id == loan_id,
                                                 JournalEntry.status == "error")).first()


@pytest.fixture
def worked(live: Live) -> Iterator[Live]:
    """`live` with its rooms imported and subscribed, and a real worker (the failure policy) on its broker."""
    live.import_and_subscribe()
    live.clear()
    worker = start_worker(live.broker, 2)
    live.worker = worker  # type: ignore[attr-defined]
    try:
        yield live
    finally:
        worker.stop()


def settle(live: Live) -> None:
    """Every job enqueued so far has run (the queues empty, then the worker idle). A job that failed is not an error
    here: the tests look at what it did."""
    extra = {"fail_fast": False} if isinstance(live.broker, StubBroker) else {}
    for queue in (actors.process_loan.queue_name, actors.reconcile_loans.queue_name):
        live.broker.join(queue, timeout=int(DEADLINE_S * 1000), **extra)
    live.worker.join()  # type: ignore[attr-defined]


def test_retry_runs_the_change_again_and_it_goes_through(worked: Live) -> None:
    live = worked
    deny(live, "Calendars.ReadWrite")  # the event write is refused: the job fails for good (GraphAuthError)
    loan = live.sandbox.booking.create_loan(ALICE, *slot(3, 9), places=[JUPITER])
    actors.process_loan.send(live.integration_id, loan.id)  # as the loan's hook would
    failed = wait_for("the failure journaled", lambda: error_of(live, loan.id))
    assert failed.direction == "booking_to_outlook" and failed.attempts == 1
    assert link_of(live, loan.id) is None or link_of(live, loan.id).organizer_event_id is None

    listed = api(live, "GET", f"/api/integrations/{live.integration_id}/journal?status=error").json()["items"]
    assert [e["id"] for e in listed] == [failed.id]
    assert listed[0]["outcome"] == "error" and listed[0]["loan_id"] == loan.id and "403" in listed[0]["message"]

    deny(live)  # the admin fixed the permission
    r = api(live, "POST", f"/api/journal/{failed.id}/retry")
    assert r.status_code == 202 and r.json() == {"status": "queued", "jobs": 1}
    wait_for("the retried change written to Outlook",
             lambda: (link := link_of(live, loan.id)) is not None and link.organizer_event_id)
    wait_for("the entry resolved", lambda: entry(live, failed.id).status == journal.RESOLVED)
    assert api(live, "GET", f"/api/integrations/{live.integration_id}/journal?status=error").json()["items"] == []


def test_mark_handled_is_never_retried_until_a_newer_change(worked: Live) -> None:
    live = worked
    deny(live, "Calendars.ReadWrite")
    loan = live.sandbox.booking.create_loan(ALICE, *slot(4, 10), places=[JUPITER])
    actors.process_loan.send(live.integration_id, loan.id)
    failed = wait_for("the failure journaled", lambda: error_of(live, loan.id))

    r = api(live, "POST", f"/api/journal/{failed.id}/mark-handled")
    assert r.status_code == 200 and r.json()["outcome"] == "handled" and r.json()["handled_at"]
    deny(live)  # the change could go through now: it must not, the admin said it is handled
    actors.process_loan.send(live.integration_id, loan.id)  # a late hook of the same change
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    actors.reconcile_loans.send(live.integration_id, since)  # booking-side reconciliation / backfill
    settle(live)
    link = link_of(live, loan.id)
    assert link is None or link.organizer_event_id is None
    assert entry(live, failed.id).status == journal.HANDLED

    live.sandbox.booking.update_loan(loan.id, end=slot(4, 10)[1] + timedelta(minutes=30))  # a newer change
    actors.process_loan.send(live.integration_id, loan.id)
    wait_for("the newer change written to Outlook",
             lambda: (link := link_of(live, loan.id)) is not None and link.organizer_event_id)


def test_retry_and_mark_handled_of_unknown_entries(live: Live) -> None:
    for path in ("/api/journal/nope/retry", "/api/journal/nope/mark-handled", "/api/journal/a%00b/retry"):
        r = api(live, "POST", path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with session_scope(live.rt.engine) as s:
        note = journal.record(s, live.integration_id, "connection", "test", "ok", "{}")
        s.flush()
        note_id = note.id
    r = api(live, "POST", f"/api/journal/{note_id}/retry")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_retryable"


# --- test-connection ---------------------------------------------------------------------------------------------


def checks_of(live: Live, **body: Any) -> dict[str, dict[str, str]]:
    r = api(live, "POST", f"/api/integrations/{live.integration_id}/test-connection", json=body)
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()["checks"]}


def patch(live: Live, **fields: Any) -> None:
    r = api(live, "PATCH", f"/api/integrations/{live.integration_id}", json=fields)
    assert r.status_code == 200, r.text


def test_connection_checks_each_thing_and_explains_each_failure(live: Live) -> None:
    live.import_and_subscribe()
    issuer = live.sandbox.graph.backend.issuer
    client_id = live.sandbox.client_id

    ok = checks_of(live, write=True)
    assert {n: c["status"] for n, c in ok.items()} == {
        "token": "ok", "list_rooms": "ok", "read_calendar": "ok", "mailbox_settings": "ok", "write_event": "ok",
        "booking_reachable": "ok", "booking_key": "ok", "default_store": "ok"}
    assert checks_of(live)["write_event"]["status"] == "skipped"  # the write probe only when asked

    messages: dict[str, str] = {}
    patch(live, client_secret="not-the-secret")
    failed = checks_of(live)["token"]
    assert failed["status"] == "failed" and "secret is wrong" in failed["detail"] and "7000215" in failed["detail"]
    messages["wrong secret"] = failed["detail"]
    patch(live, client_secret=live.sandbox.client_secret)

    issuer.change(client_id, secret_expired=True)
    failed = checks_of(live)["token"]
    assert "expired" in failed["detail"] and "new client secret" in failed["fix"]
    messages["expired"] = failed["detail"]
    issuer.change(client_id, secret_expired=False, consented=False)
    failed = checks_of(live)["token"]
    assert "consent" in failed["detail"] and "Grant admin consent" in failed["fix"]
    messages["consent"] = failed["detail"]
    issuer.change(client_id, consented=True)

    tenant = live.sandbox.tenant_id
    patch(live, tenant_id="99999999-9999-4999-8999-999999999999")
    failed = checks_of(live)["token"]
    assert "tenant does not exist" in failed["detail"] and "tenant_id" in failed["fix"]
    messages["tenant"] = failed["detail"]
    patch(live, tenant_id=tenant)

    for permission, check in (("MailboxSettings.Read", "mailbox_settings"), ("Place.Read.All", "list_rooms"),
                              ("Calendars.Read", "read_calendar"), ("Calendars.ReadWrite", "write_event")):
        deny(live, permission)
        result = checks_of(live, write=True)
        failed = result[check]
        assert failed["status"] == "failed" and permission in failed["detail"] and permission in failed["fix"]
        assert [n for n, c in result.items() if c["status"] == "failed"] == [check]
        messages[permission] = failed["detail"]
    deny(live)

    patch(live, booking_api_key="not-the-key")
    result = checks_of(live)
    assert result["booking_key"]["status"] == "failed" and "refused the API key" in result["booking_key"]["detail"]
    messages["booking key"] = result["booking_key"]["detail"]
    assert "not-the-key" not in str(result)

    assert len(set(messages.values())) == len(messages), messages  # each failure its own message
    kept = api(live, "GET", f"/api/integrations/{live.integration_id}/test-connection")
    assert kept.status_code == 200 and {c["name"]: c for c in kept.json()["checks"]} == result
    assert kept.json()["ok"] is False


def test_connection_checks_the_default_store_and_skips_it_on_the_first_contract(live: Live) -> None:
    """Booking API reachable, key accepted, default store exists (GET /v1/stores/{id}, optional): each outcome."""
    booking = live.sandbox.booking
    found = checks_of(live)["default_store"]
    assert found["status"] == "ok" and booking.store_id in found["detail"]

    patch(live, default_store_id="no-such-store")
    unknown = checks_of(live)["default_store"]
    assert unknown["status"] == "failed" and "no store 'no-such-store'" in unknown["detail"]
    assert "default_store_id" in unknown["fix"]

    booking.stores_api = False  # a booking system of the first contract: the route is absent
    try:
        result = checks_of(live)
    finally:
        booking.stores_api = True
    old = result["default_store"]
    assert old["status"] == "skipped" and "cannot check" in old["detail"] and "GET /v1/stores/{id}" in old["detail"]
    assert result["booking_key"]["status"] == "ok"

    patch(live, default_store_id=booking.store_id, booking_api_key="not-the-key")
    refused = checks_of(live)
    assert refused["booking_key"]["status"] == "failed"
    assert refused["default_store"]["status"] == "skipped" and "API key" in refused["default_store"]["detail"]
    assert len({found["detail"], unknown["detail"], old["detail"], refused["default_store"]["detail"]}) == 4


# --- the meeting's subject in the journal ------------------------------------------------------------------------


def _entries_of(live: Live, ical_uid: str) -> list[JournalEntry]:
    with Session(live.rt.engine) as s:
        return list(s.exec(select(JournalEntry).where(JournalEntry.ical_uid == ical_uid)).all())


def _sync_meeting(live: Live, subject: str, days: int, **kw: Any) -> str:
    """A meeting made in Outlook, its notification's job run here; returns its iCalUId."""
    meeting = live.sandbox.graph.create_meeting(ALICE["email"], subject, *slot(days, 10), rooms=[JUPITER], **kw)
    wait_for("its notification", lambda: live.count("process_room_event") >= 1)
    live.run("process_room_event")
    assert _entries_of(live, meeting["iCalUId"]), "the change was journaled"
    return str(meeting["iCalUId"])


def test_the_journal_keeps_the_organisers_subject_only_when_the_integration_allows_it(live: Live) -> None:
    live.import_and_subscribe()
    live.clear()
    view = api(live, "GET", f"/api/integrations/{live.integration_id}").json()
    assert view["journal_subjects"] is False  # off by default: a subject is personal data
    hidden = _sync_meeting(live, "Budget 2027", 2)
    assert [e.subject for e in _entries_of(live, hidden)] == [None]

    patch(live, journal_subjects=True)
    shown = _sync_meeting(live, "Comité de direction", 3)
    entries = _entries_of(live, shown)
    # The organiser's words, not the room copy's subject (Exchange puts the organiser's name there).
    assert {e.subject for e in entries} == {"Comité de direction"} and entries[0].status == "ok"
    listed = api(live, "GET", f"/api/integrations/{live.integration_id}/journal?direction=outlook_to_booking").json()
    by_uid = {e["ical_uid"]: e for e in listed["items"]}
    assert by_uid[shown]["subject"] == "Comité de direction" and by_uid[hidden]["subject"] is None
    private = _sync_meeting(live, "Entretien annuel", 4, sensitivity="private")
    assert [e.subject for e in _entries_of(live, private)] == [None]  # a private meeting's subject is never kept

    r = api(live, "PATCH", f"/api/integrations/{live.integration_id}", json={"journal_subjects": False})
    assert r.status_code == 200 and r.json()["subjects_cleared"] == len(entries)
    assert {e.subject for e in _entries_of(live, shown)} == {None}  # turned off: what was kept is forgotten
    r = api(live, "PATCH", f"/api/integrations/{live.integration_id}", json={"journal_subjects": "yes"})
    assert r.status_code == 422


# --- backfill preview ------------------------------------------------------------------------------------------


def test_backfill_preview_counts_the_meetings_and_loans_a_date_covers(live: Live) -> None:
    live.import_and_subscribe()
    live.clear()
    graph, booking = live.sandbox.graph, live.sandbox.booking
    today = datetime.now(UTC).date()
    graph.create_meeting(ALICE["email"], "Comité", *slot(2, 9), rooms=[JUPITER, SATURNE])  # 1 meeting, 2 events
    graph.create_meeting(ALICE["email"], "Point", *slot(3, 10), rooms=[JUPITER])
    graph.create_meeting(ALICE["email"], "Ancien", *slot(-10, 10), rooms=[JUPITER])  # before the date
    booking.create_loan(ALICE, *slot(4, 9), places=[JUPITER])
    booking.create_loan(ALICE, *slot(5, 9), places=[SATURNE])

    since = (today - timedelta(days=3)).isoformat()
    r = api(live, "GET", f"/api/integrations/{live.integration_id}/backfill/preview?since={since}")
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["rooms"], p["events"], p["meetings"], p["meetings_linked"], p["loans"]) == (2, 3, 2, 0, 2), p
    assert p["since"] == since and p["unreadable_rooms"] == [] and p["loans_error"] is None
    assert f"From {since}: 2 meeting(s) (3 room event(s)" in p["summary"] and "2 loan(s)" in p["summary"]
    older = api(live, "GET", f"/api/integrations/{live.integration_id}/backfill/preview?since="
                f"{(today - timedelta(days=12)).isoformat()}").json()
    assert (older["events"], older["meetings"]) == (4, 3)  # an earlier date covers the older meeting too
    assert live.count("reconcile_room") == live.count("reconcile_loans") == 0  # a preview enqueues nothing

    live.sandbox.booking.down()  # the booking system unreachable: meetings still counted, loans not
    try:
        p = api(live, "GET", f"/api/integrations/{live.integration_id}/backfill/preview?since={since}").json()
    finally:
        live.sandbox.booking.up()
    assert p["meetings"] == 2 and p["loans"] is None and "Unavailable" in p["loans_error"]
    assert "loans not counted" in p["summary"]

    for bad in ("", "yesterday", "2026-02-30", "1999-12-31", "20260101"):
        r = api(live, "GET", f"/api/integrations/{live.integration_id}/backfill/preview?since={bad}")
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "since", bad
    assert api(live, "GET", f"/api/integrations/{live.integration_id}/backfill/preview").status_code == 422
    assert api(live, "GET", f"/api/integrations/nope/backfill/preview?since={since}").status_code == 404
    patch(live, enabled=False)
    r = api(live, "GET", f"/api/integrations/{live.integration_id}/backfill/preview?since={since}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "disabled"


# --- stats and the journal's filters -------------------------------------------------------------------------


@pytest.fixture
def client(database_url):
    upgrade(database_url)
    with TestClient(create_app(make_settings(database_url), run_worker=False), raise_server_exceptions=False) as c:
        yield c


def _integration(client: TestClient) -> str:
    r = client.post("/api/integrations", headers=AUTH, json=dict(
        name="Stats", tenant_domain="contoso.com", tenant_id="11111111-2222-3333-4444-555555555555",
        client_id="66666666-7777-8888-9999-000000000000", client_secret="s", booking_base_url="https://b.example.com",
        booking_api_key="k", default_store_id="store-1", enabled=False))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _write(client: TestClient, integration_id: str, rows: list[tuple[datetime, str, str, str]]) -> None:
    from app.sync.runtime import current

    with session_scope(current().engine) as s:
        for at, direction, status, action in rows:
            e = journal.record(s, integration_id, direction, action, status, "x",
                               loan_id=f"ln-{at.timestamp()}-{direction}-{status}-{action}")
            e.at = e.last_at = at
            s.add(e)


def test_stats_count_what_the_journal_holds(client: TestClient) -> None:
    iid = _integration(client)
    other = _integration(client)
    monday = datetime(2026, 11, 23, 9, tzinfo=UTC)
    rows = [
        (monday, "outlook_to_booking", "ok", "create"),
        (monday + timedelta(hours=2), "outlook_to_booking", "ok", "update"),
        (monday + timedelta(hours=3), "outlook_to_booking", "invalid", "skip"),
        (monday + timedelta(days=1), "booking_to_outlook", "ok", "create"),
        (monday + timedelta(days=1), "booking_to_outlook", "error", "gave_up"),
        (monday + timedelta(days=2), "outlook_to_booking", "error", "wait"),
        (monday + timedelta(days=7), "outlook_to_booking", "skipped", "skip"),
    ]
    _write(client, iid, rows)
    _write(client, other, rows[:3])  # another integration's entries are not counted
    r = client.get(f"/api/integrations/{iid}/stats", headers=AUTH,
                   params={"from": "2026-11-23", "to": "2026-12-07", "bucket": "day"})
    assert r.status_code == 200, r.text
    days = {p["start"]: p for p in r.json()["periods"]}
    assert len(days) == 14
    assert days["2026-11-23"]["counts"] == {"outlook_to_booking": {"synced": 2, "invalid": 1}}
    assert days["2026-11-24"]["counts"] == {"booking_to_outlook": {"synced": 1, "error": 1}}
    assert days["2026-11-25"]["counts"] == {"outlook_to_booking": {"waiting": 1}}
    assert days["2026-11-30"]["counts"] == {"outlook_to_booking": {"skipped": 1}}
    assert sum(p["total"] for p in days.values()) == len(rows)
    weeks = client.get(f"/api/integrations/{iid}/stats", headers=AUTH,
                       params={"from": "2026-11-23", "to": "2026-12-07", "bucket": "week"}).json()
    assert [(p["start"], p["total"]) for p in weeks["periods"]] == [("2026-11-23", 6), ("2026-11-30", 1)]
    backlog = weeks["backlog"]
    assert backlog["open_errors"] == 1 and backlog["waiting"] == 1
    assert backlog["oldest_waiting_at"].startswith("2026-11-25T09:00")
    for bad in ({"bucket": "month"}, {"from": "yesterday"}, {"from": "2026-12-07", "to": "2026-11-23"},
                {"from": "2020-01-01", "to": "2026-01-01"}):
        r = client.get(f"/api/integrations/{iid}/stats", headers=AUTH, params=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid", bad


def test_journal_filters_and_cursor_paging(client: TestClient) -> None:
    iid = _integration(client)
    base = datetime(2026, 11, 1, 8, tzinfo=UTC)
    _write(client, iid, [(base + timedelta(minutes=i), "outlook_to_booking" if i % 2 else "booking_to_outlook",
                          "ok" if i % 3 else "error", "create") for i in range(25)])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/integrations/{iid}/journal", headers=AUTH, params=params).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25
    errors = client.get(f"/api/integrations/{iid}/journal", headers=AUTH,
                        params={"status": "error", "direction": "booking_to_outlook"}).json()["items"]
    assert {e["at"][:16] for e in errors} == {(base + timedelta(minutes=i)).isoformat()[:16]
                                              for i in range(25) if i % 3 == 0 and i % 2 == 0}
    ranged = client.get(f"/api/integrations/{iid}/journal", headers=AUTH,
                        params={"from": (base + timedelta(minutes=5)).isoformat(),
                                "to": (base + timedelta(minutes=8)).isoformat()}).json()["items"]
    assert len(ranged) == 3
    for bad in ({"limit": 0}, {"status": "nope"}, {"cursor": "!!"}, {"from": "x"}):
        r = client.get(f"/api/integrations/{iid}/journal", headers=AUTH, params=bad)
        assert r.status_code == 422, bad


def test_journal_retention_purges_old_entries(client: TestClient) -> None:
    from app.sync.runtime import current

    iid = _integration(client)
    now = datetime.now(UTC)
    _write(client, iid, [(now - timedelta(days=91), "rooms", "ok", "import"),
                         (now - timedelta(days=89), "rooms", "ok", "import")])
    with session_scope(current().engine) as s:
        assert journal.purge(s, current().settings.journal_retention_days) == 1
    with Session(current().engine) as s:
        assert len(s.exec(select(JournalEntry).where(JournalEntry.integration_id == iid)).all()) == 1
        assert s.get(Integration, iid) is not None


# --- lifecycle -----------------------------------------------------------------------------------------------------


def graph_subscriptions(live: Live, integration_id: str) -> list[dict[str, Any]]:
    with Session(live.rt.engine) as s:
        integration = s.get(Integration, integration_id)
    return list(live.rt.run(live.rt.graph(integration).list_subscriptions()))


def test_disabling_deletes_the_subscriptions_and_deleting_says_what_it_did(live: Live) -> None:
    from app.platform.models import Subscription
    from app.sync import rooms

    room_ids = live.import_and_subscribe()
    assert len(graph_subscriptions(live, live.integration_id)) == len(room_ids) > 0
    r = api(live, "PATCH", f"/api/integrations/{live.integration_id}", json={"enabled": False})
    assert r.status_code == 200, r.text
    assert r.json()["disabled"] == {"subscriptions_deleted": len(room_ids), "subscriptions_not_deleted": 0}
    assert graph_subscriptions(live, live.integration_id) == []  # deleted in Graph, not only forgotten
    with Session(live.rt.engine) as s:
        assert {row.status for row in s.exec(select(Subscription)).all()} == {"removed"}

    # Deleting: the booking system is left alone unless asked.
    r = api(live, "DELETE", f"/api/integrations/{live.integration_id}?deactivate_places=maybe")
    assert r.status_code == 422
    r = api(live, "DELETE", f"/api/integrations/{live.integration_id}")
    assert r.status_code == 200 and r.json()["deleted"] == live.integration_id
    assert "unchanged" in r.json()["booking_system"] and r.json()["subscriptions_deleted"] == 0
    assert all(p.active for p in live.sandbox.booking.places.values())
    assert api(live, "GET", f"/api/integrations/{live.integration_id}").status_code == 404

    # ... and deactivates its places when asked.
    created = api(live, "POST", "/api/integrations", json=live.sandbox.integration()).json()
    rooms.import_rooms(live.rt, created["id"])
    r = api(live, "DELETE", f"/api/integrations/{created['id']}?deactivate_places=true")
    assert r.status_code == 200 and r.json()["places_deactivated"] == len(live.sandbox.booking.places) > 0
    assert not any(p.active for p in live.sandbox.booking.places.values())


# --- the CLI -------------------------------------------------------------------------------------------------------


def test_cli_status_journal_errors_and_backfill(live: Live, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from app.cli import main

    settings = live.rt.settings
    for name, value in {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or "",
                        "ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY": settings.secret_key.get_secret_value(),
                        "GRAPH_BASE_URL": settings.graph_base_url,
                        "GRAPH_AUTHORITY_HOST": settings.graph_authority_host,
                        "PUBLIC_BASE_URL": settings.public_base_url, "COLUMNS": "250"}.items():
        if value:
            monkeypatch.setenv(name, value)
    live.import_and_subscribe()
    live.clear()
    loan = live.sandbox.booking.create_loan(ALICE, *slot(6, 11), places=[JUPITER])  # no hook: only a backfill finds it

    capsys.readouterr()
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert main(["backfill", "--integration", live.integration_id, "--since", today, "--preview"]) == 0
    out = capsys.readouterr().out
    assert f"From {today}: 0 meeting(s)" in out and "in 2 room(s)" in out and "1 loan(s) changed" in out
    assert "rooms" not in out.split("loan(s) changed")[1]  # --preview: nothing run
    assert link_of(live, loan.id) is None
    assert main(["backfill", "--integration", live.integration_id, "--since", today]) == 0
    out = capsys.readouterr().out
    assert out.index("1 loan(s) changed since then") < out.index("2/2 rooms")  # the count first, then the run
    assert "2/2 rooms" in out and "1 loans read" in out and "synced" in out
    link = link_of(live, loan.id)
    assert link is not None and link.organizer_event_id

    with session_scope(live.rt.engine) as s:
        failed = journal.record(s, live.integration_id, "booking_to_outlook", "fail", "error",
                                "GraphAuthError: create event: 403", loan_id="ln_cli")
        s.flush()
        failed_id = failed.id
    assert main(["journal", "--errors"]) == 0
    out = capsys.readouterr().out
    assert failed_id in out and "ln_cli" in out and link.ical_uid not in out
    assert main(["status"]) == 1  # open errors: a non-zero exit for scripts
    out = capsys.readouterr().out
    assert "Contoso (simulated)" in out and "2 (0)" in out


# --- metrics and /readyz -------------------------------------------------------------------------------------------


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_and_readyz_report_jobs_state_and_the_last_token_check(worked: Live) -> None:
    live = worked
    loan = live.sandbox.booking.create_loan(ALICE, *slot(7, 9), places=[JUPITER])
    actors.process_loan.send(live.integration_id, loan.id)
    wait_for("the loan synced", lambda: (link := link_of(live, loan.id)) is not None and link.organizer_event_id)
    with session_scope(live.rt.engine) as s:
        journal.record(s, live.integration_id, "booking_to_outlook", "fail", "error", "x", loan_id="ln_metrics")
        waiting = journal.record(s, live.integration_id, "booking_to_outlook", "wait", "error",
                                 "booking system unreachable", loan_id="ln_waiting")
        waiting.at = waiting.at - timedelta(minutes=10)
    checks_of(live)

    text = httpx.get(live.base_url + "/metrics", timeout=60).text
    assert _metric(text, 'roombridge_subscriptions{state="active"}') == 2
    assert _metric(text, "roombridge_journal_open_errors") == 1
    assert _metric(text, "roombridge_rooms_polled") == 0
    assert 0 < _metric(text, "roombridge_subscription_nearest_expiry_seconds") <= 7 * 86400
    assert _metric(text, 'roombridge_jobs_total{actor="process_loan",outcome="ok"}') >= 1
    assert 'roombridge_job_duration_seconds_count{actor="process_loan"}' in text
    assert _metric(text, "roombridge_changes_waiting") == 1  # the wait is not an open error
    assert 600 <= _metric(text, "roombridge_oldest_waiting_change_seconds") < 3600
    assert _metric(text, "roombridge_queue_depth") >= 0

    ready = httpx.get(live.base_url + "/readyz", timeout=60).json()
    mine = next(i for i in ready["integrations"] if i["id"] == live.integration_id)
    assert mine["last_token_check"]["status"] == "ok"
    assert mine["subscriptions"]["active"] == 2 and mine["subscriptions"]["expired"] == 0
