"""Acknowledged means kept (issue 8 point 1), in-process: the catch-up enqueues one delta round per active room and one
booking-cursor round per integration; the Redis marker notices a Redis that lost its data; a draining process answers
503 to new webhooks and finishes its in-process jobs. The real stops and restarts are in tests/faults/."""

from __future__ import annotations

import threading

import dramatiq
from sqlmodel import Session, select
from starlette.testclient import TestClient

from app.platform.migrate import upgrade
from app.platform.models import JournalEntry, Room
from app.sync import runtime
from app.sync.runtime import Runtime, current
from app.web.app import create_app, drain
from app.workers import broker as broker_mod
from app.workers.broker import bind, make_broker
from app.workers.catchup import RedisMarker, catch_up
from tests.conftest import make_settings
from tests.helpers import queued, seed_subscription


def _embedded_app(tmp_path):
    """The web app on the embedded default: this process runs the jobs."""
    settings = make_settings(f"sqlite:///{tmp_path / 'rb.db'}")
    upgrade(settings.database_url)
    return create_app(settings)


def _args(broker, actor: str) -> list[list]:
    return sorted(m["args"] for m in queued(broker, actor))


def test_catch_up_enqueues_a_round_per_active_room_and_per_integration(web_client) -> None:
    rt, broker = current(), web_client.app.state.broker
    integration, room, _ = seed_subscription(rt.engine, subscription_id="sub-1")
    disabled, _, _ = seed_subscription(rt.engine, enabled=False, subscription_id="sub-2")
    with Session(rt.engine) as s:
        s.add(Room(integration_id=integration.id, email="gone@contoso.com", name="Gone", mailbox_id="m-gone",
                   active=False))
        s.commit()

    done = catch_up(rt, "test")

    assert (done.rooms, done.integrations) == (1, 1)
    assert _args(broker, "reconcile_room") == [[room.id]]  # not the inactive room, nor the disabled integration's
    assert _args(broker, "reconcile_loans") == [[integration.id]]
    with Session(rt.engine) as s:
        entries = s.exec(select(JournalEntry).where(JournalEntry.action == "catch_up")).all()
    assert [(e.integration_id, e.status) for e in entries] == [(integration.id, "ok")]
    assert disabled.id not in {e.integration_id for e in entries}


def test_redis_marker_notices_a_redis_that_lost_its_data(tmp_path, redis_url) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'rb.db'}", redis_url)
    upgrade(settings.database_url)
    rt = Runtime(settings)
    runtime.install(rt)
    broker = bind(make_broker(settings))
    try:
        _, room, _ = seed_subscription(rt.engine)
        assert rt.redis is not None
        marker = RedisMarker(rt.redis, settings.redis_namespace)
        assert marker.check(rt)  # first start: no marker yet → one catch-up, then the marker
        assert marker.present()
        assert not marker.check(rt)  # present: nothing to do
        assert _args(broker, "reconcile_room") == [[room.id]]

        broker.flush_all()
        rt.redis.delete(marker.key)  # Redis restarted empty (the queue went with it)
        assert marker.check(rt)
        assert _args(broker, "reconcile_room") == [[room.id]]
        assert marker.present()

        broker.flush_all()
        older = rt.redis.get(marker.key)
        assert not marker.check(rt)
        rt.redis.set(marker.key, older)  # restored from an older snapshot, or a replica that lagged
        assert marker.check(rt)
        assert _args(broker, "reconcile_room") == [[room.id]]

        broker.flush_all()
        rt.redis.set(marker.key, b"written-by-the-scheduler-active-before-us")
        marker.forget()  # this scheduler has just become active: it adopts what it finds
        assert not marker.check(rt)
        assert _args(broker, "reconcile_room") == []
    finally:
        broker.flush_all()
        broker.close()
        runtime.install(None)
        rt.close()


def test_draining_answers_503_to_webhooks_and_finishes_the_in_process_jobs(tmp_path) -> None:
    app = _embedded_app(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as client:
        broker = app.state.broker
        started, release = threading.Event(), threading.Event()

        @dramatiq.actor(broker=broker, queue_name="hints")
        def slow_job() -> None:
            started.set()
            release.wait(60)

        slow_job.send()
        assert started.wait(60)
        assert client.post("/graph/notifications", json={"value": []}).status_code == 202

        assert not drain(app, timeout_s=0.2)  # a job still runs: not drained yet
        for path in ("/graph/notifications", "/graph/lifecycle", "/hooks/booking/any"):
            r = client.post(path, json={"value": []})
            assert r.status_code == 503, (path, r.text)
            assert r.headers["Retry-After"] == "10"
            assert r.json()["error"]["code"] == "draining"
        assert client.get("/readyz").status_code == 503  # load balancers stop sending
        assert client.get("/healthz").status_code == 200  # alive, just stopping

        release.set()
        assert drain(app, timeout_s=60)
        assert broker_mod.pending(broker) == 0


def test_drain_waits_for_delayed_jobs_too(tmp_path) -> None:
    n = 3
    app = _embedded_app(tmp_path)
    with TestClient(app, raise_server_exceptions=False):
        broker = app.state.broker
        ran: list[int] = []

        @dramatiq.actor(broker=broker, queue_name="hints")
        def later(i: int) -> None:
            ran.append(i)

        for i in range(n):
            later.send_with_options(args=(i,), delay=300)
        assert broker_mod.pending(broker) == n
        assert drain(app, timeout_s=60)
        assert sorted(ran) == list(range(n))


def test_drain_does_not_wait_for_jobs_due_after_it(tmp_path) -> None:
    """A renewal due in 2 hours, a retry after a long back-off: the drain cannot finish them, so it does not wait
    for them (the next start re-derives them); with pytest's 300 s limit, waiting would fail this test."""
    app = _embedded_app(tmp_path)
    with TestClient(app, raise_server_exceptions=False):
        broker = app.state.broker
        ran: list[str] = []

        @dramatiq.actor(broker=broker, queue_name="admin")
        def job(what: str) -> None:
            ran.append(what)

        job.send_with_options(args=("later",), delay=2 * 3600_000)
        job.send_with_options(args=("soon",), delay=200)
        job.send("now")
        assert not drain(app, timeout_s=3000)  # the late one (in 2 h) is left behind...
        assert sorted(ran) == ["now", "soon"]  # ... after the others were finished
        assert broker_mod.pending(broker) == 1
