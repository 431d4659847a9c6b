"""SPEC §5 webhook intake, with the official payloads of ../shared/vectors. Never a 500; nothing enqueued for
anything rejected; 202 only once the accepted items are in the queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dramatiq.common import dq_name
from starlette.testclient import TestClient

from app.platform import hints
from app.platform.migrate import upgrade
from app.sync.runtime import current
from app.web.app import create_app
from tests.conftest import make_settings
from tests.helpers import queued, seed_subscription

VECTORS = Path(__file__).resolve().parent / "vectors"  # official Graph documentation payloads
CLIENT_STATE = "s3cr3t-client-state"


def vector(name: str, **replace: str) -> dict:
    data = json.loads((VECTORS / name).read_text())
    for item in data["value"]:
        item.update(replace)
    return data


class Queue:
    """How many jobs a test's broker holds, whatever the broker."""

    def __init__(self, broker) -> None:
        self.broker = broker

    def count(self, queue: str) -> int:
        return len(self.messages(queue))

    def messages(self, queue: str) -> list[dict]:
        """Messages waiting in `queue`, delayed ones (dramatiq's `.DQ` queue) included."""
        return [m for m in queued(self.broker) if m["queue_name"] in (queue, dq_name(queue))]


@pytest.fixture
def stack(web_client):
    _, _, sub = seed_subscription(current().engine, CLIENT_STATE)
    return web_client, Queue(web_client.app.state.broker), sub


def test_validation_handshake_echoes_the_decoded_token(stack) -> None:
    client, queue, _ = stack
    for path in ("/graph/notifications", "/graph/lifecycle"):
        r = client.post(path + "?validationToken=Validation%3A%20Testing%20client%20application%20reachability",
                        headers={"Content-Type": "text/plain"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert r.text == "Validation: Testing client application reachability"
    assert queue.count("hints") == 0


@pytest.mark.parametrize("token", ["%3Cscript%3Ealert(1)%3C%2Fscript%3E", "a%3Eb", "line%0Abreak", "nul%00", ""])
def test_validation_token_with_markup_or_controls_is_refused(stack, token: str) -> None:
    client, queue, _ = stack
    r = client.post(f"/graph/notifications?validationToken={token}")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_validation_token"


@pytest.mark.parametrize("name", ["notification-basic.json", "notification-outlook.json"])
def test_official_notification_for_a_known_subscription_is_enqueued(stack, name: str) -> None:
    client, queue, sub = stack
    payload = vector(name, subscriptionId=sub.id, clientState=CLIENT_STATE)
    r = client.post("/graph/notifications", json=payload)
    assert r.status_code == 202
    assert queue.count("hints") == 1
    [message] = queue.messages("hints")
    assert message["actor_name"] == "process_room_event"
    assert message["args"][2] == payload["value"][0]["resourceData"]["id"]
    assert message["options"]["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize("name", ["notification-basic.json", "notification-outlook.json"])
def test_official_notification_as_is_names_an_unknown_subscription_and_is_dropped(stack, name: str) -> None:
    client, queue, _ = stack
    r = client.post("/graph/notifications", json=vector(name))
    assert r.status_code == 202  # Graph must not retry, and learns nothing
    assert r.content == b""
    assert queue.count("hints") == 0


def test_duplicate_notifications_for_one_event_cost_one_job(stack) -> None:
    """Exchange often sends 2–3 `updated` for one edit, and an `updated` right after `created` (SPEC §6, case 1)."""
    client, queue, sub = stack
    created = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE)
    updated = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE, changeType="updated")
    for payload in (created, updated, updated, updated):
        assert client.post("/graph/notifications", json=payload).status_code == 202
    assert queue.count("hints") == 1
    other = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE)
    other["value"][0]["resourceData"]["id"] = "another-event"
    assert client.post("/graph/notifications", json=other).status_code == 202
    assert queue.count("hints") == 2


