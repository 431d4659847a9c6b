"""SPEC §7 reverse-hook intake (and the signature cases of §11 case 22): 401 for a missing, wrong or stale signature,
404 for an unknown integration, a delivery id seen before is acknowledged and ignored, a burst of hooks for one loan is
one job, and nothing is enqueued for any rejected request. Never a 500."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

from app.core.signing import sign
from app.platform.migrate import upgrade
from app.platform.models import Integration
from app.sync.runtime import current
from app.web.app import create_app
from tests.conftest import make_settings
from tests.helpers import queued, seed_subscription

HOOK_SECRET = "hook"  # what tests.helpers.seed_subscription stores


class Jobs:
    """`process_loan` jobs waiting in the test's broker (they are delayed: the coalescing window)."""

    def __init__(self, broker) -> None:
        self.broker = broker

    def messages(self) -> list[dict]:
        return queued(self.broker, "process_loan")


@pytest.fixture
def stack(web_client):
    integration, _, _ = seed_subscription(current().engine)
    return web_client, Jobs(web_client.app.state.broker), integration


def hook_body(loan_id: str = "ln_1", hook_type: str = "loan.updated") -> bytes:
    loan = {"id": loan_id, "number": "PR-1", "status": "new", "requester": {"email": "a@contoso.com", "name": "A"},
            "start": "2030-03-04T09:00:00+00:00", "end": "2030-03-04T10:00:00+00:00", "store_id": "s",
            "items": [], "url": "https://booking.example.com/loans/ln_1", "version": 1,
            "updated_at": "2030-03-01T12:00:00+00:00"}
    return json.dumps({"type": hook_type, "loan": loan}).encode()


def post(client, integration_id: str, body: bytes, *, secret: str = HOOK_SECRET, t: float | None = None,
         delivery: str | None = None, signature: str | None = None):
    headers = {"Content-Type": "application/json", "RoomBridge-Delivery": delivery or str(uuid.uuid4())}
    headers["RoomBridge-Signature"] = signature if signature is not None else sign(secret, body, t)
    return client.post(f"/hooks/booking/{integration_id}", content=body, headers=headers)


def test_a_signed_hook_is_enqueued_as_a_reread_of_its_loan(stack) -> None:
    client, jobs, integration = stack
    r = post(client, integration.id, hook_body("ln_42"))
    assert r.status_code == 202
    [message] = jobs.messages()
    assert message["args"] == [integration.id, "ln_42"]
    assert message["options"]["request_id"] == r.headers["x-request-id"]


def test_a_burst_of_hooks_for_one_loan_is_one_job(stack) -> None:
    client, jobs, integration = stack
    for hook_type in ("loan.created", "loan.updated", "loan.updated", "loan.cancelled"):
        assert post(client, integration.id, hook_body("ln_1", hook_type)).status_code == 202
    assert post(client, integration.id, hook_body("ln_2")).status_code == 202
    assert sorted(m["args"][1] for m in jobs.messages()) == ["ln_1", "ln_2"]


def test_a_delivery_seen_before_is_acknowledged_and_ignored(stack) -> None:
    client, jobs, integration = stack
    delivery = str(uuid.uuid4())
    assert post(client, integration.id, hook_body("ln_1"), delivery=delivery).status_code == 202
    # Even for another loan: a redelivery is never processed twice.
    assert post(client, integration.id, hook_body("ln_2"), delivery=delivery).status_code == 202
    assert [m["args"][1] for m in jobs.messages()] == ["ln_1"]


@pytest.mark.parametrize("case", ["missing", "wrong secret", "stale", "future", "malformed", "no v1", "tampered"])
def test_bad_signatures_are_401_and_nothing_is_enqueued(stack, case: str) -> None:
    client, jobs, integration = stack
    body = hook_body()
    kwargs: dict = {
        "missing": {"signature": ""},
        "wrong secret": {"secret": "not-the-secret"},
        "stale": {"t": time.time() - 310},  # clear of the ±300 s edge, tested with a fixed clock in tests/booking
        "future": {"t": time.time() + 310},
        "malformed": {"signature": "v1=abc"},
        "no v1": {"signature": f"t={int(time.time())}"},
        "tampered": {"signature": sign(HOOK_SECRET, body + b" ")},
    }[case]
    r = post(client, integration.id, body, **kwargs)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "bad_signature"
    assert HOOK_SECRET not in r.text
    assert jobs.messages() == []


def test_signature_within_tolerance_and_rotation_with_two_v1_values_are_accepted(stack) -> None:
    client, jobs, integration = stack
    assert post(client, integration.id, hook_body("ln_1"), t=time.time() - 290).status_code == 202
    body, t = hook_body("ln_2"), int(time.time())
    v1 = {secret: sign(secret, body, t).split(",v1=")[1] for secret in ("old-secret", HOOK_SECRET)}
    header = f"t={t},v1={v1['old-secret']},v1={v1[HOOK_SECRET]}"
    assert post(client, integration.id, body, signature=header).status_code == 202
    assert sorted(m["args"][1] for m in jobs.messages()) == ["ln_1", "ln_2"]


