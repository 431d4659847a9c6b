"""Whatever arrives at the webhooks, the answer is 202, 400 or 413 as JSON or empty (the reverse hook: 401 too) —
never a 500 nor a 503 while the database and the queue are up — and nothing that fails the subscription/clientState
or signature check is enqueued. On the embedded SQLite and on PostgreSQL: NUL characters and over-long ids only
failed on PostgreSQL (issue 8.4), which the SQLite-only run never saw."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.core.signing import sign
from app.platform.migrate import upgrade
from app.sync.runtime import current
from app.web.app import create_app
from tests.conftest import make_settings
from tests.helpers import seed_subscription

HOOK_SECRET = "hook"  # what tests.helpers.seed_subscription stores
EXAMPLES = 200  # per backend and test: about 10-40 s each

# Text as it arrives in JSON: NUL, controls, non-ASCII and surrogate-free unicode included.
any_text = st.text(max_size=20) | st.sampled_from(["\x00", "sub\x00-1", "x" * 200, "é", "a\nb", "'; --"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
item = st.fixed_dictionaries(
    {},
    optional={
        "subscriptionId": st.sampled_from(["sub-1", "unknown", "", "sub-1\x00", "s" * 129]) | any_text
        | st.integers(),
        "clientState": st.sampled_from(["wrong", "", "the-right-state\x00"]) | any_text | st.none(),
        "changeType": st.sampled_from(["created", "updated", "deleted"]) | json_values,
        "resource": st.text(max_size=40) | json_values,
        "resourceData": json_values | st.fixed_dictionaries({"id": any_text}),
        "lifecycleEvent": any_text | json_values,
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.lists(item | json_values, max_size=5).map(lambda v: json.dumps({"value": v}).encode())
    | st.integers(min_value=1, max_value=5000).map(lambda n: b'{"value": ' + b"[" * n + b"]" * n + b"}")
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=80)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def client(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'rb.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        name = f"rb_fuzz_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        request.addfinalizer(drop)
        url = f"{server.rsplit('/', 1)[0]}/{name}"
    settings_ = make_settings(url)
    upgrade(url)
    with TestClient(create_app(settings_, run_worker=False), raise_server_exceptions=False) as c:
        integration, _, _ = seed_subscription(current().engine, "the-right-state")
        c.integration_id = integration.id  # type: ignore[attr-defined]
        yield c


def _queued(client) -> int:
    return sum(q.qsize() for q in client.app.state.broker.queues.values())


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/graph/notifications", "/graph/lifecycle"]))
def test_no_input_gives_a_500_or_enqueues_a_forged_item(client, body: bytes, path: str) -> None:
    before = _queued(client)
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (202, 400), (r.status_code, r.text)
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "malformed_json"
    # Nothing here carries the right clientState, so nothing may be enqueued.
    assert _queued(client) == before


hook_ids = st.sampled_from(["RIGHT", "RIGHT\x00", "%00", "x" * 37, ""]) | st.text(max_size=40)
hook_bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({"type": st.sampled_from(["loan.created", "loan.updated"]) | any_text,
                             "loan": st.fixed_dictionaries({"id": any_text}) | json_values}
                            ).map(lambda v: json.dumps(v).encode())
)
signatures = st.one_of(
    st.none(),
    header_text,
    st.just("valid"),
    st.integers(min_value=10 ** 11, max_value=10 ** 500).map(lambda t: f"t={t},v1={'0' * 64}"),
    st.integers(min_value=-10 ** 12, max_value=10 ** 12).map(lambda t: f"t={t},v1={'a' * 64}"),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(integration=hook_ids, body=hook_bodies, signature=signatures, delivery=st.none() | header_text)
def test_no_hook_gives_a_500_and_only_a_signed_valid_hook_is_enqueued(client, integration: str, body: bytes,
                                                                       signature: str | None,
                                                                       delivery: str | None) -> None:
    integration = integration.replace("RIGHT", client.integration_id)
    headers = {"Content-Type": b"application/json"}  # bytes: any Latin-1 header value goes over the wire as is
    if signature == "valid":
        headers["RoomBridge-Signature"] = sign(HOOK_SECRET, body, int(time.time())).encode()
    elif signature is not None:
        headers["RoomBridge-Signature"] = signature.encode("latin-1")
    if delivery is not None:
        headers["RoomBridge-Delivery"] = delivery.encode("latin-1")
    before = _queued(client)
    r = client.post(f"/hooks/booking/{quote(integration, safe='')}", content=body, headers=headers)
    # 404: only for a path that is no integration id at all ("" or one with a slash: the route does not match).
    assert r.status_code in (202, 400, 401, 404), (r.status_code, r.text)
    if r.status_code == 404:
        assert integration == "" or "/" in integration or integration in (".", "..")
    if r.status_code != 202:
        assert r.json()["error"]["code"] in ("bad_signature", "malformed_hook", "bad_delivery_id", "not_found")
        assert _queued(client) == before
    else:
        assert signature == "valid" and integration == client.integration_id
