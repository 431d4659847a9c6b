"""The first path end to end (issue 2): an integration is created, its rooms are imported and subscribed, a meeting
booked on a room in (simulated) Outlook becomes a loan in the (simulated) booking system.

Everything is real but Microsoft and the booking system: the `roombridge` processes, their database and queue, HTTP
on loopback, msgraph-sdk, and azure-identity's ClientSecretCredential getting its token over TLS from the simulator.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from simulators.sandbox import Sandbox
from tests.e2e.harness import WAIT, run_bridge, wait_for

PARIS = ZoneInfo("Europe/Paris")
pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox():
    with Sandbox.start() as sb:
        yield sb


def _story(sandbox: Sandbox, bridge) -> None:
    # An admin creates the integration; the secrets go in once and never come back.
    r = bridge.api("POST", "/api/integrations", json=sandbox.integration())
    assert r.status_code == 201, r.text
    integration = r.json()
    assert sandbox.client_secret not in r.text and sandbox.booking_api_key not in r.text

    # Rooms are imported (the one tagged "Maintenance" is ignored) and each gets a subscription.
    subs = wait_for(lambda: (lambda items: items if len(items) == 2 else None)(
        bridge.api("GET", f"/api/integrations/{integration['id']}/subscriptions").json()["items"]),
        WAIT, "two subscriptions")
    places = {p.email: p for p in sandbox.booking.places.values()}
    assert set(places) == {"salle-jupiter@contoso.com", "salle-saturne@contoso.com"}
    assert places["salle-jupiter@contoso.com"].name == "Salle Jupiter"
    assert places["salle-jupiter@contoso.com"].capacity == 12
    graph_subs = sandbox.graph.subscriptions
    assert {s["id"] for s in subs} == set(graph_subs)
    assert all(s["resource"].startswith("/users/") and s["notificationUrl"] == f"{bridge.base_url}/graph/notifications"
               and s["lifecycleNotificationUrl"] == f"{bridge.base_url}/graph/lifecycle" for s in graph_subs.values())

    # Alice books Salle Jupiter tomorrow 10:07–11:01 Paris time, in Outlook.
    day = (datetime.now(PARIS) + timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, 10, 7, tzinfo=PARIS)
    end = datetime(day.year, day.month, day.day, 11, 1, tzinfo=PARIS)
    meeting = sandbox.graph.create_meeting("alice@contoso.com", "Point hebdo", start, end,
                                           rooms=["salle-jupiter@contoso.com"], time_zone="Romance Standard Time")

    loan = wait_for(lambda: next(iter(sandbox.booking.loans.values()), None), WAIT, "the loan")
    assert loan.requester.email == "alice@contoso.com" and loan.requester.name == "Alice Martin"
    assert loan.start == datetime(day.year, day.month, day.day, 10, 0, tzinfo=PARIS)
    assert loan.end == datetime(day.year, day.month, day.day, 11, 15, tzinfo=PARIS)
    assert [(i.kind, i.place_email) for i in loan.items] == [("place", "salle-jupiter@contoso.com")]
    assert loan.status == "new" and loan.store_id == sandbox.booking.store_id
    assert loan.origin is not None and loan.origin.system == "outlook" and loan.origin.ref == meeting["iCalUId"]

    # The bridge knows the link, and the journal says what happened.
    # (the link is stored just before the loan's create, with the create's body: its loan id follows at once)
    links = wait_for(lambda: [item for item in bridge.api("GET", f"/api/integrations/{integration['id']}/links")
                              .json()["items"] if item["loan_id"]], WAIT, "the link")
    assert [(link["ical_uid"], link["loan_id"]) for link in links] == [(meeting["iCalUId"], loan.id)]
    journal = bridge.api("GET", f"/api/integrations/{integration['id']}/journal").json()["items"]
    assert any(e["action"] == "create" and e["status"] == "ok" and e["loan_id"] == loan.id for e in journal)

    # Exactly one loan, even though Exchange tends to notify more than once; the Graph token came from the
    # simulator's TLS token endpoint through ClientSecretCredential (every Graph call is bearer-checked).
    sandbox.settle()  # every notification delivered and handled
    assert len(sandbox.booking.loans) == 1
    assert sandbox.graph.stats.tokens_issued >= 1
    assert sandbox.booking.stats.loans_created == 1
    # Secrets never reach the logs.
    logs = bridge.log_text()
    for secret in (sandbox.client_secret, sandbox.booking_api_key, integration["hook_secret"]):
        assert secret not in logs


def test_meeting_becomes_a_loan_embedded(sandbox, tmp_path) -> None:
    """SQLite + in-process queue: one `roombridge serve` process."""
    with run_bridge(sandbox, tmp_path, f"sqlite:///{tmp_path / 'roombridge.db'}") as bridge:
        _story(sandbox, bridge)


def test_meeting_becomes_a_loan_on_postgres_and_redis(sandbox, tmp_path, pg_url, redis_url) -> None:
    """PostgreSQL + Redis: `roombridge serve` and a separate `roombridge worker` process."""
    with run_bridge(sandbox, tmp_path, pg_url, redis_url) as bridge:
        assert len(bridge.processes) == 2
        _story(sandbox, bridge)
