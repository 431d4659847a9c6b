"""The scheduler (SPEC §9): what is due, from the database; the lease that keeps exactly one scheduler active, on
SQLite and PostgreSQL; and two real `roombridge scheduler` processes on one PostgreSQL database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import Session

from app.platform import leases
from app.platform.db import make_engine
from app.platform.migrate import upgrade
from app.platform.models import Integration, Room, Subscription, utcnow
from app.sync.runtime import Runtime
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, make_settings
from tests.helpers import seed_subscription
from workers.scheduler import LEASE_NAME, Memo, Scheduler, due_work, older_than

TTL = timedelta(seconds=30)


@pytest.fixture
def engine(database_url: str):
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


# --- pure rules -----------------------------------------------------------------------------------------------------


def test_older_than() -> None:
    now = utcnow()
    assert older_than(None, timedelta(hours=6), now)
    assert older_than(now - timedelta(hours=6), timedelta(hours=6), now)
    assert not older_than(now - timedelta(hours=5), timedelta(hours=6), now)


def test_memo_does_not_resend_work_still_in_the_queue() -> None:
    memo, now = Memo(), utcnow()
    assert memo.fresh(["a", "b"], "renew", timedelta(minutes=5), now) == ["a", "b"]
    assert memo.fresh(["a", "c"], "renew", timedelta(minutes=5), now + timedelta(minutes=1)) == ["c"]
    assert memo.fresh(["a"], "poll", timedelta(minutes=5), now) == ["a"]  # another kind of work
    assert memo.fresh(["a"], "renew", timedelta(minutes=5), now + timedelta(minutes=5)) == ["a"]


# --- leases ---------------------------------------------------------------------------------------------------------


def test_lease_has_one_holder_and_passes_on_when_it_expires(engine) -> None:
    assert leases.acquire(engine, "job", "a", TTL)
    assert not leases.acquire(engine, "job", "b", TTL)
    assert leases.acquire(engine, "job", "a", TTL)  # renewal by the holder
    assert leases.current_holder(engine, "job")[0] == "a"

    assert leases.acquire(engine, "job", "a", timedelta(seconds=-1))  # as if "a" stopped renewing long ago
    assert leases.acquire(engine, "job", "b", TTL)
    assert not leases.acquire(engine, "job", "a", TTL)
    assert leases.acquire(engine, "other", "a", TTL)  # leases are independent

    leases.release(engine, "job", "b")
    assert leases.acquire(engine, "job", "a", TTL)


def test_racing_for_a_free_or_expired_lease_gives_one_winner(engine) -> None:
    for round_ in range(3):
        barrier = threading.Barrier(8)
        wins: list[str] = []

        def race(holder: str, barrier: threading.Barrier = barrier, wins: list[str] = wins) -> None:
            barrier.wait()
            if leases.acquire(engine, "race", holder, TTL):
                wins.append(holder)

        threads = [threading.Thread(target=race, args=(f"h{round_}-{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins
        leases.release(engine, "race", wins[0])  # free again for the next round (expired, row kept)


def test_two_schedulers_in_one_database_one_is_active(database_url: str) -> None:
    upgrade(database_url)
    rt = Runtime(make_settings(database_url))
    ttl = timedelta(seconds=1.5)
    first = Scheduler(rt, lease_ttl=ttl, tick_every=timedelta(hours=1)).start()
    second = Scheduler(rt, lease_ttl=ttl, tick_every=timedelta(hours=1)).start()
    try:
        deadline = time.monotonic() + 5
        while not (first.active or second.active) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert [first.active, second.active].count(True) == 1
        active, standby = (first, second) if first.active else (second, first)
        assert leases.current_holder(rt.engine, LEASE_NAME)[0] == active.holder
        active.stop()  # a clean stop releases the lease: the standby takes over at once
        deadline = time.monotonic() + 2
        while not standby.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert standby.active
    finally:
        first.stop()
        second.stop()
        rt.close()


# --- what is due ----------------------------------------------------------------------------------------------------


def test_due_work_from_the_database(engine) -> None:
    integration, room, sub = seed_subscription(engine)
    now = utcnow()
    with Session(engine) as s:
        due = due_work(s, now)
    assert due.imports == [integration.id]  # never imported
    assert due.renewals == []  # created now for 3 days: not due
    assert due.subscribe == [] and due.poll == []
    assert due.reconcile == [room.id]  # never reconciled

    with Session(engine) as s:
        s.get(Integration, integration.id).rooms_synced_at = now - timedelta(hours=1)
        s.get(Room, room.id).reconciled_at = now - timedelta(hours=1)
        row = s.get(Subscription, sub.id)
        row.created_at, row.expires_at = now - timedelta(days=5), now + timedelta(days=2)
        s.commit()
    with Session(engine) as s:
        due = due_work(s, now)
    assert (due.imports, due.renewals, due.reconcile) == ([], [sub.id], [])

    with Session(engine) as s:
        s.get(Subscription, sub.id).status = "removed"
        s.get(Integration, integration.id).rooms_synced_at = now - timedelta(hours=7)
        s.commit()
    with Session(engine) as s:
        due = due_work(s, now)
    assert due.subscribe == [room.id] and due.renewals == [] and due.imports == [integration.id]

    with Session(engine) as s:
        s.get(Integration, integration.id).enabled = False
        s.commit()
    with Session(engine) as s:
        due = due_work(s, now)
    assert due.imports == due.subscribe == due.reconcile == []


# --- `roombridge scheduler` processes -------------------------------------------------------------------------------


def _env(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATABASE_URL=database_url, ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY=SECRET_KEY, LOG_FORMAT="json")
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def test_scheduler_without_redis_says_serve_schedules_itself(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "app.cli", "scheduler"], capture_output=True, text=True, check=False,
                            env=_env(f"sqlite:///{tmp_path / 'rb.db'}", None), timeout=60)
    assert result.returncode == 2
    assert "serve" in result.stderr and "REDIS_URL" in result.stderr


@pytest.mark.slow
def test_two_scheduler_processes_one_active_and_a_standby_takes_over(pg_url: str, redis_url: str, tmp_path) -> None:
    ttl = 4.0
    upgrade(pg_url)
    engine = make_engine(pg_url)
    env = _env(pg_url, redis_url)
    command = [sys.executable, "-m", "app.cli", "scheduler", "--lease-ttl", str(ttl)]
    logs = [tmp_path / f"scheduler-{i}.log" for i in range(2)]
    procs = [subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT) for log in logs]
    by_pid = {p.pid: p for p in procs}

    def holder_pid() -> int | None:
        found = leases.current_holder(engine, LEASE_NAME)
        if found is None or found[1] <= utcnow():
            return None
        return int(found[0].split(":")[-2])

    def wait_holder(timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (pid := holder_pid()) is not None:
                return pid
            time.sleep(0.1)
        raise AssertionError("no scheduler holds the lease: " + " | ".join(l.read_text() for l in logs))

    try:
        active = wait_holder(60)
        assert active in by_pid
        time.sleep(ttl * 1.5)  # renewals keep it with the same process; the other stands by
        assert holder_pid() == active
        assert all(p.poll() is None for p in procs)

        killed_at = time.monotonic()
        by_pid[active].send_signal(signal.SIGKILL)  # no clean release: the lease must lapse
        by_pid[active].wait(10)
        deadline = killed_at + ttl + 3
        successor = None
        while time.monotonic() < deadline:
            pid = holder_pid()
            if pid is not None and pid != active:
                successor = pid
                break
            time.sleep(0.1)
        assert successor is not None and successor in by_pid, "the standby did not take over within the TTL"
        assert time.monotonic() - killed_at <= ttl + 3
        log_text = "\n".join(l.read_text() for l in logs)
        assert log_text.count('"scheduler active"') == 2
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.dispose()
