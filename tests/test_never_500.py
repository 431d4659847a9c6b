"""Issue 8 "never 500" on the webhooks (SPEC §5, §7): what answered 500 before — a NUL or an over-long id, a
signature timestamp of 400 digits, `POST /hooks/booking/%00`, a database that refuses connections, any unexpected
failure — now answers a 4xx with a JSON reason or a 503 with Retry-After; and delivery ids are one integration's own.

The outages are real: a PostgreSQL database that refuses connections (ALLOW_CONNECTIONS false, its sessions
terminated), a PostgreSQL URL and a Redis URL on a closed port. No mocks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlmodel import Session, col, select
from starlette.testclient import TestClient

from app.core.signing import sign
from app.platform.migrate import upgrade
from app.platform.models import Integration, SeenDelivery
from app.sync.runtime import current
from app.web import intake
from app.web.app import create_app
from tests.conftest import make_settings
from tests.helpers import queued, seed_subscription
from tests.test_hooks import HOOK_SECRET, hook_body, post

CLIENT_STATE = "the-client-state"  # tests.helpers.seed_subscription's default
CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1


def item(sub_id: str = "sub-1", event_id: str = "EV-1", **extra: object) -> dict:
    return {"subscriptionId": sub_id, "clientState": CLIENT_STATE, "changeType": "updated",
            "resource": f"Users/u/Events/{event_id}", "resourceData": {"id": event_id}, **extra}


def lifecycle_item(sub_id: str = "sub-1", event: str = "reauthorizationRequired") -> dict:
    return {"subscriptionId": sub_id, "clientState": CLIENT_STATE, "lifecycleEvent": event}


@pytest.fixture
def stack(web_client):
    integration, _, sub = seed_subscription(current().engine)
    return web_client, integration, sub


# --- 8.4: unauthenticated input that answered 500 --------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["sub\x00-1", "\x00", "s" * 129, "sub 1", "sub\n1", "é"])
def test_unusable_subscription_ids_are_rejected_items_not_errors(stack, bad_id: str) -> None:
    """A NUL in `subscriptionId` answered 500 on PostgreSQL (notifications and lifecycle): checked before the query,
    such an item is rejected like an unknown subscription (202, nothing enqueued), and the good items still pass."""
    client, _, sub = stack
    for path, bad, good in (("/graph/notifications", item(bad_id), item(sub.id)),
                            ("/graph/lifecycle", lifecycle_item(bad_id), lifecycle_item(sub.id))):
        before = len(queued(client.app.state.broker))
        r = client.post(path, json={"value": [bad]})
        assert (r.status_code, r.content) == (202, b""), (path, r.text)
        assert len(queued(client.app.state.broker)) == before
        assert client.post(path, json={"value": [bad, good]}).status_code == 202
    assert sorted(m["actor_name"] for m in queued(client.app.state.broker)) == ["handle_lifecycle",
                                                                               "process_room_event"]


@pytest.mark.parametrize("event_id", ["EV\x00", "EV 1", "E" * 1025, "EV\u00e9"])
def test_unusable_event_ids_and_lifecycle_events_are_rejected(stack, event_id: str) -> None:
    client, _, sub = stack
    r = client.post("/graph/notifications", json={"value": [item(sub.id, event_id)]})
    assert r.status_code == 202
    r = client.post("/graph/lifecycle", json={"value": [lifecycle_item(sub.id, "missed\x00")]})
    assert r.status_code == 202
    assert queued(client.app.state.broker) == []


@pytest.mark.parametrize("t", ["9" * 400, "-" + "9" * 400, "9" * 13, "1" * 5000])
def test_a_signature_timestamp_of_hundreds_of_digits_is_401(stack, t: str) -> None:
    """`t=` with 400 digits raised OverflowError (500); now it is a malformed signature."""
    client, integration, _ = stack
    body = hook_body()
    r = post(client, integration.id, body, signature=f"t={t},v1={'0' * 64}")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "bad_signature"
    assert queued(client.app.state.broker) == []


def test_hook_path_with_a_nul_is_4xx(stack) -> None:
    """`POST /hooks/booking/%00` answered 500 on PostgreSQL: it is now the 401 of any unknown integration."""
    client, integration, _ = stack
    body = hook_body()
    for path in ("/hooks/booking/%00", "/hooks/booking/a%00b", f"/hooks/booking/{integration.id}%00"):
        r = client.post(path, content=body, headers={"RoomBridge-Signature": sign(HOOK_SECRET, body)})
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "bad_signature"
    assert queued(client.app.state.broker) == []


@pytest.mark.parametrize("loan_id", ["ln\x00", "ln/1", "l" * 129, "ln 1"])
def test_signed_hook_with_an_unusable_loan_id_is_400(stack, loan_id: str) -> None:
    client, integration, _ = stack
    r = post(client, integration.id, hook_body(loan_id))
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_hook"
    assert queued(client.app.state.broker) == []


# --- 8.6: delivery ids per integration -------------------------------------------------------------------------


def test_another_integrations_delivery_ids_do_not_silence_this_one(web_client) -> None:
    """Integration B's `RoomBridge-Delivery: 1, 2, 3` made integration A's own deliveries 1, 2, 3 be dropped."""
    a, _, _ = seed_subscription(current().engine, subscription_id="sub-a")
    b, _, _ = seed_subscription(current().engine, subscription_id="sub-b")
    for n in ("1", "2", "3"):
        assert post(web_client, b.id, hook_body(f"ln_b{n}"), delivery=n).status_code == 202
    for n in ("1", "2", "3"):
        assert post(web_client, a.id, hook_body(f"ln_a{n}"), delivery=n).status_code == 202
    # Still deduplicated within one integration.
    assert post(web_client, a.id, hook_body("ln_a9"), delivery="1").status_code == 202
    jobs = {(m["args"][0], m["args"][1]) for m in queued(web_client.app.state.broker, "process_loan")}
    assert jobs == {(b.id, "ln_b1"), (b.id, "ln_b2"), (b.id, "ln_b3"), (a.id, "ln_a1"), (a.id, "ln_a2"),
                    (a.id, "ln_a3")}
    with Session(current().engine) as s:
        rows = s.exec(select(SeenDelivery).where(col(SeenDelivery.delivery_id) == "1")).all()
    assert sorted(r.integration_id for r in rows) == sorted([a.id, b.id])


# --- 8.3: database or queue unreachable → 503 + Retry-After ------------------------------------------------------


@contextmanager
def refusing_connections(pg_server: str, database_url: str) -> Iterator[None]:
    """The test database refuses new connections and its open sessions are cut, as in a PostgreSQL outage."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                     "AND pid <> pg_backend_pid()", (name,))
    try:
        yield
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def assert_503(r, code: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"].isdigit()
    assert r.json()["error"]["code"] == code


def test_postgresql_refusing_connections_answers_503_then_the_retry_is_accepted(pg_server, pg_url, redis_url) -> None:
    settings = make_settings(pg_url, redis_url)
    upgrade(pg_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        integration, _, sub = seed_subscription(current().engine)
        notification = {"value": [item(sub.id, "EV-7")]}
        lifecycle = {"value": [lifecycle_item(sub.id)]}
        body, delivery = hook_body("ln_7"), str(uuid.uuid4())
        assert client.post("/graph/notifications", json={"value": [item(sub.id, "EV-0")]}).status_code == 202
        with refusing_connections(pg_server, pg_url):
            # A subscription the intake's cache holds needs no database read: accepted (the job waits in Redis).
            assert client.post("/graph/notifications", json=notification).status_code == 202
            intake.cache_of(current()).clear()  # one it has to read: 503
            assert_503(client.post("/graph/notifications", json=notification), "database_unavailable")
            assert_503(client.post("/graph/lifecycle", json=lifecycle), "database_unavailable")
            assert_503(post(client, integration.id, body, delivery=delivery), "database_unavailable")
            assert client.get("/readyz").status_code == 503
        # Graph and the booking system retry: now accepted, and the hook's delivery was not remembered as seen.
        assert client.post("/graph/notifications", json=notification).status_code == 202
        assert client.post("/graph/lifecycle", json=lifecycle).status_code == 202
        assert post(client, integration.id, body, delivery=delivery).status_code == 202
        broker = client.app.state.broker
        assert sorted(m["args"][2] for m in queued(broker, "process_room_event")) == ["EV-0", "EV-7"]
        assert [m["args"] for m in queued(broker, "process_loan")] == [[integration.id, "ln_7"]]
        assert len(queued(broker, "handle_lifecycle")) == 1


def test_database_on_a_closed_port_answers_503(redis_url) -> None:
    settings = make_settings(f"postgresql://roombridge@127.0.0.1:{CLOSED_PORT}/nowhere", redis_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        assert_503(client.post("/graph/notifications", json={"value": [item()]}), "database_unavailable")
        assert_503(client.post("/graph/lifecycle", json={"value": [lifecycle_item()]}), "database_unavailable")
        assert_503(post(client, str(uuid.uuid4()), hook_body()), "database_unavailable")
        # Input refused before the database is still refused as such.
        assert client.post("/graph/notifications", content=b"{", headers={"Content-Type": "application/json"}
                           ).status_code == 400


def test_redis_on_a_closed_port_answers_503_for_notifications_lifecycle_and_hooks(pg_url) -> None:
    settings = make_settings(pg_url, f"redis://127.0.0.1:{CLOSED_PORT}/0")
    upgrade(pg_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        integration, _, sub = seed_subscription(current().engine)
        assert_503(client.post("/graph/notifications", json={"value": [item(sub.id)]}), "queue_unavailable")
        assert_503(client.post("/graph/lifecycle", json={"value": [lifecycle_item(sub.id)]}), "queue_unavailable")
        delivery = str(uuid.uuid4())
        assert_503(post(client, integration.id, hook_body(), delivery=delivery), "queue_unavailable")
        with Session(current().engine) as s:  # the delivery may come again
            assert s.get(SeenDelivery, (integration.id, delivery)) is None


def test_an_unexpected_failure_answers_503_and_is_logged_not_500(stack, capfd) -> None:
    """An integration whose hook secret cannot be decrypted (e.g. SECRET_KEY changed): the hook answered 500."""
    client, integration, _ = stack
    with Session(current().engine) as s:
        row = s.get(Integration, integration.id)
        row.hook_secret_enc = "not-a-fernet-token"
        s.add(row)
        s.commit()
    r = post(client, integration.id, hook_body(), t=time.time())
    assert_503(r, "unavailable")
    assert "Traceback" not in r.text and "fernet" not in r.text.lower()
    out = capfd.readouterr()
    assert "unexpected error answered 503" in out.out + out.err
