"""Failure alerts (issue 11.8): signed JSON to the integration's alert webhook, at most once per problem per hour,
across processes (the de-duplication lives in the database), on SQLite and PostgreSQL. The receiver is a real HTTP
server in the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import update

from app.core.signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from app.platform.crypto import SecretBox
from app.platform.db import make_engine, session_scope
from app.platform.migrate import upgrade
from app.platform.models import Integration, Lease
from app.sync import alerts
from app.sync.integrations import IntegrationFields, apply_fields, public_view
from tests.conftest import make_settings

SECRET = "alert-signing-secret-123"


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str], bytes]] = []
        self.status = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((json.loads(body), dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def setup(database_url: str, receiver: Receiver):  # type: ignore[no-untyped-def]
    upgrade(database_url)
    settings = make_settings(database_url)
    engine = make_engine(database_url)
    box = SecretBox(settings.secret_key.get_secret_value())
    with session_scope(engine) as s:
        integration = Integration(name="Contoso", tenant_domain="contoso.com", tenant_id="t", client_id="c",
                                  client_secret_enc="", booking_base_url="https://b.example", booking_api_key_enc="",
                                  hook_secret_enc="", default_store_id="s")
        apply_fields(integration, IntegrationFields(alert_url=receiver.url, alert_secret=SECRET), box)
        s.add(integration)
        s.flush()
        integration_id = integration.id
    yield engine, box, integration_id
    engine.dispose()


def test_a_signed_alert_once_per_problem_per_hour(setup, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    engine, box, iid = setup
    assert alerts.job_gave_up(engine, box, iid, "process_room_event", "retries exhausted: boom")
    assert not alerts.job_gave_up(engine, box, iid, "process_room_event", "retries exhausted: again")  # same hour
    assert alerts.graph_credentials_refused(engine, box, iid, "AADSTS7000222")  # another problem
    assert [m["kind"] for m, _, _ in receiver.received] == ["gave_up", "graph_credentials"]
    for message, headers, body in receiver.received:
        verify(SECRET, body, headers[SIGNATURE_HEADER])  # signed like the reverse hooks
        assert headers[DELIVERY_HEADER] and message["integration"]["id"] == iid
        assert SECRET not in body.decode()
    with pytest.raises(SignatureError):
        verify("another-secret", receiver.received[0][2], receiver.received[0][1][SIGNATURE_HEADER])


def test_an_hour_later_the_same_problem_is_sent_again(setup, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    engine, box, iid = setup
    assert alerts.rooms_polling(engine, box, iid, ["atlas@contoso.com"], "subscription refused")
    assert not alerts.rooms_polling(engine, box, iid, ["boreal@contoso.com"], "subscription refused")
    with engine.begin() as conn:  # the hour has passed
        conn.execute(update(Lease).where(Lease.name == alerts.lease_name(iid, "polling"))  # type: ignore[arg-type]
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert alerts.rooms_polling(engine, box, iid, ["boreal@contoso.com"], "subscription refused")
    assert len(receiver.received) == 2


def test_a_failed_delivery_is_tried_again_next_time(setup, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    engine, box, iid = setup
    receiver.status = 500
    assert not alerts.job_gave_up(engine, box, iid, "process_loan", "x")
    receiver.status = 200
    assert alerts.job_gave_up(engine, box, iid, "process_loan", "x")
    assert len(receiver.received) == 2


def test_concurrent_senders_send_once(setup, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    engine, box, iid = setup
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(
        alerts.job_gave_up(engine, box, iid, "process_room_event", "boom"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [False] * 5 + [True] and len(receiver.received) == 1


def test_secret_expiry_within_30_days(setup, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    engine, box, iid = setup
    now = datetime.now(UTC)
    assert not alerts.secret_expiring(engine, box, iid, now + timedelta(days=45), now)
    assert alerts.secret_expiring(engine, box, iid, now + timedelta(days=12), now)
    [(message, _, _)] = receiver.received
    assert message["kind"] == "secret_expiring" and "client_secret" in message["message"]


def test_no_url_or_no_secret_sends_nothing(setup, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    engine, box, iid = setup
    with session_scope(engine) as s:
        integration = s.get(Integration, iid)
        assert integration is not None
        view = public_view(integration)
        assert view["alert_url"] == receiver.url and view["alert_secret_set"] is True
        assert "alert_secret" not in view and "alert_secret_enc" not in view
        integration.alert_secret_enc = None
    assert not alerts.job_gave_up(engine, box, iid, "process_loan", "x")
    assert receiver.received == []


# --- the secret's end date, as Graph reports it (app/adapters/graph/places.py) ----------------------------------------

class _Graph:
    """A stand-in for the gateway's plain-JSON reads."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.paths: list[str] = []

    async def get_json(self, what: str, path: str) -> object:
        self.paths.append(path)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def paged_json(self, what: str, path: str) -> object:
        raise AssertionError("not used")


def _end(answer: object, secret: str = "abcSECRET") -> object:
    import asyncio

    from app.adapters.graph.places import secret_end

    graph = _Graph(answer)
    found = asyncio.run(secret_end(graph, "11111111-2222-3333-4444-555555555555", secret))
    assert graph.paths == ["/applications(appId='11111111-2222-3333-4444-555555555555')?$select=passwordCredentials"]
    return found


def test_the_secret_in_use_is_recognised_by_its_hint() -> None:
    from datetime import UTC, datetime

    creds = {"passwordCredentials": [
        {"hint": "xyz", "endDateTime": "2031-01-01T00:00:00Z"},
        {"hint": "abc", "endDateTime": "2027-01-10T12:00:00Z"},
        {"hint": "abc", "endDateTime": None}]}
    assert _end(creds) == datetime(2027, 1, 10, 12, tzinfo=UTC)
    # No hint matches (or none given): the secret that ends last.
    assert _end(creds, secret="zzzSECRET") == datetime(2031, 1, 1, tzinfo=UTC)
    assert _end({"passwordCredentials": []}) is None and _end({}) is None


def test_a_secret_graph_does_not_report_is_no_error() -> None:
    from app.adapters.graph.errors import GraphAuthError, GraphNotFound

    assert _end(GraphAuthError("read application: 403 Authorization_RequestDenied", 403)) is None
    assert _end(GraphNotFound("read application: 404", 404)) is None
    with pytest.raises(GraphAuthError):  # the credentials themselves refused: said by the import's own failure
        _end(GraphAuthError("read application: 401", 401))
