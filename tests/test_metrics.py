"""Metrics (issue 10.6): Graph and booking calls by operation and status, notifications and hooks by outcome, the
change → other side latency histogram, the multiprocess mode (several processes, one `/metrics` with their sum), and
`/readyz`'s per-integration token check and subscription health.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.worker import Worker
from prometheus_client import REGISTRY
from sqlmodel import Session
from starlette.testclient import TestClient

from app.adapters.booking.client import BookingClient, BookingNotFound, BookingUnavailable
from app.adapters.graph.errors import GraphThrottled
from app.adapters.graph.gateway import GraphGateway
from app.core.link import LinkState
from app.core.signing import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from app.platform.metrics import JobMetrics
from app.platform.migrate import upgrade
from app.platform.models import JournalEntry, Subscription, utcnow
from app.sync import state
from app.sync.runtime import current
from app.web.app import create_app
from simulators.booking import BookingSimulator
from tests.conftest import make_settings
from tests.helpers import seed_subscription
from tests.test_rooms_import import JUPITER, Live, live_fixture, make_sandbox  # noqa: F401 - fixtures
from tests.test_worklist import ALICE, link_of, slot, wait_for

ROOT = Path(__file__).resolve().parent.parent
CLIENT_STATE = "metrics-client-state"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def metric_line(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


# --- Graph and booking calls ---------------------------------------------------------------------------------------


def test_a_graph_429_is_counted_as_429_by_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = make_sandbox(monkeypatch)
    try:
        graph = sandbox.graph
        gateway = GraphGateway(sandbox.tenant_id, sandbox.client_id, sandbox.client_secret,
                               base_url=graph.graph_base_url, authority_host=graph.authority_host)
        operation = "get mailbox settings"
        before_429 = sample("roombridge_graph_calls_total", operation=operation, status="429")
        before_ok = sample("roombridge_graph_calls_total", operation=operation, status="2xx")

        async def calls() -> None:
            try:
                graph.inject(429, count=1, retry_after=1, mailbox=JUPITER)  # throttling on for this mailbox
                with pytest.raises(GraphThrottled):
                    await gateway.mailbox_settings(JUPITER)
                await gateway.mailbox_settings(JUPITER)  # the next one goes through
            finally:
                await gateway.close()

        import asyncio

        asyncio.run(calls())
        assert sample("roombridge_graph_calls_total", operation=operation, status="429") == before_429 + 1
        assert sample("roombridge_graph_calls_total", operation=operation, status="2xx") == before_ok + 1
    finally:
        sandbox.stop()


def test_booking_calls_are_counted_by_operation_with_id_placeholders() -> None:
    with BookingSimulator(api_key="metrics-key") as booking:
        client = BookingClient(booking.base_url, "metrics-key")
        try:
            get_404 = sample("roombridge_booking_calls_total", operation="GET /loans/{id}", status="404")
            cancel = sample("roombridge_booking_calls_total", operation="POST /loans/{id}/cancel", status="404")
            listed = sample("roombridge_booking_calls_total", operation="GET /loans", status="200")
            throttled = sample("roombridge_booking_calls_total", operation="GET /loans", status="429")
            with pytest.raises(BookingNotFound):
                client.get_loan("ln_does_not_exist")
            with pytest.raises(BookingNotFound):
                client.cancel_loan("ln_other")
            assert list(client.changed_loans()) == []
            booking.inject(429, count=1, retry_after=1)
            with pytest.raises(BookingUnavailable):
                list(client.changed_loans())
            assert sample("roombridge_booking_calls_total", operation="GET /loans/{id}", status="404") == get_404 + 1
            assert sample("roombridge_booking_calls_total", operation="POST /loans/{id}/cancel",
                          status="404") == cancel + 1
            assert sample("roombridge_booking_calls_total", operation="GET /loans", status="200") == listed + 1
            assert sample("roombridge_booking_calls_total", operation="GET /loans", status="429") == throttled + 1
            # No label value carries an identifier: the number of series stays bounded.
            operations = {s.labels["operation"] for m in REGISTRY.collect() if m.name == "roombridge_booking_calls"
                          for s in m.samples}
            assert not any("ln_" in op for op in operations), operations
        finally:
            client.close()


# --- notifications and hooks ---------------------------------------------------------------------------------------


@pytest.fixture
def app_client(tmp_path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    upgrade(url)
    with TestClient(create_app(make_settings(url), run_worker=False), raise_server_exceptions=False) as c:
        yield c


def _notification(sub_id: str, client_state: str, event_id: str) -> dict[str, Any]:
    return {"value": [{
        "subscriptionId": sub_id, "clientState": client_state, "changeType": "updated",
        "resource": f"Users/x/Events/{event_id}", "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
        "tenantId": "t", "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": event_id}}]}


def test_notifications_are_counted_by_outcome(app_client: TestClient) -> None:
    _, _, sub = seed_subscription(current().engine, CLIENT_STATE, subscription_id="sub-metrics")
    accepted = sample("roombridge_notifications_total", kind="change", outcome="accepted")
    rejected = sample("roombridge_notifications_total", kind="change", outcome="rejected")
    assert app_client.post("/graph/notifications", json=_notification(sub.id, CLIENT_STATE, "ev-1")).status_code == 202
    assert app_client.post("/graph/notifications", json=_notification(sub.id, "a guess", "ev-2")).status_code == 202
    assert app_client.post("/graph/notifications", json=_notification("sub-unknown", CLIENT_STATE,
                                                                       "ev-3")).status_code == 202
    assert sample("roombridge_notifications_total", kind="change", outcome="accepted") == accepted + 1
    assert sample("roombridge_notifications_total", kind="change", outcome="rejected") == rejected + 2


def test_hooks_are_counted_by_outcome(app_client: TestClient) -> None:
    integration, _, _ = seed_subscription(current().engine, CLIENT_STATE)
    before = {o: sample("roombridge_hooks_total", outcome=o) for o in ("accepted", "rejected", "duplicate", "ignored")}
    body = json.dumps({"type": "loan.updated", "loan": {"id": "ln_1"}}).encode()
    url = f"/hooks/booking/{integration.id}"

    def post(secret: str, delivery: str, raw: bytes = body) -> int:
        headers = {SIGNATURE_HEADER: sign(secret, raw), DELIVERY_HEADER: delivery, "Content-Type": "application/json"}
        return app_client.post(url, content=raw, headers=headers).status_code

    assert post("hook", "d-1") == 202  # accepted
    assert post("hook", "d-1") == 202  # the same delivery again: duplicate
    assert post("not-the-secret", "d-2") == 401  # rejected
    assert post("hook", "d-3", b'{"type": "nope"}') == 400  # rejected (malformed)
    with Session(current().engine) as s:
        row = s.get(type(integration), integration.id)
        assert row is not None
        row.enabled = False
        s.add(row)
        s.commit()
    assert post("hook", "d-4") == 202  # ignored: the integration is disabled
    after = {o: sample("roombridge_hooks_total", outcome=o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {"accepted": 1, "rejected": 2, "duplicate": 1, "ignored": 1}


# --- change → other side latency -----------------------------------------------------------------------------------


def test_latency_is_observed_from_the_jobs_enqueue_to_the_write(tmp_path) -> None:
    """The mechanism: a job enqueued at T that writes (a note `ok` create/update/cancel) observes now − T, by
    direction; a note that wrote nothing (skipped) and a write outside a job observe nothing."""
    url = f"sqlite:///{tmp_path / 'latency.db'}"
    upgrade(url)
    with TestClient(create_app(make_settings(url), run_worker=False)):
        engine = current().engine
        integration, _, _ = seed_subscription(engine, CLIENT_STATE)
        broker = StubBroker(middleware=[JobMetrics()])
        broker.emit_after("process_boot")
        done: list[str] = []

        def write(note_status: str, action: str, direction: str) -> None:
            link = LinkState(ical_uid=f"uid-{len(done)}", origin="outlook")
            state.save(engine, integration.id, link, state.Note(direction, action, note_status, "m"))  # type: ignore[arg-type]
            done.append(action)

        actor = dramatiq.actor(write, broker=broker, actor_name="metrics_write")
        count = {d: sample("roombridge_change_latency_seconds_count", direction=d)
                 for d in ("outlook_to_booking", "booking_to_outlook")}
        over_1s = sample("roombridge_change_latency_seconds_bucket", direction="booking_to_outlook", le="1.0")
        message = actor.message("ok", "create", "booking_to_outlook")
        # The hint arrived 5 s ago (e.g. the job waited behind others): the observation says so.
        message = message.copy(message_timestamp=int((time.time() - 5) * 1000))
        broker.enqueue(message)
        actor.send("ok", "update", "outlook_to_booking")
        actor.send("skipped", "skip", "outlook_to_booking")
        worker = Worker(broker, worker_threads=1)
        worker.start()
        try:
            broker.join(actor.queue_name, timeout=60_000)
            worker.join()
        finally:
            worker.stop()
        assert len(done) == 3
        write("ok", "create", "outlook_to_booking")  # outside a job: not observed
        assert sample("roombridge_change_latency_seconds_count", direction="booking_to_outlook") == \
            count["booking_to_outlook"] + 1
        assert sample("roombridge_change_latency_seconds_count", direction="outlook_to_booking") == \
            count["outlook_to_booking"] + 1
        # the 5-second-old hint fell beyond the 1 s bucket
        assert sample("roombridge_change_latency_seconds_bucket", direction="booking_to_outlook",
                      le="1.0") == over_1s
        assert sample("roombridge_change_latency_seconds_sum", direction="booking_to_outlook") >= 5


@pytest.fixture(name="stack_urls")
def embedded_stack(tmp_path) -> tuple[str, None]:
    return f"sqlite:///{tmp_path / 'rb.db'}", None


def test_latency_of_real_changes_in_both_directions(live: Live) -> None:
    """A loan's hook job writes its event (booking → Outlook); a meeting's notification job writes its loan
    (Outlook → booking): each observed once more in its direction."""
    from app.workers import actors
    from app.workers.broker import start_worker

    live.import_and_subscribe()
    live.clear()
    b2o = sample("roombridge_change_latency_seconds_count", direction="booking_to_outlook")
    o2b = sample("roombridge_change_latency_seconds_count", direction="outlook_to_booking")
    worker = start_worker(live.broker, 2)
    try:
        loan = live.sandbox.booking.create_loan(ALICE, *slot(5, 9), places=[JUPITER])
        actors.process_loan.send(live.integration_id, loan.id)
        wait_for("the loan's event written",
                 lambda: (link := link_of(live, loan.id)) is not None and link.organizer_event_id)
        wait_for("observed booking → Outlook",
                 lambda: sample("roombridge_change_latency_seconds_count", direction="booking_to_outlook") > b2o)
        start, end = slot(6, 14)
        live.sandbox.graph.create_meeting(ALICE["email"], "Point métriques", start, end, rooms=[JUPITER])
        wait_for("observed Outlook → booking",
                 lambda: sample("roombridge_change_latency_seconds_count", direction="outlook_to_booking") > o2b)
    finally:
        worker.stop()


# --- several processes ---------------------------------------------------------------------------------------------

_CHILD = """
import sys
from app.platform.metrics import HOOKS, CHANGE_LATENCY
HOOKS.labels("accepted").inc(int(sys.argv[1]))
CHANGE_LATENCY.labels("booking_to_outlook").observe(float(sys.argv[1]))
print("done", flush=True)
"""


def test_multiprocess_mode_metrics_show_the_sum_of_every_process(tmp_path) -> None:
    """Two real processes (as two workers would) count hooks with PROMETHEUS_MULTIPROC_DIR set; a third, the
    service, answers /metrics with the sum of both."""
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "PYTHONPATH": str(ROOT)}
    for n in ("3", "4"):
        out = subprocess.run([sys.executable, "-c", _CHILD, n], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0 and "done" in out.stdout, out.stderr
    assert len(list(shared.glob("*.db"))) >= 2  # one file per process

    db = f"sqlite:///{tmp_path / 'mp.db'}"
    upgrade(db)
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, uvicorn; from app.web.app import create_app; from tests.conftest import make_settings; "
         "uvicorn.run(create_app(make_settings(sys.argv[1]), run_worker=False), host='127.0.0.1', "
         "port=int(sys.argv[2]), log_level='warning')", db, str(port := _free_port())],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        def scrape() -> str | None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                return None
            return r.text if r.status_code == 200 else None

        text = wait_for("the service's /metrics", scrape)
        assert metric_line(text, 'roombridge_hooks_total{outcome="accepted"}') == 7
        assert metric_line(text, 'roombridge_change_latency_seconds_count{direction="booking_to_outlook"}') == 2
        assert metric_line(text, 'roombridge_change_latency_seconds_sum{direction="booking_to_outlook"}') == 7
        assert "roombridge_journal_open_errors" in text  # the state read from the database, as in one process
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    from simulators.server import free_port

    return int(free_port())


# --- /readyz ------------------------------------------------------------------------------------------------------


def test_readyz_reports_each_integrations_token_check_and_subscription_health(app_client: TestClient) -> None:
    engine = current().engine
    integration, room, sub = seed_subscription(engine, CLIENT_STATE)
    ready = app_client.get("/readyz").json()
    mine = next(i for i in ready["integrations"] if i["id"] == integration.id)
    assert mine["last_token_check"] is None  # never tested
    assert mine["subscriptions"]["active"] == 1 and mine["subscriptions"]["expired"] == 0

    checks = {"ok": False, "at": datetime.now(UTC).isoformat(), "checks": [
        {"name": "token", "status": "failed", "detail": "the client secret has expired (AADSTS7000222)", "fix": "x"}]}
    with Session(engine) as s:
        s.add(JournalEntry(integration_id=integration.id, direction="connection", action="test", status="failed",
                           message=json.dumps(checks)))
        s.add(Subscription(id="sub-stale", integration_id=integration.id, room_id=room.id,
                           client_state_digest="x", resource="/users/y/events",
                           expires_at=utcnow() - timedelta(minutes=5)))
        s.commit()
    ready = app_client.get("/readyz")
    assert ready.status_code == 200
    mine = next(i for i in ready.json()["integrations"] if i["id"] == integration.id)
    assert mine["last_token_check"]["status"] == "failed" and "expired" in mine["last_token_check"]["detail"]
    assert mine["subscriptions"]["active"] == 2 and mine["subscriptions"]["expired"] == 1
    assert mine["subscriptions"]["nearest_expiry"] is not None