def test_unknown_integration_answers_exactly_like_a_bad_signature(stack) -> None:
    """Issue 8.8: the hook endpoint answered 404 for an unknown integration and 401 for a known one, so anyone could
    probe which integrations exist. Now both are the same 401 with the same body."""
    client, jobs, integration = stack
    t = int(time.time())
    body = hook_body()
    wrong = sign("not-the-secret", body, t)
    known = post(client, integration.id, body, signature=wrong)
    for integration_id in (str(uuid.uuid4()), "x" * 300, "%00", "%0A", "nul%00nul", "%C3%A9", "'%3B--"):
        r = post(client, integration_id, body, signature=wrong)
        assert (r.status_code, r.json()) == (known.status_code, known.json()), integration_id
        # Signed with the secret of another integration: still nothing to learn.
        r = post(client, integration_id, body, signature=sign(HOOK_SECRET, body, t))
        assert (r.status_code, r.json()) == (known.status_code, known.json()), integration_id
    assert known.status_code == 401 and known.json()["error"]["code"] == "bad_signature"
    # A slash is no integration id at all: the route does not match (404 for every id alike).
    assert post(client, "a%2Fb", body).status_code == 404
    assert jobs.messages() == []


@pytest.mark.parametrize("body", [b"{", b"not json", b"[]", b'{"type": "loan.deleted", "loan": {"id": "x"}}',
                                  b'{"type": "loan.updated", "loan": {}}', b'{"type": "loan.updated"}', b""])
def test_signed_but_malformed_is_400(stack, body: bytes) -> None:
    client, jobs, integration = stack
    r = post(client, integration.id, body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_hook"
    assert jobs.messages() == []


def test_bad_delivery_id_is_400(stack) -> None:
    client, jobs, integration = stack
    r = post(client, integration.id, hook_body(), delivery="x" * 200)
    assert r.status_code == 400
    assert jobs.messages() == []


def test_body_over_one_mebibyte_is_413_even_unsigned(stack) -> None:
    client, jobs, integration = stack
    body = b'{"padding": "' + b"x" * (1024 * 1024) + b'"}'
    r = post(client, integration.id, body)
    assert r.status_code == 413
    assert jobs.messages() == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_wrong_method_is_405(stack, method: str) -> None:
    client, _, integration = stack
    assert client.request(method, f"/hooks/booking/{integration.id}").status_code == 405


@pytest.mark.parametrize("change", [{"enabled": False}, {"direction": "outlook_to_booking"}])
def test_disabled_or_one_way_integration_acknowledges_and_enqueues_nothing(stack, change: dict) -> None:
    client, jobs, integration = stack
    with Session(current().engine) as s:
        row = s.get(Integration, integration.id)
        for k, v in change.items():
            setattr(row, k, v)
        s.add(row)
        s.commit()
    assert post(client, integration.id, hook_body()).status_code == 202
    assert post(client, integration.id, hook_body(), secret="wrong").status_code == 401
    assert jobs.messages() == []


def test_queue_unreachable_is_503_and_the_delivery_can_be_retried(tmp_path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'rb.db'}", "redis://127.0.0.1:1/0")
    upgrade(settings.database_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        integration, _, _ = seed_subscription(current().engine)
        delivery = str(uuid.uuid4())
        r = post(client, integration.id, hook_body(), delivery=delivery)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "queue_unavailable"
        # Not remembered as seen: the booking system's retry of the same delivery is not swallowed.
        assert post(client, integration.id, hook_body(), delivery=delivery).status_code == 503


def _snapshot(engine) -> dict[str, int]:
    """Row counts of every table: 'nothing changed' for a rejected request."""
    from sqlalchemy import text
    from sqlmodel import SQLModel

    with engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in SQLModel.metadata.tables}


def test_case_22_every_rejection_enqueues_nothing_and_changes_nothing(stack) -> None:
    """SPEC §11 case 22, both webhooks: invalid clientState, unknown subscription, bad signature, stale signature
    timestamp, oversize body, malformed JSON."""
    client, jobs, integration = stack
    engine = current().engine
    before = _snapshot(engine)
    notification = {"value": [{"subscriptionId": "sub-1", "clientState": "not-the-state", "changeType": "updated",
                               "resource": "Users/x/Events/e1", "resourceData": {"id": "e1"}}]}
    unknown = {"value": [{**notification["value"][0], "subscriptionId": "no-such-subscription"}]}
    answers = {
        "invalid clientState": client.post("/graph/notifications", json=notification).status_code,
        "unknown subscription": client.post("/graph/notifications", json=unknown).status_code,
        "bad signature": post(client, integration.id, hook_body(), secret="wrong").status_code,
        "stale signature": post(client, integration.id, hook_body(), t=time.time() - 310).status_code,
        "oversize body (Graph)": client.post("/graph/notifications", content=b"{" + b" " * (1 << 20) + b"}",
                                             headers={"Content-Type": "application/json"}).status_code,
        "oversize body (hook)": post(client, integration.id, b"{" + b" " * (1 << 20) + b"}").status_code,
        "malformed JSON (Graph)": client.post("/graph/notifications", content=b"{not json",
                                              headers={"Content-Type": "application/json"}).status_code,
        "malformed JSON (hook)": post(client, integration.id, b"{not json").status_code,
    }
    assert answers == {
        "invalid clientState": 202, "unknown subscription": 202,  # Graph must not retry; the sender learns nothing
        "bad signature": 401, "stale signature": 401,
        "oversize body (Graph)": 413, "oversize body (hook)": 413,
        "malformed JSON (Graph)": 400, "malformed JSON (hook)": 400,
    }
    assert queued(client.app.state.broker) == []
    assert _snapshot(engine) == before