def test_a_deletion_with_the_change_key_of_an_edit_already_read_gets_its_own_job(stack) -> None:
    """A `deleted` may carry the `@odata.etag` of the last edit: once the edit's job has started reading, the deletion
    is not a late duplicate of that edit (it would be dropped, and the loan kept until a reconcile)."""
    client, queue, sub = stack
    created = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE)
    assert client.post("/graph/notifications", json=created).status_code == 202
    assert queue.count("hints") == 1
    event_id = created["value"][0]["resourceData"]["id"]
    current().hints.release(hints.key(sub.room_id, event_id))  # the edit's job starts: it reads the event
    updated = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE, changeType="updated")
    assert client.post("/graph/notifications", json=updated).status_code == 202
    assert queue.count("hints") == 1  # a late duplicate of the edit being read
    deleted = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE, changeType="deleted")
    for _ in range(3):
        assert client.post("/graph/notifications", json=deleted).status_code == 202
    assert queue.count("hints") == 2  # the deletion's own job, its duplicates coalesced
    assert sorted(m["args"][3] for m in queue.messages("hints")) == ["created", "deleted"]


def test_wrong_client_state_is_rejected(stack) -> None:
    client, queue, sub = stack
    r = client.post("/graph/notifications",
                    json=vector("notification-outlook.json", subscriptionId=sub.id, clientState="guess"))
    assert r.status_code == 202
    assert queue.count("hints") == 0


def test_missing_client_state_is_rejected(stack) -> None:
    client, queue, sub = stack
    payload = vector("notification-outlook.json", subscriptionId=sub.id)
    del payload["value"][0]["clientState"]
    assert client.post("/graph/notifications", json=payload).status_code == 202
    assert queue.count("hints") == 0


def test_mixed_batch_enqueues_only_the_valid_items(stack) -> None:
    client, queue, sub = stack
    good = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE)["value"][0]
    bad_state = {**good, "clientState": "nope"}
    unknown = {**good, "subscriptionId": "unknown"}
    not_an_item = {"hello": "world"}
    r = client.post("/graph/notifications", json={"value": [good, bad_state, unknown, not_an_item]})
    assert r.status_code == 202
    assert queue.count("hints") == 1


@pytest.mark.parametrize("resource", [
    "Users/9b1c/Events/EV-42=", "users('9b1c')/events('EV-42=')", "/users/9b1c/events/EV-42=",
])
def test_resource_path_casings_give_the_event_id(stack, resource: str) -> None:
    client, queue, sub = stack
    item = {"subscriptionId": sub.id, "clientState": CLIENT_STATE, "changeType": "updated", "resource": resource}
    assert client.post("/graph/notifications", json={"value": [item]}).status_code == 202
    [message] = queue.messages("hints")
    assert message["args"][2] == "EV-42="


def test_disabled_integration_gets_nothing_enqueued(stack) -> None:
    client, queue, sub = stack
    from sqlmodel import Session

    from app.platform.models import Integration

    with Session(current().engine) as s:
        integration = s.get(Integration, sub.integration_id)
        integration.enabled = False
        s.add(integration)
        s.commit()
    r = client.post("/graph/notifications",
                    json=vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE))
    assert r.status_code == 202
    assert queue.count("hints") == 0


def test_lifecycle_vector_is_enqueued_for_a_known_subscription(stack) -> None:
    client, queue, sub = stack
    r = client.post("/graph/lifecycle", json=vector("lifecycle.json", subscriptionId=sub.id, clientState=CLIENT_STATE))
    assert r.status_code == 202
    [message] = queue.messages("admin")
    assert message["actor_name"] == "handle_lifecycle"
    assert message["args"] == [sub.id, "subscriptionRemoved"]


def test_lifecycle_vector_as_is_is_dropped(stack) -> None:
    client, queue, _ = stack
    assert client.post("/graph/lifecycle", json=vector("lifecycle.json")).status_code == 202
    assert queue.count("admin") == 0


