"""Whatever arrives at the webhooks, the answer is 202, 400 or 413 as JSON or empty — never a 500 — and nothing that
fails the subscription/clientState check is enqueued."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.platform.migrate import upgrade
from app.sync.runtime import current
from app.web.app import create_app
from tests.conftest import make_settings
from tests.helpers import seed_subscription

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
item = st.fixed_dictionaries(
    {},
    optional={
        "subscriptionId": st.sampled_from(["sub-1", "unknown", ""]) | st.text(max_size=10) | st.integers(),
        "clientState": st.sampled_from(["wrong", ""]) | st.text(max_size=10) | st.none(),
        "changeType": st.sampled_from(["created", "updated", "deleted"]) | json_values,
        "resource": st.text(max_size=40) | json_values,
        "resourceData": json_values,
        "lifecycleEvent": st.text(max_size=20) | json_values,
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.lists(item | json_values, max_size=5).map(lambda v: json.dumps({"value": v}).encode())
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings_ = make_settings(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'rb.db'}")
    upgrade(settings_.database_url)
    with TestClient(create_app(settings_, run_worker=False), raise_server_exceptions=False) as c:
        seed_subscription(current().engine, "the-right-state")
        yield c


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/graph/notifications", "/graph/lifecycle"]))
def test_no_input_gives_a_500_or_enqueues_a_forged_item(client, body: bytes, path: str) -> None:
    broker = client.app.state.broker
    before = sum(q.qsize() for q in broker.queues.values())
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (202, 400), (r.status_code, r.text)
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "malformed_json"
    # Nothing here carries the right clientState, so nothing may be enqueued.
    assert sum(q.qsize() for q in broker.queues.values()) == before