@pytest.mark.parametrize("body", [b"{", b"not json", b"[]", b'{"value": 3}', b'{"value": [1, 2]}x', b""])
def test_malformed_json_is_400(stack, body: bytes) -> None:
    client, queue, _ = stack
    r = client.post("/graph/notifications", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"
    assert queue.count("hints") == 0


def test_body_over_one_mebibyte_is_413(stack) -> None:
    client, queue, sub = stack
    item = vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE)["value"][0]
    body = json.dumps({"value": [item], "padding": "x" * (1024 * 1024)}).encode()
    r = client.post("/graph/notifications", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert queue.count("hints") == 0


def test_oversize_body_without_content_length_is_413(stack) -> None:
    client, queue, _ = stack

    def chunks():
        for _ in range(17):
            yield b"x" * 65536

    r = client.post("/graph/notifications", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(stack, method: str) -> None:
    client, _, _ = stack
    r = client.request(method, "/graph/notifications")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_queue_unreachable_answers_503_so_graph_retries(tmp_path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'rb.db'}", "redis://127.0.0.1:1/0")
    upgrade(settings.database_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        _, _, sub = seed_subscription(current().engine, CLIENT_STATE)
        r = client.post("/graph/notifications",
                        json=vector("notification-outlook.json", subscriptionId=sub.id, clientState=CLIENT_STATE))
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert r.json()["error"]["code"] == "queue_unavailable"
        assert client.get("/readyz").status_code == 503


def test_concurrent_cache_misses_share_one_database_read(monkeypatch) -> None:
    """When a subscription is not (or no longer) cached, the requests in flight for it wait for one read instead of
    each taking a thread and reading; a read's failure is every waiter's (each answers 503 database)."""
    import asyncio
    import threading

    from app.web import intake

    class FakeRuntime:  # weakly referenced by the cache registry, like a Runtime
        pass

    rt = FakeRuntime()
    reads: list[set[str]] = []
    release = threading.Event()
    fail = False

    def slow_read(_rt, missing: set[str]):
        reads.append(set(missing))
        release.wait(30)
        if fail:
            raise RuntimeError("database down")
        return {sid: (intake.Target("i", "r"), "d") for sid in missing}

    monkeypatch.setattr(intake, "_read_missing", slow_read)

    async def burst() -> list:
        calls = [asyncio.ensure_future(intake._read_missing_async(rt, {"sub-1"})) for _ in range(10)]
        calls.append(asyncio.ensure_future(intake._read_missing_async(rt, {"sub-1", "sub-2"})))
        while len(reads) < 2:  # the first read, then the one for sub-2 only
            await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(*calls, return_exceptions=True)

    got = asyncio.run(burst())
    assert sorted(map(sorted, reads)) == [["sub-1"], ["sub-2"]]  # two reads, in either order (two threads)
    assert all(g == {"sub-1": (intake.Target("i", "r"), "d")} for g in got[:10])
    assert set(got[10]) == {"sub-1", "sub-2"}
    assert not intake.cache_of(rt).inflight  # nothing left under way

    reads.clear()
    release.clear()
    fail = True
    got = asyncio.run(burst())
    assert len(reads) == 2 and all(isinstance(g, RuntimeError) for g in got)


def test_an_entry_about_to_end_is_still_used_and_read_again_once_in_the_background(monkeypatch) -> None:
    import asyncio
    import threading
    import time
    from types import SimpleNamespace

    from app.web import intake

    class FakeRuntime:
        pass

    rt = FakeRuntime()
    cache = intake.cache_of(rt)
    entry = (intake.Target("i", "r"), "d")
    cache._known["sub-1"] = intake._Known(entry, time.monotonic() + 0.5)  # ends within REFRESH_AHEAD_S
    reads: list[set[str]] = []
    release = threading.Event()

    def read(_rt, missing: set[str]):
        reads.append(set(missing))
        release.wait(30)
        rows = {sid: entry for sid in missing}
        cache.put(rows, missing)
        return rows

    monkeypatch.setattr(intake, "_read_missing", read)
    item = SimpleNamespace(subscription_id="sub-1")

    async def scenario() -> None:
        for _ in range(5):  # served from the cache, no request waits; one read under way
            assert intake._cached_lookup(rt, [item]) == ({"sub-1": entry}, set())
            await asyncio.sleep(0.01)
        release.set()
        while cache.inflight:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert reads == [{"sub-1"}]
    assert cache._known["sub-1"].until > time.monotonic() + intake.REFRESH_AHEAD_S  # read again: a full TTL ahead
